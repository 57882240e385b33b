"""Creating a refund end to end, and paying it once.

The order is what makes a refund never paid twice: (1) the refund is committed as ``pending``
with the payment hash it will pay; (2) the backend that received the payment is asked to pay,
once; (3) its answer is applied: SETTLED completes, FAILED fails (the amount is refundable
again), PENDING or UNKNOWN leaves it pending for the background check
(:mod:`boltgate.refund.tasks`), which asks ``lookup_payment`` and never pays again.

The payment runs in a task of its own: the request waits for it a short while
(``refund_pay_wait_seconds``) and answers ``pending`` after that, while the task goes on.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.context import Context
from boltgate.errors import ValidationFailed
from boltgate.lightning.base import LightningError, PaymentResult, PaymentStatus
from boltgate.payment.models import Payment
from boltgate.refund import lnurl, repository, service
from boltgate.refund.checks import check_invoice, clean
from boltgate.refund.models import Refund
from boltgate.refund.schemas import RefundCreate

log = structlog.get_logger(__name__)
# Payments in flight: asyncio keeps only weak references to tasks, so they are held here until done.
_in_flight: set[asyncio.Task[None]] = set()


def start(ctx: Context, refund_id: str) -> asyncio.Task[None]:
    task = asyncio.create_task(pay(ctx, refund_id), name=f"refund-{refund_id}")
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return task


async def pay(ctx: Context, refund_id: str) -> None:
    """Ask the backend of the refunded payment to pay the refund's invoice, once, and apply what
    it answers. Only a pending refund with an invoice is paid, and only by the caller that bound
    the invoice to it (the request that created it, or the claim-link callback that took it)."""
    async with ctx.db.reading() as session:
        refund = await repository.get_any(session, refund_id)
        payment = None if refund is None else await session.get(Payment, refund.payment_id)
    if refund is None or payment is None or refund.status != "pending" or refund.payment_request is None:
        return
    try:
        backend = await ctx.backends.get(payment.backend_ref)
        result = await backend.pay_invoice(refund.payment_request, max_fee_msat=refund.max_fee_msat)
    except LightningError as exc:
        # The protocol: a payment that may have left is never an exception. Still, nothing is
        # concluded here: the background check asks the backend before failing it.
        log.warning("refund_not_sent", refund_id=refund_id, backend=exc.backend, error=str(exc))
        async with ctx.db.writing() as session:
            await repository.record_outcome(session, refund_id, "not_sent", ctx.clock())
        return
    except Exception:
        log.exception("refund_payment_crashed", refund_id=refund_id)  # outcome unknown: stays pending
        raise
    async with ctx.db.writing() as session:
        await apply(session, refund_id, result, ctx.clock())


async def apply(session: AsyncSession, refund_id: str, result: PaymentResult, now: datetime) -> bool:
    """What the backend said of the refund's payment, applied once (conditional updates). True
    when this call completed or failed the refund (False: it was no longer pending, or the result
    decides nothing yet). The background check and the operator's ``refund settle`` come here too."""
    if result.status is PaymentStatus.SETTLED:
        return await service.complete(session, refund_id, result.preimage, result.fee_msat, now)
    if result.status is PaymentStatus.FAILED:
        return await service.fail(session, refund_id, result.error or "the payment failed", now)
    await repository.record_outcome(session, refund_id, result.status.value, now)
    log.info("refund_in_flight", refund_id=refund_id, outcome=result.status.value, error=result.error)
    return False


async def destination(ctx: Context, body: RefundCreate, sats: int) -> service.Destination:
    """Where the refund goes, checked (no funds move before this passes)."""
    given = [
        name for name in ("lightningInvoice", "lightningAddress", "bitcoinAddress") if getattr(body, name)
    ]
    if len(given) > 1:
        raise ValidationFailed(
            f"give one destination, not {' and '.join(given)}",
            errors={name: ["only one destination may be given"] for name in given},
            code="too_many_destinations",
        )
    if body.bitcoinAddress:
        raise ValidationFailed(
            "on-chain refunds are not supported: give a lightningInvoice, a lightningAddress, or "
            "neither for a claim link",
            errors={"bitcoinAddress": ["on-chain refunds are not supported"]},
            code="onchain_refunds_unsupported",
        )
    now, network, amount_msat = ctx.clock(), ctx.settings.network, sats * 1000
    if body.lightningInvoice:
        request = clean(body.lightningInvoice)
        invoice = check_invoice(request, network=network, amount_msat=amount_msat, now=now)
        field, address = "lightningInvoice", None
    elif body.lightningAddress:
        request, invoice = await lnurl.invoice_for(
            ctx.webhook_http,
            body.lightningAddress,
            amount_msat,
            network=network,
            now=now,
            seconds=ctx.settings.refund_lnurl_timeout_seconds,
            dev=ctx.settings.is_dev,
        )
        field, address = "lightningAddress", body.lightningAddress
    else:
        return service.Destination(type="claim")
    payment_hash = invoice.payment_hash.hex()
    async with ctx.db.reading() as session:
        await service.check_new_hash(session, payment_hash, field)
    return service.Destination(
        type="lightning",
        payment_request=request,
        payment_hash=payment_hash,
        lightning_address=address,
    )


async def create_refund(
    ctx: Context, merchant_id: str, body: RefundCreate, idempotency_key: str | None
) -> tuple[Refund, bool]:
    """Create (or return the existing, for a repeated Idempotency-Key) refund; pay it when it has
    a destination. The flag says whether it is new."""
    fingerprint = body.fingerprint()
    async with ctx.db.reading() as session:
        found = await service.existing(session, merchant_id, idempotency_key, fingerprint)
        if found is not None:
            return found, False
        payment = service.check_refundable(
            await repository.payment_of(session, merchant_id, body.invoiceId, lock=False), body.invoiceId
        )
        amount, sats = service.refund_amount(payment, body)
        await service.check_remaining(session, payment, amount)  # again under the lock, below
    target = await destination(ctx, body, sats)
    refund, created = await service.insert(
        ctx.db, merchant_id, body, idempotency_key, target, ctx.settings, ctx.clock()
    )
    if created and refund.type == "lightning":
        await service.wait_briefly(start(ctx, refund.id), ctx.settings.refund_pay_wait_seconds)
        async with ctx.db.reading() as session:
            refund = await repository.get_any(session, refund.id) or refund
    return refund, created
