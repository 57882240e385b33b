"""All SQL of the payments domain.

The request path (create, look-ups) uses Core statements built once at import and run on a
plain connection: half the cost of an ORM session per query, measured. They return rows whose
attribute names are the model's (``row.metadata_``, ``row.order_id``), so callers read a row and a
``Payment`` alike. Status changes are conditional updates, so that concurrent watchers,
sweepers and replicas apply each transition exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.conn import Conn
from boltgate.db.raw import RawStatement, Record
from boltgate.payment.models import IdempotencyKey, Payment

PaymentRow = Row[Any] | Record
_payments = Payment.__table__
_keys = IdempotencyKey.__table__
_COLUMNS = [attr.columns[0].label(attr.key) for attr in Payment.__mapper__.column_attrs]
_BY_ID = select(*_COLUMNS).where(_payments.c.id == bindparam("id"), _payments.c.merchant_id == bindparam("m"))
_BY_ORDER = select(*_COLUMNS).where(
    _payments.c.merchant_id == bindparam("m"), _payments.c.order_id == bindparam("order_id")
)
_BY_KEY = (
    select(_keys.c.fingerprint.label("key_fingerprint"), *_COLUMNS)
    .join(_payments, _payments.c.id == _keys.c.payment_id)
    .where(_keys.c.merchant_id == bindparam("m"), _keys.c.key == bindparam("key"))
)
_INSERT_PAYMENT = insert(Payment)
_INSERT_KEY = insert(IdempotencyKey)


_ATTRIBUTES = [(attr.columns[0].name, attr.key) for attr in Payment.__mapper__.column_attrs]
_KEY_COLUMNS = ["merchant_id", "key", "fingerprint", "payment_id", "created_at"]
RAW_BY_ID = RawStatement(_BY_ID)
RAW_BY_ID_ANY_MERCHANT = RawStatement(select(*_COLUMNS).where(_payments.c.id == bindparam("id")))
RAW_BY_ORDER = RawStatement(_BY_ORDER)
RAW_BY_KEY = RawStatement(_BY_KEY)
RAW_INSERT_PAYMENT = RawStatement(_INSERT_PAYMENT, [column for column, _ in _ATTRIBUTES])
RAW_INSERT_KEY = RawStatement(_INSERT_KEY, _KEY_COLUMNS)


def _values(payment: Payment | Record) -> dict[str, Any]:
    return {column: getattr(payment, key) for column, key in _ATTRIBUTES}


async def insert_payment(conn: Conn, payment: Payment | Record, idempotency_key: str | None) -> None:
    await conn.run(RAW_INSERT_PAYMENT, _values(payment))
    if idempotency_key is not None:
        await conn.run(
            RAW_INSERT_KEY,
            {
                "merchant_id": payment.merchant_id,
                "key": idempotency_key,
                "fingerprint": payment.fingerprint,
                "payment_id": payment.id,
                "created_at": payment.created_at,
            },
        )


async def fetch(conn: Conn, merchant_id: str, payment_id: str) -> PaymentRow | None:
    return await conn.first(RAW_BY_ID, {"id": payment_id, "m": merchant_id})


async def fetch_public(conn: Conn, payment_id: str) -> PaymentRow | None:
    """By invoice id alone: for the public checkout routes, which show only what the payer sees."""
    return await conn.first(RAW_BY_ID_ANY_MERCHANT, {"id": payment_id})


async def fetch_by_order(conn: Conn, merchant_id: str, order_id: str) -> PaymentRow | None:
    return await conn.first(RAW_BY_ORDER, {"m": merchant_id, "order_id": order_id})


async def fetch_by_idempotency_key(conn: Conn, merchant_id: str, key: str) -> PaymentRow | None:
    """The payment made under this key; its row carries the key's ``key_fingerprint``."""
    return await conn.first(RAW_BY_KEY, {"m": merchant_id, "key": key})


async def get(session: AsyncSession, merchant_id: str, payment_id: str) -> Payment | None:
    stmt = select(Payment).where(Payment.id == payment_id, Payment.merchant_id == merchant_id)
    return (await session.scalars(stmt)).first()


async def get_by_hash(session: AsyncSession, payment_hash: str) -> Payment | None:
    return (await session.scalars(select(Payment).where(Payment.payment_hash == payment_hash))).first()


