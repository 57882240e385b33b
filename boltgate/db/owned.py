"""One merchant's object by id: the tenancy check every merchant API shares."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.errors import NotFound


class _Owned(Protocol):
    merchant_id: Any


T = TypeVar("T", bound=_Owned)


async def owned(
    session: AsyncSession,
    model: type[T],
    merchant_id: str,
    object_id: str,
    *,
    what: str,
    code: str,
    lock: bool = False,
) -> T:
    """The row of ``model`` with this id if it belongs to ``merchant_id``; otherwise 404 ``code``
    (another merchant's object is answered exactly like a missing one). ``lock`` takes the row for
    the rest of the transaction (``FOR UPDATE`` on PostgreSQL; SQLite has one writer anyway), so
    read-check-write changes of one object run one after the other."""
    found = await session.get(model, object_id, with_for_update=lock, populate_existing=lock)
    if found is None or found.merchant_id != merchant_id:
        raise NotFound(f"{what} {object_id} not found", code=code)
    return found
