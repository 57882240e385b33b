"""Persisted stream positions: a watcher resumes where it stopped instead of replaying everything."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.worker.models import Cursor


async def get(session: AsyncSession, name: str) -> int:
    value = await session.scalar(select(Cursor.position).where(Cursor.name == name))
    return int(value or 0)


async def advance(session: AsyncSession, name: str, position: int) -> None:
    """Move the cursor forward (never back), creating it on first use."""
    result = await session.execute(
        update(Cursor).where(Cursor.name == name, Cursor.position < position).values(position=position)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        exists = await session.scalar(select(Cursor.position).where(Cursor.name == name))
        if exists is None:
            session.add(Cursor(name=name, position=position))
            await session.flush()
