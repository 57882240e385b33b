"""Job leases: one replica runs a periodic job's round, the others skip it; a replica that dies
frees its lease at once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from boltgate import app as app_module
from boltgate.app import open_context
from boltgate.db.conn import asyncpg_dsn
from boltgate.db.engine import Database, is_sqlite
from boltgate.payment import tasks as payment_tasks
from boltgate.worker.leases import Leases, lock_key
from tests.conftest import make_settings


def job_name() -> str:
    return f"test-{uuid.uuid4().hex}"


async def test_a_lease_held_by_one_replica_is_refused_to_the_other(db: Database, database_url: str) -> None:
    other_db = Database(database_url, pool_size=2)
    mine, theirs = Leases(db), Leases(other_db)
    job, another = job_name(), job_name()
    try:
        async with mine.hold(job) as first:
            assert first
            async with theirs.hold(job) as second:
                assert second is db.is_sqlite  # SQLite: one gateway per file, every round runs
            async with theirs.hold(another) as unrelated:
                assert unrelated  # leases are per job
        async with theirs.hold(job) as after:
            assert after  # released when the round ended
    finally:
        await mine.close()
        await theirs.close()
        await other_db.dispose()


async def test_a_round_that_fails_releases_its_lease(db: Database, database_url: str) -> None:
    other_db = Database(database_url, pool_size=2)
    mine, theirs = Leases(db), Leases(other_db)
    job = job_name()
    try:

        async def failing_round() -> None:
            async with mine.hold(job) as first:
                assert first
                raise RuntimeError("the job failed")

        with pytest.raises(RuntimeError):
            await failing_round()
        async with theirs.hold(job) as after:
            assert after
    finally:
        await mine.close()
        await theirs.close()
        await other_db.dispose()


async def test_a_replica_killed_mid_round_frees_its_lease(db: Database, database_url: str) -> None:
    """kill -9 of a replica closes its connections; the database frees the lock with them (here:
    the holder's backend terminated, as PostgreSQL sees a dead client)."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL advisory locks")
    other_db = Database(database_url, pool_size=2)
    mine, theirs = Leases(db), Leases(other_db)
    job = job_name()
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    holding, gone = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with mine.hold(job) as first:
            assert first
            holding.set()
            await gone.wait()

    task = asyncio.create_task(holder())
    try:
        await holding.wait()
        async with theirs.hold(job) as second:
            assert not second
        key = lock_key(job) & 0xFFFF_FFFF_FFFF_FFFF  # a bigint lock shows as two oids
        pid = await admin.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid = $1::bigint::oid AND objid = $2::bigint::oid",
            key >> 32,
            key & 0xFFFF_FFFF,
        )
        assert pid is not None
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(50):
            async with theirs.hold(job) as taken:
                if taken:
                    break
            await asyncio.sleep(0.1)
        assert taken
    finally:
        gone.set()
        await asyncio.gather(task, return_exceptions=True)
        await admin.close()
        await mine.close()
        await theirs.close()
        await other_db.dispose()


def test_lock_keys_are_stable_and_distinct() -> None:
    assert lock_key("reconcile") == lock_key("reconcile")
    assert lock_key("reconcile") != lock_key("expire")
    assert -(2**63) <= lock_key("reconcile") < 2**63


async def test_two_replicas_never_sweep_at_the_same_time(
    data_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways' workers on one PostgreSQL database: the expiry sweep (every 20 ms here, each
    round 50 ms long) runs in turn, never on both replicas at once."""
    if is_sqlite(database_url):
        pytest.skip("replicas share a PostgreSQL database")
    running, most, rounds = 0, 0, 0

    async def sweep(*_args: object, **_kwargs: object) -> None:
        nonlocal running, most, rounds
        running += 1
        most = max(most, running)
        rounds += 1
        await asyncio.sleep(0.05)
        running -= 1

    monkeypatch.setattr(payment_tasks, "expire_due", sweep)
    settings = make_settings(data_root, database_url, expiry_sweep_interval_seconds=0.02)
    async with open_context(settings) as one, open_context(settings) as two:
        workers = app_module.start_workers(one) + app_module.start_workers(two)
        try:
            await asyncio.sleep(1.5)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    assert most == 1
    assert rounds >= 8  # the rounds did run, one replica or the other
