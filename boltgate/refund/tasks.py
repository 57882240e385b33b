"""The background check of pending refunds (one job, in ``start_workers``).

For each pending refund:

- a claim link nobody claimed before it expired fails (its amount is refundable again);
- a refund whose payment is on its way is looked up with the backend that received the payment
  (``lookup_payment``, never ``pay_invoice``): SETTLED completes it, FAILED fails it, PENDING
  waits. UNKNOWN (the backend has no record) fails it only when the payment is known not to have
  been sent (the backend raised before sending); otherwise it stays pending and is logged for the
  operator: a payment is never sent again on a guess.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from boltgate.context import Context
from boltgate.lightning.base import LightningError, PaymentResult, PaymentStatus
from boltgate.payment.models import Payment
from boltgate.refund import paying, repository, service
from boltgate.refund.models import Refund

log = structlog.get_logger(__name__)


async def check_pending(ctx: Context, batch: int = 100) -> int:
    """One pass over the pending refunds; returns how many were settled either way."""
    done, after = 0, ""
    while True:
        async with ctx.db.reading() as session:
            page = await repository.pending(session, after, batch)
        for refund in page:
            after = refund.id
            try:
                done += await _check(ctx, refund)
            except LightningError as exc:
                log.warning(
                    "refund_check_postponed", refund_id=refund.id, backend=exc.backend, error=str(exc)
                )
        if len(page) < batch:
            return done


def being_paid(refund: Refund, now: datetime, wait_seconds: float) -> bool:
    """True while the payment of a refund may be under way right now (its invoice was bound and
    no answer of ``pay_invoice`` is recorded yet, within the wait of the request that pays it)."""
    return (
        refund.payment_hash is not None
        and refund.pay_outcome is None
        and (now - refund.updated_at).total_seconds() < wait_seconds
    )


def judged(refund: Refund, result: PaymentResult) -> PaymentResult:
    """What ``lookup_payment`` said, read with what the refund knows: UNKNOWN (no record) of a
    payment the backend refused before sending (``not_sent``) is FAILED; any other UNKNOWN stays
    UNKNOWN (it may have left)."""
    if result.status is PaymentStatus.UNKNOWN and refund.pay_outcome == "not_sent":
        return PaymentResult(
            PaymentStatus.FAILED,
            result.payment_hash,
            error="the backend could not be reached; nothing was sent",
        )
    return result


async def _check(ctx: Context, refund: Refund) -> bool:
    now = ctx.clock()
    if refund.payment_hash is None:
        if refund.claim_expires_at is not None and refund.claim_expires_at <= now:
            async with ctx.db.writing() as session:
                return await service.fail(
                    session, refund.id, "the claim link expired unclaimed", now, unclaimed=True
                )
        return False
    if being_paid(refund, now, ctx.settings.refund_pay_wait_seconds):
        return False  # being paid right now, most likely by this very process
    async with ctx.db.reading() as session:
        payment = await session.get(Payment, refund.payment_id)
    if payment is None:
        return False
    backend = await ctx.backends.get(payment.backend_ref)
    result = judged(refund, await backend.lookup_payment(refund.payment_hash))
    if result.status is PaymentStatus.UNKNOWN:
        log.warning("refund_payment_unknown", refund_id=refund.id, outcome=refund.pay_outcome)
        return False
    if result.status is PaymentStatus.PENDING:
        return False
    async with ctx.db.writing() as session:
        return await paying.apply(session, refund.id, result, ctx.clock())
