"""The operator's hand on refunds the backend cannot decide: ``boltgate refund show | list | settle``.

A refund stays ``pending`` for as long as the backend cannot say what became of its payment (the
pay answer was lost and ``lookup_payment`` has no record, or the backend is gone); its amount stays
reserved. After checking the node by hand, the operator settles it. The rules keep the gateway
from paying twice or losing money:

- the backend is asked first (``lookup_payment``, read as the background check reads it). What
  it says binds: a payment it says *succeeded* is never marked failed (its amount would become
  refundable again: a second payment), one it says *failed* is never marked completed;
- when it cannot say (pending, unknown, unreachable) the operator's word needs ``force``; a
  preimage given must hash to the refund's payment hash;
- the outcome is applied by :func:`boltgate.refund.paying.apply`, the code path of the automatic
  check: one conditional update (``WHERE status = 'pending'``) with its webhook event and the
  payment's ``refunded`` status in the same transaction, so a concurrent check or another
  operator cannot apply a second outcome;
- an unclaimed claim link is not stuck, it is cancelled (failed the way an expired link is, with
  the same ``payment_hash IS NULL`` condition, so a wallet claiming it at that moment wins or loses
  cleanly); a link whose invoice was submitted is a payment like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from boltgate.config import Settings
from boltgate.db.engine import Database
from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.kit.clock import Clock, rfc3339, utcnow
from boltgate.lightning.base import LightningError, PaymentResult, PaymentStatus
from boltgate.merchant.backends import BackendPool
from boltgate.payment.models import Payment
from boltgate.refund import paying, repository, service, tasks
from boltgate.refund.models import Refund

log = structlog.get_logger(__name__)

FORCE_QUIET_SECONDS = 600  # a forced decision waits this long after the pay call began

Outcome = Literal["completed", "failed"]
LOOKUP_SECONDS = 30.0  # the backend's own timeouts apply first; this bounds a backend that hangs
MAX_REASON = 200
_PREIMAGE = re.compile(r"^[0-9a-f]{64}$")
_SAID = {
    PaymentStatus.SETTLED: "succeeded",
    PaymentStatus.FAILED: "failed",
    PaymentStatus.PENDING: "pending",
    PaymentStatus.UNKNOWN: "unknown",
}
_CANNOT_SAY = {
    "pending": "says the payment is still in flight",
    "unknown": "has no record of the payment (it may have left)",
    "unreachable": "cannot be reached",
}


class Refused(Conflict):
    """The operator's settlement contradicts what is known: nothing changed."""

    code = "refund_settle_refused"
    title = "Settlement refused"


@dataclass
class Desk:
    """What the operator's commands use: the database, the backends, the settings, the time.
    A :class:`boltgate.context.Context` has all of these too."""

    settings: Settings
    db: Database
    backends: BackendPool
    clock: Clock = utcnow


@asynccontextmanager
async def open_desk(settings: Settings) -> AsyncIterator[Desk]:
    """The database and the backends, as the gateway opens them (merchant wallets included)."""
    from boltgate.app import backend_env, build_backend  # the app module imports the whole gateway
    from boltgate.db.migrate import upgrade
    from boltgate.kit import crypto
    from boltgate.kit.netguard import parse_networks
    from boltgate.merchant.backends import merchant_env

    if settings.auto_migrate:
        await upgrade(settings.effective_database_url)
    db = Database(settings.effective_database_url, pool_size=2)
    backend = build_backend(settings)
    pool = BackendPool(
        backend,
        db,
        crypto.key_ring(settings).box(crypto.MERCHANT_BACKENDS),
        merchant_env(
            backend_env(settings),
            parse_networks(settings.proxy_allow_networks),
            settings.webhooks_may_reach_private,
        ),
    )
    try:
        yield Desk(settings, db, pool)
    finally:
        await pool.close()
        await backend.close()
        await db.dispose()


@dataclass(frozen=True, slots=True)
class BackendView:
    """What the backend says now of a refund's payment: ``said`` is succeeded, failed, pending,
    unknown, unreachable, or unclaimed (a claim link nobody claimed: nothing to ask about)."""

    said: str
    result: PaymentResult | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    refund: Refund
    said: str  # what the backend said when it was settled
    forced: bool  # the operator's word decided (the backend could not say)


async def _refund(desk: Desk, refund_id: str) -> Refund:
    async with desk.db.reading() as session:
        refund = await repository.get_any(session, refund_id.strip())
    if refund is None:
        raise NotFound(f"refund {refund_id} not found", code="refund_not_found")
    return refund


