"""One run of a periodic job at a time across replicas.

The reconciler, the expiry sweeper, the refund checks and the clean-ups are safe to run twice
(every change they make is a conditional update), but on N replicas sharing one PostgreSQL
database each run would ask the Lightning backend N times about every open payment. So a
run first takes a PostgreSQL advisory lock named after its job, with ``pg_try_advisory_xact_lock``
in a transaction of its own that stays open for the run: the replica that gets it runs the job,
the others skip that round. The lock goes with the transaction, so a replica killed mid-run, or
a connection lost in a database restart, frees it at once: no lease to expire, no home-made
election. The transaction only holds the lock (it reads and writes nothing), so it keeps no
snapshot that would hold back vacuum.

The connections come from a pool of their own (at most one per job), not from the pool that
serves requests. On SQLite there is one gateway process per database file and every run goes
ahead.

The settlement watchers are not behind a lease: a stream on every replica means a replica that
dies loses no settlement, and crediting a payment is idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]

from boltgate.db.conn import asyncpg_dsn
from boltgate.db.engine import Database


def lock_key(job: str) -> int:
    """The advisory-lock key of a job: a stable signed 64-bit number from its name."""
    digest = hashlib.sha256(b"boltgate-job:" + job.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leases:
    """Take the lease of a job for one run (``async with leases.hold("reconcile") as mine``)."""

    def __init__(self, db: Database, *, jobs: int = 8) -> None:
        self._db = db
        self._jobs = jobs
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        asyncpg_dsn(self._db.url),
                        min_size=0,
                        max_size=self._jobs,
                        max_inactive_connection_lifetime=300,
                    )
        return self._pool

    @asynccontextmanager
    async def hold(self, job: str) -> AsyncIterator[bool]:
        """Yield True when this process holds the job's lease for the block, False when another
        one is running it now (skip the round)."""
        if self._db.is_sqlite:
            yield True
            return
        pool = await self._connections()
        async with pool.acquire() as connection, connection.transaction():
            yield bool(await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_key(job)))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
