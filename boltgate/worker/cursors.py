"""Persisted stream positions: a watcher resumes where it stopped instead of replaying everything."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.worker.models import Cursor


async def get(session: AsyncSession, name: str) -> int:
    value = await session.scalar(select(Cursor.position).where(Cursor.name == name))
    return int(value or 0)


async def advance(session: AsyncSession, name: str, position: int) -> None:
    """Move the cursor forward (never back), creating it on first use.

    One upsert: the watchers of two replicas record their first settlement at the same moment
    on a fresh database, and an update-then-insert let the second insert fail on the primary key,
    rolling back that replica's whole settlement transaction (seen in bench/faults.py).
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Cursor).values(name=name, position=position)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Cursor.name],
            set_={"position": stmt.excluded.position},
            where=Cursor.position < stmt.excluded.position,
        )
    )
