"""The rules of refunds: what may be refunded, to where, and how each refund is paid exactly once.

``create_refund`` opens its own transactions (it takes the :class:`Database`): the Lightning
address server is asked for an invoice and the backend pays *between* them, and no write
transaction is held open across a network call. The refund row, with the payment hash it will
pay, is committed before the backend is asked to pay; the outcome is applied with conditional
updates, so the request, the background check and another replica record it once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.config import Settings
from boltgate.db.conn import SessionConn
from boltgate.db.engine import Database
from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.kit import money
from boltgate.kit.ids import new_id
from boltgate.payment.models import Payment
from boltgate.payment.states import Refunded, Status, transition
from boltgate.refund import repository
from boltgate.refund.models import Refund
from boltgate.refund.schemas import RefundCreate
from boltgate.webhook import events, outbox

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Destination:
    type: str  # lightning or claim
    payment_request: str | None = None
    payment_hash: str | None = None
    lightning_address: str | None = None


def _not_found(invoice_id: str) -> NotFound:
    return NotFound(f"payment {invoice_id} not found", code="payment_not_found")


def sats_of(payment: Payment, amount: Decimal) -> int:
    """The refund in sats at the payment's own rate, rounded down (exact for BTC payments)."""
    paid = Fraction(Decimal(payment.amount))
    return int(Fraction(amount) * payment.amount_sats / paid)


def max_fee_msat(settings: Settings, amount_sats: int) -> int:
    share = int(Decimal(amount_sats * 1000) * settings.refund_max_fee_percent / 100)
    return max(share, settings.refund_min_fee_sats * 1000)


def refund_amount(payment: Payment, body: RefundCreate) -> tuple[Decimal, int]:
    """The amount in the payment's currency (exact minor units) and in sats; 400 when unusable."""
    if body.currency != payment.currency:
        raise ValidationFailed(
            f"currency must be the payment's ({payment.currency})",
            errors={"currency": [f"must be {payment.currency}"]},
            code="currency_mismatch",
        )
    try:
        amount = money.quantize(body.amount, payment.currency)
    except ValueError as exc:
        places = money.minor_units(payment.currency)
        raise ValidationFailed(
            f"amount has more than {places} decimals for {payment.currency}",
            errors={"amount": [f"at most {places} decimal places"]},
        ) from exc
    sats = sats_of(payment, amount)
    if sats < 1:
        raise ValidationFailed(
            "the refund is less than 1 sat",
            errors={"amount": ["is less than 1 sat"]},
            code="amount_too_small",
        )
    return amount, sats


def check_refundable(payment: Payment | None, invoice_id: str) -> Payment:
    if payment is None:
        raise _not_found(invoice_id)
    if payment.status != Status.PAID:
        raise Conflict(
            f"payment {invoice_id} is {payment.status}; only a paid payment can be refunded",
            code="payment_not_refundable",
        )
    return payment


async def check_remaining(session: AsyncSession, payment: Payment, amount: Decimal) -> None:
    remaining = Decimal(payment.amount) - await repository.amounts(session, payment.id, repository.OPEN)
    if amount > remaining:
        shown = money.format_amount(max(remaining, Decimal(0)), payment.currency)
        raise ValidationFailed(
            f"the refund exceeds what remains refundable ({shown} {payment.currency})",
            errors={"amount": [f"at most {shown}"]},
            code="refund_exceeds_remaining",
        )


async def existing(
    session: AsyncSession, merchant_id: str, key: str | None, fingerprint: str
) -> Refund | None:
    if key is None:
        return None
    refund = await repository.by_idempotency_key(session, merchant_id, key)
    if refund is not None and refund.fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used with a different request body", code="idempotency_key_reused"
        )
    return refund


async def check_new_hash(session: AsyncSession, payment_hash: str, field: str) -> None:
    if await repository.hash_is_known(session, payment_hash):
        raise ValidationFailed(
            f"{field}: the invoice is one of this gateway's own, or already being paid by a refund",
            errors={field: ["is this gateway's own invoice or already used"]},
            code="invoice_not_payable",
        )