async def ask_backend(desk: Desk, refund: Refund) -> BackendView:
    """``lookup_payment`` on the backend that received the refunded payment (never a payment)."""
    if refund.payment_hash is None:
        return BackendView("unclaimed", detail="no wallet claimed the link yet: nothing was sent")
    async with desk.db.reading() as session:
        payment = await session.get(Payment, refund.payment_id)
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            backend = await desk.backends.get(None if payment is None else payment.backend_ref)
            result = await backend.lookup_payment(refund.payment_hash)
    except LightningError as exc:
        return BackendView("unreachable", detail=str(exc))
    except TimeoutError:
        return BackendView("unreachable", detail=f"no answer within {LOOKUP_SECONDS:g} s")
    return BackendView(_SAID[result.status], result, result.error)


async def show(desk: Desk, refund_id: str) -> tuple[Refund, BackendView]:
    refund = await _refund(desk, refund_id)
    return refund, await ask_backend(desk, refund)


async def listing(
    desk: Desk, *, pending_only: bool, older_than: timedelta | None, limit: int
) -> Sequence[Refund]:
    """Refunds of every merchant, oldest first; ``older_than``: created at least that long ago."""
    before = None if older_than is None else desk.clock() - older_than
    async with desk.db.reading() as session:
        return await repository.oldest(session, pending_only=pending_only, created_before=before, limit=limit)


def _clean_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise ValidationFailed("--reason: say why (it is kept with the refund and logged)")
    if len(text) > MAX_REASON:
        raise ValidationFailed(f"--reason: at most {MAX_REASON} characters")
    return text


def _clean_preimage(preimage: str | None) -> str | None:
    if preimage is None:
        return None
    text = preimage.strip().lower()
    if not _PREIMAGE.match(text):
        raise ValidationFailed("--preimage: 64 hexadecimal characters (32 bytes)")
    return text


def _decide(
    refund: Refund, view: BackendView, outcome: Outcome, preimage: str | None, force: bool, failure: str
) -> tuple[PaymentResult, bool]:
    """The result to apply, and whether the operator's word (``force``) decided it."""
    payment_hash = refund.payment_hash
    assert payment_hash is not None
    result = None if view.result is None else tasks.judged(refund, view.result)
    said = view.said if result is None else _SAID[result.status]
    if said == "succeeded":
        assert result is not None
        if outcome == "failed":
            raise Refused(
                "the backend says the payment succeeded: the customer was paid, so the refund cannot "
                "be marked failed (its amount would become refundable again). Settle it --completed."
            )
        proof = result.preimage or preimage
        return PaymentResult(PaymentStatus.SETTLED, payment_hash, proof, result.fee_msat), False
    if said == "failed":
        if outcome == "completed":
            raise Refused(
                "the backend says the payment failed: the customer was not paid, so the refund cannot "
                "be marked completed. Settle it --failed."
            )
        return PaymentResult(PaymentStatus.FAILED, payment_hash, error=failure), False
    if not force:
        raise Refused(
            f"the backend {_CANNOT_SAY.get(said, said)}"
            f"{f' ({view.detail})' if view.detail else ''}: it cannot tell whether the customer was "
            "paid. Check the payment on the node by hand, then run again with --force."
        )
    if outcome == "completed":
        return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage=preimage), True
    return PaymentResult(PaymentStatus.FAILED, payment_hash, error=failure), True


async def _again(desk: Desk, refund_id: str) -> Refused:
    """Why a conditional update changed nothing: someone else settled it first, or a wallet claimed it."""
    current = await _refund(desk, refund_id)
    if current.status == "pending":
        return Refused(
            "a wallet claimed the link meanwhile: its invoice is being paid. Look again with "
            f"`boltgate refund show {refund_id}`."
        )
    return Refused(
        f"refund {refund_id} became {current.status} meanwhile (the automatic check or another "
        "operator came first); nothing changed"
    )


async def _cancel_claim(desk: Desk, refund: Refund, outcome: Outcome, reason: str) -> Settled:
    """An unclaimed claim link, cancelled the way an expired one is failed (the same update)."""
    if outcome == "completed":
        raise Refused(
            "nobody claimed this link, so nothing was paid: it cannot be completed. Settle it --failed "
            "to cancel the link."
        )
    failure = f"the claim link was cancelled by the operator: {reason}"
    async with desk.db.writing() as session:
        done = await service.fail(session, refund.id, failure, desk.clock(), unclaimed=True)
    if not done:
        raise await _again(desk, refund.id)
    return Settled(await _refund(desk, refund.id), "unclaimed", forced=False)


