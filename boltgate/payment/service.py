"""The rules of merchant payments: pricing, idempotent creation, look-ups and state changes.

``create_payment`` is the one function here that opens its own transactions (it takes the
:class:`Database`, not a session): the Lightning backend must be asked for an invoice *between*
the idempotency read and the insert, and a write transaction must not be held open across a call
to the backend (on SQLite it would stop every other writer meanwhile). Everything else takes the
caller's session and never commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.config import Settings
from boltgate.db.conn import Conn, SessionConn
from boltgate.db.engine import Database
from boltgate.db.raw import Record
from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.kit import money
from boltgate.kit.clock import Clock
from boltgate.kit.ids import new_id
from boltgate.lightning.base import LightningBackend
from boltgate.payment import repository
from boltgate.payment.models import Payment
from boltgate.payment.repository import PaymentRow
from boltgate.payment.schemas import PaymentCreate
from boltgate.payment.states import Expire, Settled, Status, Transition, transition
from boltgate.rates.service import RateService
from boltgate.webhook import events, outbox

log = structlog.get_logger(__name__)
PaymentView = Payment | PaymentRow  # a model or a row with the same attribute names
BOLT11_DESCRIPTION_MAX_BYTES = 639


@dataclass(frozen=True, slots=True)
class Price:
    amount: Decimal
    amount_sats: int
    rate: Decimal | None
    rate_source: str | None


async def price(body: PaymentCreate, rates: RateService, settings: Settings) -> Price:
    """Convert the requested amount to sats (fiat via the cached rate, rounded up)."""
    try:
        amount = money.quantize(body.amount, body.currency)
    except ValueError as exc:
        places = money.minor_units(body.currency)
        raise ValidationFailed(
            f"amount has more than {places} decimals for {body.currency}",
            errors={"amount": [f"at most {places} decimal places for {body.currency}"]},
        ) from exc
    if body.currency == "BTC":
        sats, rate, source = money.btc_to_sats(amount), None, None
    else:
        quote = await rates.get_rate(body.currency)
        sats, rate, source = money.fiat_to_sats(amount, quote.rate), quote.rate, quote.source
    if sats < 1 or sats > settings.max_payment_sats:
        raise ValidationFailed(
            f"amount is {sats} sats; it must be between 1 and {settings.max_payment_sats} sats",
            errors={"amount": [f"must be between 1 and {settings.max_payment_sats} sats"]},
            code="amount_out_of_range",
        )
    return Price(amount=amount, amount_sats=sats, rate=rate, rate_source=source)


async def _existing(
    conn: Conn, merchant_id: str, body: PaymentCreate, fingerprint: str, idem_key: str | None
) -> PaymentView | None:
    """The payment an earlier identical request made, or a 409 when the same ids came with another body."""
    if idem_key is not None:
        hit = await repository.fetch_by_idempotency_key(conn, merchant_id, idem_key)
        if hit is not None:
            if hit.key_fingerprint != fingerprint:
                raise Conflict(
                    "This Idempotency-Key was used with a different request body",
                    code="idempotency_key_reused",
                )
            return hit
    payment = await repository.fetch_by_order(conn, merchant_id, body.orderId)
    if payment is not None and payment.fingerprint != fingerprint:
        raise Conflict(
            f"orderId {body.orderId!r} already has a payment with different details",
            code="order_id_conflict",
        )
    return payment


async def create_payment(
    db: Database,
    backend: LightningBackend,
    rates: RateService,
    settings: Settings,
    merchant_id: str,
    body: PaymentCreate,
    *,
    idempotency_key: str | None,
    clock: Clock,
    backend_ref: str | None = None,
) -> tuple[PaymentView, bool]:
    """Create (or return the existing) payment; the flag says whether it is new. ``backend`` makes
    the invoice; ``backend_ref`` names it when it is the merchant's own (merchant_backends.id)."""
    fingerprint = body.fingerprint()
    async with db.read_connection() as conn:
        existing = await _existing(conn, merchant_id, body, fingerprint, idempotency_key)
    if existing is not None:
        return existing, False
    quote = await price(body, rates, settings)
    description = body.description or ""
    encoded = description.encode("utf-8")
    invoice = await backend.create_invoice(
        amount_msat=quote.amount_sats * 1000,
        description=description if len(encoded) <= BOLT11_DESCRIPTION_MAX_BYTES else None,
        description_hash=None
        if len(encoded) <= BOLT11_DESCRIPTION_MAX_BYTES
        else hashlib.sha256(encoded).digest(),
        expiry_seconds=settings.invoice_expiry_seconds,
    )
    now = clock()
    payment = Record(  # a plain record: building the ORM object cost ~45 µs a create (measured)
        id=new_id("inv"),
        merchant_id=merchant_id,
        order_id=body.orderId,
        status=Status.UNPAID.value,
        amount=money.format_amount(quote.amount, body.currency),
        currency=body.currency,
        amount_sats=quote.amount_sats,
        amount_msat=invoice.amount_msat,
        rate=None if quote.rate is None else str(quote.rate),
        rate_source=quote.rate_source,
        payment_hash=invoice.payment_hash,
        payment_request=invoice.payment_request,
        backend_invoice_id=invoice.backend_invoice_id,
        backend_ref=backend_ref,
        description=body.description,
        customer_email=body.customerEmail,
        customer_name=body.customerName,
        success_url=body.successUrl,
        cancel_url=body.cancelUrl,
        metadata_=body.metadata,
        fingerprint=fingerprint,
        created_at=now,
        expires_at=min(invoice.expires_at, now + timedelta(seconds=settings.invoice_expiry_seconds)),
        updated_at=now,
        received_msat=None,
        paid_at=None,
        expired_at=None,
    )
    try:
        async with db.write_connection() as conn:
            await repository.insert_payment(conn, payment, idempotency_key)
            await outbox.emit(
                conn,
                merchant_id=merchant_id,
                event=events.PAYMENT_CREATED,
                data=events.payment_data(events.PAYMENT_CREATED, payment),
                now=now,
                invoice_id=payment.id,
                postgresql=not db.is_sqlite,
            )
    except IntegrityError:
        # A concurrent request with the same orderId or key won the race: answer as it did.
        async with db.read_connection() as conn:
            existing = await _existing(conn, merchant_id, body, fingerprint, idempotency_key)
        if existing is None:
            raise
        return existing, False
    log.debug(  # debug: at info this line was ~8 % of a create (measured)
        "payment_created", invoice_id=payment.id, merchant_id=merchant_id, amount_sats=payment.amount_sats
    )
    return payment, True


