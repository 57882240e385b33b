"""All SQL of the refunds domain (an ORM session; refunds are not a hot path).

Every status change is a conditional update (``WHERE status = 'pending'``), so the request that
paid, the background check and another replica apply each outcome exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.l402.models import Challenge
from boltgate.payment.models import Payment
from boltgate.refund.models import Refund

OPEN = ("pending", "completed")  # refunds that count against what was paid


async def payment_of(
    session: AsyncSession, merchant_id: str, payment_id: str, *, lock: bool
) -> Payment | None:
    """The merchant's payment; ``lock``: row-locked until the transaction ends (PostgreSQL; SQLite
    has one writer at a time anyway), so two refunds of one payment are checked one after the other."""
    query = select(Payment).where(Payment.id == payment_id, Payment.merchant_id == merchant_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def amounts(session: AsyncSession, payment_id: str, statuses: Sequence[str]) -> Decimal:
    """The sum of the refunds of a payment in ``statuses``, in the payment's currency."""
    rows = await session.scalars(
        select(Refund.amount).where(Refund.payment_id == payment_id, Refund.status.in_(statuses))
    )
    return sum((Decimal(amount) for amount in rows), Decimal(0))


async def get(session: AsyncSession, merchant_id: str, refund_id: str) -> Refund | None:
    return (
        await session.execute(select(Refund).where(Refund.id == refund_id, Refund.merchant_id == merchant_id))
    ).scalar_one_or_none()


async def get_any(session: AsyncSession, refund_id: str) -> Refund | None:
    return await session.get(Refund, refund_id)


async def by_idempotency_key(session: AsyncSession, merchant_id: str, key: str) -> Refund | None:
    return (
        await session.execute(
            select(Refund).where(Refund.merchant_id == merchant_id, Refund.idempotency_key == key)
        )
    ).scalar_one_or_none()


async def hash_is_known(session: AsyncSession, payment_hash: str) -> bool:
    """True when the hash is of one of our own invoices (payments, L402 challenges) or of a refund
    already on its way."""
    ours = await session.scalar(
        select(func.count()).select_from(Payment).where(Payment.payment_hash == payment_hash)
    )
    ours = ours or await session.scalar(
        select(func.count()).select_from(Challenge).where(Challenge.payment_hash == payment_hash)
    )
    used = await session.scalar(
        select(func.count()).select_from(Refund).where(Refund.payment_hash == payment_hash)
    )
    return bool(ours) or bool(used)


async def list_page(
    session: AsyncSession, merchant_id: str, payment_id: str | None, limit: int, offset: int
) -> tuple[Sequence[Refund], int]:
    where = [Refund.merchant_id == merchant_id]
    if payment_id is not None:
        where.append(Refund.payment_id == payment_id)
    total = await session.scalar(select(func.count()).select_from(Refund).where(*where))
    items = await session.scalars(
        select(Refund)
        .where(*where)
        .order_by(Refund.created_at.desc(), Refund.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(items), int(total or 0)


async def take_claim(
    session: AsyncSession, refund_id: str, payment_request: str, payment_hash: str, now: datetime
) -> bool:
    """Bind the invoice a wallet submitted to an unclaimed, unexpired claim link (once)."""
    result = await session.execute(
        update(Refund)
        .where(
            Refund.id == refund_id,
            Refund.status == "pending",
            Refund.payment_hash.is_(None),
            Refund.claim_expires_at > now,
        )
        .values(payment_request=payment_request, payment_hash=payment_hash, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def record_outcome(session: AsyncSession, refund_id: str, outcome: str, now: datetime) -> None:
    await session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == "pending")
        .values(pay_outcome=outcome, updated_at=now)
    )


async def complete(
    session: AsyncSession, refund_id: str, preimage: str | None, fee_msat: int, now: datetime
) -> bool:
    result = await session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == "pending", Refund.payment_hash.is_not(None))
        .values(status="completed", preimage=preimage, fee_msat=fee_msat, completed_at=now, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def fail(
    session: AsyncSession, refund_id: str, failure: str, now: datetime, *, unclaimed: bool
) -> bool:
    """Fail a pending refund; ``unclaimed``: only if no invoice was ever bound (an expired claim link)."""
    query = update(Refund).where(Refund.id == refund_id, Refund.status == "pending")
    if unclaimed:
        query = query.where(Refund.payment_hash.is_(None))
    result = await session.execute(
        query.values(status="failed", failure=failure[:300], failed_at=now, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_payment_refunded(session: AsyncSession, payment_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == "paid")
        .values(status="refunded", updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def pending(session: AsyncSession, after: str, batch: int) -> Sequence[Refund]:
    """Pending refunds in id order, after ``after`` (the background check pages through them)."""
    rows = await session.scalars(
        select(Refund).where(Refund.status == "pending", Refund.id > after).order_by(Refund.id).limit(batch)
    )
    return list(rows)


async def oldest(
    session: AsyncSession, *, pending_only: bool, created_before: datetime | None, limit: int
) -> Sequence[Refund]:
    """Refunds of every merchant, oldest first (the operator's ``refund list``)."""
    query = select(Refund)
    if pending_only:
        query = query.where(Refund.status == "pending")
    if created_before is not None:
        query = query.where(Refund.created_at < created_before)
    rows = await session.scalars(query.order_by(Refund.created_at, Refund.id).limit(limit))
    return list(rows)