async def settle(
    desk: Desk,
    refund_id: str,
    outcome: Outcome,
    *,
    reason: str,
    force: bool = False,
    preimage: str | None = None,
) -> Settled:
    """Complete or fail a pending refund on the operator's word, within the rules above."""
    reason, preimage = _clean_reason(reason), _clean_preimage(preimage)
    if outcome == "failed" and preimage is not None:
        raise ValidationFailed("--preimage goes with --completed (it proves a payment)")
    refund = await _refund(desk, refund_id)
    if refund.status != "pending":
        raise Refused(f"refund {refund.id} is {refund.status}, not pending: there is nothing to settle")
    if refund.payment_hash is None:
        settled = await _cancel_claim(desk, refund, outcome, reason)
    else:
        settled = await _settle_payment(desk, refund, outcome, reason, force, preimage)
    log.info(
        "refund_settled_by_operator",
        refund_id=refund.id,
        invoice_id=refund.payment_id,
        outcome=settled.refund.status,
        forced=settled.forced,
        backend=settled.said,
        reason=reason,
    )
    return settled


async def _settle_payment(
    desk: Desk, refund: Refund, outcome: Outcome, reason: str, force: bool, preimage: str | None
) -> Settled:
    assert refund.payment_hash is not None
    if preimage is not None and hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != refund.payment_hash:
        raise Refused("the preimage does not match the refund's payment hash: it proves nothing")
    wait = desk.settings.refund_pay_wait_seconds
    if tasks.being_paid(refund, desk.clock(), wait):
        raise Refused(f"the refund is being paid right now: wait {wait:g} s and look again")
    view = await ask_backend(desk, refund)
    result, forced = _decide(
        refund, view, outcome, preimage, force, f"settled as failed by the operator: {reason}"
    )
    if forced and tasks.being_paid(refund, desk.clock(), max(wait, FORCE_QUIET_SECONDS)):
        # a backend's own pay call may outlast the request's wait: no guess while it could be running
        raise Refused(
            f"no answer of the pay call is recorded yet and it started less than "
            f"{FORCE_QUIET_SECONDS // 60} minutes ago: the payment may still be in flight; look again later"
        )
    async with desk.db.writing() as session:
        applied = await paying.apply(session, refund.id, result, desk.clock())
    if not applied:
        raise await _again(desk, refund.id)
    return Settled(await _refund(desk, refund.id), view.said, forced)


# -- what the commands print


def age(since: datetime, now: datetime) -> str:
    seconds = max(int((now - since).total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def destination(refund: Refund) -> str:
    if refund.type == "claim":
        state = "unclaimed" if refund.payment_hash is None else "claimed"
        return f"claim link ({state}, expires {rfc3339(refund.claim_expires_at)})"
    if refund.lightning_address:
        return f"lightning address {refund.lightning_address}"
    return "lightning invoice"


def describe(refund: Refund, view: BackendView, now: datetime) -> list[str]:
    """``refund show``: the refund, and what the backend says now."""
    lines = [
        f"refund: {refund.id}",
        f"merchant: {refund.merchant_id}",
        f"payment: {refund.payment_id}",
        f"status: {refund.status}",
        f"amount: {refund.amount} {refund.currency} ({refund.amount_sats} sats)",
        f"destination: {destination(refund)}",
        f"payment hash: {refund.payment_hash or '-'}",
        f"pay answer: {refund.pay_outcome or '-'}",
        f"created: {rfc3339(refund.created_at)} ({age(refund.created_at, now)} ago)",
        f"updated: {rfc3339(refund.updated_at)} ({age(refund.updated_at, now)} ago)",
    ]
    if refund.failure:
        lines.append(f"failure: {refund.failure}")
    said = view.said + (f" ({view.detail})" if view.detail else "")
    lines.append(f"backend says: {said}")
    if refund.status == "failed" and view.said == "succeeded":
        lines.append("WARNING: the refund is failed but the backend says its payment succeeded")
    elif refund.status == "completed" and view.said == "failed":
        lines.append("WARNING: the refund is completed but the backend says its payment failed")
    return lines


def row(refund: Refund, now: datetime) -> str:
    """One line of ``refund list`` (tab-separated)."""
    return "\t".join(
        (
            refund.id,
            refund.status,
            refund.type,
            f"{refund.amount} {refund.currency}",
            f"{refund.amount_sats} sats",
            age(refund.created_at, now),
            refund.merchant_id,
            refund.payment_hash or "unclaimed",
        )
    )