async def get_payment(conn: Conn, merchant_id: str, invoice_id: str) -> PaymentView:
    payment = await repository.fetch(conn, merchant_id, invoice_id)
    if payment is None:
        raise NotFound(f"payment {invoice_id} not found", code="payment_not_found")
    return payment


async def get_payment_by_order(conn: Conn, merchant_id: str, order_id: str) -> PaymentView:
    payment = await repository.fetch_by_order(conn, merchant_id, order_id)
    if payment is None:
        raise NotFound(f"no payment for orderId {order_id!r}", code="payment_not_found")
    return payment


async def apply_settlement(
    session: AsyncSession, payment_hash: str, received_msat: int, settled_at: datetime, now: datetime
) -> tuple[Payment, Transition] | None:
    """Mark the payment of ``payment_hash`` paid, exactly once across watchers and replicas."""
    payment = await repository.get_by_hash(session, payment_hash)
    if payment is None:
        return None
    change = transition(
        Status(payment.status),
        payment.amount_msat,
        payment.expires_at,
        Settled(received_msat, settled_at),
        now,
    )
    if change is None:
        if payment.status in (Status.UNPAID, Status.EXPIRED):
            log.warning("underpaid_settlement", invoice_id=payment.id, received_msat=received_msat)
        return None
    if not await repository.mark_paid(session, payment.id, received_msat, settled_at, now):
        return None
    payment.status, payment.paid_at, payment.received_msat = change.status.value, settled_at, received_msat
    await _emit(session, payment, events.PAYMENT_COMPLETED, now)
    log.info("payment_paid", invoice_id=payment.id, merchant_id=payment.merchant_id)
    return payment, change


async def expire(session: AsyncSession, payment: Payment, now: datetime) -> Transition | None:
    change = transition(Status(payment.status), payment.amount_msat, payment.expires_at, Expire(), now)
    if change is None or not await repository.mark_expired(session, payment.id, now):
        return None
    payment.status, payment.expired_at = change.status.value, now
    await _emit(session, payment, events.PAYMENT_EXPIRED, now)
    return change


async def _emit(session: AsyncSession, payment: Payment, event: str, now: datetime) -> None:
    """The event of a transition, in the transaction that makes it (the outbox)."""
    await outbox.emit(
        SessionConn(session),
        merchant_id=payment.merchant_id,
        event=event,
        data=events.payment_data(event, payment),
        now=now,
        invoice_id=payment.id,
        postgresql=session.get_bind().dialect.name == "postgresql",
    )
