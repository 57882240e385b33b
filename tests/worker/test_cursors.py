"""Stream cursors: created on first use, moved forward only, and created by two replicas at once."""

from __future__ import annotations

import asyncio
import uuid

from boltgate.db.engine import Database
from boltgate.worker import cursors


async def test_a_cursor_only_moves_forward(db: Database) -> None:
    name = f"test:{uuid.uuid4().hex}"
    for position in (5, 3, 9, 9):
        async with db.writing() as session:
            await cursors.advance(session, name, position)
    async with db.reading() as session:
        assert await cursors.get(session, name) == 9


async def test_two_replicas_create_the_same_cursor_at_once(db: Database, database_url: str) -> None:
    """On a fresh database the watchers of two replicas record their first settlement together.
    The second used to fail on the primary key (bench/faults.py, PostgreSQL), rolling back its
    whole settlement transaction; now it waits for the first and moves the cursor on."""
    other = Database(database_url, pool_size=2)  # the second replica's engine
    name = f"test:{uuid.uuid4().hex}"
    inserted, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.writing() as session:
            await cursors.advance(session, name, 1)
            inserted.set()
            await release.wait()  # its transaction still open

    async def second() -> None:
        async with other.writing() as session:
            await cursors.advance(session, name, 2)

    try:
        one = asyncio.create_task(first())
        await inserted.wait()
        two = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # PostgreSQL: the second insert now waits on the first's row
        release.set()
        await asyncio.gather(one, two)
        async with db.reading() as session:
            assert await cursors.get(session, name) == 2
    finally:
        await other.dispose()