async def reserve(
    session: AsyncSession,
    merchant_id: str,
    body: RefundCreate,
    *,
    key: str | None,
    destination: Destination,
    settings: Settings,
    now: datetime,
) -> Refund:
    """Insert the pending refund under the payment's row lock, after checking again what remains."""
    payment = check_refundable(
        await repository.payment_of(session, merchant_id, body.invoiceId, lock=True), body.invoiceId
    )
    amount, sats = refund_amount(payment, body)
    await check_remaining(session, payment, amount)
    refund = Refund(
        id=new_id("ref"),
        merchant_id=merchant_id,
        payment_id=payment.id,
        status="pending",
        type=destination.type,
        amount=money.format_amount(amount, payment.currency),
        currency=payment.currency,
        amount_sats=sats,
        max_fee_msat=max_fee_msat(settings, sats),
        reason=body.reason,
        lightning_address=destination.lightning_address,
        payment_request=destination.payment_request,
        payment_hash=destination.payment_hash,
        idempotency_key=key,
        fingerprint=body.fingerprint(),
        claim_expires_at=now + timedelta(seconds=settings.refund_claim_ttl_seconds)
        if destination.type == "claim"
        else None,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    return refund


async def insert(
    db: Database,
    merchant_id: str,
    body: RefundCreate,
    key: str | None,
    destination: Destination,
    settings: Settings,
    now: datetime,
) -> tuple[Refund, bool]:
    try:
        async with db.writing() as session:
            refund = await reserve(
                session, merchant_id, body, key=key, destination=destination, settings=settings, now=now
            )
    except IntegrityError:
        # the same Idempotency-Key won a race, or the same invoice is being paid by another refund
        async with db.reading() as session:
            found = await existing(session, merchant_id, key, body.fingerprint())
        if found is None:
            raise ValidationFailed(
                "the invoice is already being paid by another refund", code="invoice_not_payable"
            ) from None
        return found, False
    log.info(
        "refund_created",
        refund_id=refund.id,
        invoice_id=refund.payment_id,
        type=refund.type,
        sats=refund.amount_sats,
    )
    return refund, True


async def emit(session: AsyncSession, refund: Refund, event: str, now: datetime) -> None:
    await outbox.emit(
        SessionConn(session),
        merchant_id=refund.merchant_id,
        event=event,
        data=events.refund_data(event, refund),
        now=now,
        invoice_id=refund.payment_id,
        postgresql=session.get_bind().dialect.name == "postgresql",
    )


async def complete(
    session: AsyncSession, refund_id: str, preimage: str | None, fee_msat: int, now: datetime
) -> bool:
    """Completed (once), with its event; the payment becomes refunded when nothing remains."""
    if not await repository.complete(session, refund_id, preimage, fee_msat, now):
        return False
    refund = await repository.get_any(session, refund_id)
    assert refund is not None
    await session.refresh(refund)
    await emit(session, refund, events.REFUND_COMPLETED, now)
    log.info("refund_completed", refund_id=refund_id, invoice_id=refund.payment_id)
    payment = await session.get(Payment, refund.payment_id, with_for_update=True)
    if payment is None:
        return True
    completed = await repository.amounts(session, payment.id, ("completed",))
    change = transition(Status(payment.status), payment.amount_msat, payment.expires_at, Refunded(), now)
    full = completed >= Decimal(payment.amount) and change is not None
    if full and await repository.mark_payment_refunded(session, payment.id, now):
        await session.refresh(payment)
        await outbox.emit(
            SessionConn(session),
            merchant_id=payment.merchant_id,
            event=events.PAYMENT_REFUNDED,
            data=events.payment_data(events.PAYMENT_REFUNDED, payment),
            now=now,
            invoice_id=payment.id,
            postgresql=session.get_bind().dialect.name == "postgresql",
        )
    return True


async def fail(
    session: AsyncSession, refund_id: str, failure: str, now: datetime, *, unclaimed: bool = False
) -> bool:
    """Failed (once), with its event: the amount becomes refundable again."""
    if not await repository.fail(session, refund_id, failure, now, unclaimed=unclaimed):
        return False
    refund = await repository.get_any(session, refund_id)
    assert refund is not None
    await session.refresh(refund)
    await emit(session, refund, events.REFUND_FAILED, now)
    log.info("refund_failed", refund_id=refund_id, invoice_id=refund.payment_id, failure=failure)
    return True


async def wait_briefly(task: asyncio.Task[None], seconds: float) -> None:
    """Wait for a payment up to ``seconds``; it goes on in the background after that."""
    await asyncio.wait({task}, timeout=seconds)