async def list_page(
    session: AsyncSession,
    merchant_id: str,
    *,
    status: str | None,
    order_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Payment], int]:
    conditions = [Payment.merchant_id == merchant_id]
    if status:
        conditions.append(Payment.status == status)
    if order_id:
        conditions.append(Payment.order_id == order_id)
    if created_from:
        conditions.append(Payment.created_at >= created_from)
    if created_to:
        conditions.append(Payment.created_at < created_to)
    total = await session.scalar(select(func.count()).select_from(Payment).where(*conditions))
    stmt = (
        select(Payment)
        .where(*conditions)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await session.scalars(stmt)).all()), int(total or 0)


async def mark_paid(
    session: AsyncSession, payment_id: str, received_msat: int, paid_at: datetime, now: datetime
) -> bool:
    """unpaid|expired → paid; True only for the caller that made the change."""
    result = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status.in_(("unpaid", "expired")))
        .values(status="paid", paid_at=paid_at, received_msat=received_msat, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_expired(session: AsyncSession, payment_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == "unpaid", Payment.expires_at <= now)
        .values(status="expired", expired_at=now, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


class AnyBackend:
    """Any backend (no filter on ``backend_ref``)."""


ANY_BACKEND = AnyBackend()
OpenRow = tuple[str, str, str, str | None]  # id, payment hash, backend invoice id, backend ref


def _of_backend(ref: str | AnyBackend | None) -> list[Any]:
    if isinstance(ref, AnyBackend):
        return []
    return [Payment.backend_ref.is_(None) if ref is None else Payment.backend_ref == ref]


async def due_for_expiry(
    session: AsyncSession, now: datetime, limit: int, after: tuple[datetime, str] | None = None
) -> Sequence[tuple[OpenRow, datetime]]:
    """Unpaid payments past their expiry with that expiry, by expiry then id (``after``: the
    expiry and id of the last row of the previous page)."""
    conditions = [Payment.status == "unpaid", Payment.expires_at <= now]
    if after is not None:
        conditions.append(
            (Payment.expires_at > after[0]) | ((Payment.expires_at == after[0]) & (Payment.id > after[1]))
        )
    stmt = (
        select(
            Payment.id,
            Payment.payment_hash,
            Payment.backend_invoice_id,
            Payment.backend_ref,
            Payment.expires_at,
        )
        .where(*conditions)
        .order_by(Payment.expires_at, Payment.id)
        .limit(limit)
    )
    return [((r[0], r[1], r[2], r[3]), r[4]) for r in (await session.execute(stmt)).all()]


async def open_backend_refs(session: AsyncSession, since: datetime) -> list[str]:
    """The merchant backends with unpaid payments expiring after ``since`` (to be watched)."""
    stmt = (
        select(Payment.backend_ref)
        .where(Payment.status == "unpaid", Payment.backend_ref.is_not(None), Payment.expires_at > since)
        .distinct()
    )
    return [str(ref) for ref in (await session.scalars(stmt)).all() if ref is not None]


async def open_for_reconcile(
    session: AsyncSession,
    status: str,
    expired_since: datetime,
    after_id: str,
    limit: int,
    *,
    ref: str | AnyBackend | None = ANY_BACKEND,
) -> Sequence[OpenRow]:
    """A page of ``unpaid`` payments, or of those ``expired`` since ``expired_since`` (a late
    settlement still counts), ordered by id for keyset paging; ``ref`` keeps those of one backend."""
    conditions = [Payment.status == status, Payment.id > after_id, *_of_backend(ref)]
    if status == "expired":
        conditions.append(Payment.expired_at >= expired_since)
    stmt = (
        select(Payment.id, Payment.payment_hash, Payment.backend_invoice_id, Payment.backend_ref)
        .where(*conditions)
        .order_by(Payment.id)
        .limit(limit)
    )
    return [(row[0], row[1], row[2], row[3]) for row in (await session.execute(stmt)).all()]


async def hash_of(session: AsyncSession, payment_id: str) -> str | None:
    value = await session.scalar(select(Payment.payment_hash).where(Payment.id == payment_id))
    return None if value is None else str(value)
