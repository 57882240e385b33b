"""The SQLite read pool reuses the connection given back last: after a burst has opened many
connections, the usual load runs on a few of them, so only their page caches fill (each
connection caches up to 2 MB of the database; cycling through all of them made a 30-minute soak
grow by 28 MB, bench/RESULTS.md)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from boltgate.db.engine import Database


async def test_after_a_burst_sequential_reads_reuse_one_connection(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("the SQLite read engine")

    async def held_read() -> None:
        async with db.reading() as session:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(0.02)  # all open at once

    await asyncio.gather(*(held_read() for _ in range(8)))
    used = set()
    for _ in range(16):
        async with db.reading() as session:
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            used.add(id(raw.driver_connection))
    assert len(used) == 1
