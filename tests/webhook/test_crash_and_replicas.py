"""Real processes: ``kill -9`` in a burst of settlements, and two replicas on one PostgreSQL.

Each test gets a database of its own (the in-process test gateways must not deliver for it) and
a receiver on loopback that deduplicates on the event id, as the spec tells receivers to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from boltgate.db.engine import Database
from boltgate.webhook.models import Event
from tests.conftest import DB_KIND, PG_ADMIN_DSN, free_port
from tests.core.test_cli import Server, run
from tests.helpers import auth

pytestmark = pytest.mark.db


@pytest.fixture
async def own_database(tmp_path: Path) -> AsyncIterator[str]:
    if DB_KIND != "postgresql":
        yield f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
        return
    name = f"boltgate_crash_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def server_env(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "BOLTGATE_DATA_DIR": str(tmp_path / "data"),  # replicas share it: one dev node
        "BOLTGATE_DATABASE_URL": database_url,
        "BOLTGATE_PORT": str(port),
        "BOLTGATE_LOG_LEVEL": "WARNING",
        "BOLTGATE_RATE_LIMIT": "1000000/second",
        "BOLTGATE_SETTLEMENT_POLL_INTERVAL_SECONDS": "0.05",
        "BOLTGATE_RECONCILE_INTERVAL_SECONDS": "2",
        # the suite's other gateways hold connections too: PostgreSQL allows 100 in all
        "BOLTGATE_DATABASE_POOL_SIZE": "5",
    }


async def setup_merchant(env: dict[str, str], base: str, hook: str) -> str:
    key = (
        (await asyncio.to_thread(run, env, "merchant", "create", "Crash Shop"))
        .stdout.strip()
        .splitlines()[-1]
    )
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.post(
            "/api/webhooks", json={"url": hook, "events": ["payment.completed"]}, headers=auth(key)
        )
        assert r.status_code == 201, r.text
    return key


async def create_payments(base: str, key: str, count: int, tag: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        ids = []
        for i in range(count):
            r = await client.post(
                "/api/payments",
                json={"orderId": f"{tag}-{i}", "amount": "2.00", "currency": "EUR"},
                headers=auth(key),
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["invoiceId"])
        return ids


async def completed_per_invoice(database_url: str) -> Counter[str]:
    db = Database(database_url)
    try:
        async with db.reading() as session:
            rows = await session.execute(
                select(Event.invoice_id, func.count())
                .where(Event.type == "payment.completed")
                .group_by(Event.invoice_id)
            )
            return Counter({invoice: n for invoice, n in rows.all()})
    finally:
        await db.dispose()


async def unique_arrivals(receiver, path: str, count: int, timeout: float) -> set[str]:
    async def enough() -> bool:
        return len({r.json["id"] for r in receiver.received[path]}) >= count

    deadline = asyncio.get_running_loop().time() + timeout
    while not await enough() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    return {r.json["data"]["invoiceId"] for r in receiver.received[path]}


async def test_kill_9_in_a_burst_of_settlements_loses_no_event(tmp_path, own_database, receiver):
    n = 40
    path = f"/crash-{uuid.uuid4().hex[:6]}"
    env = server_env(tmp_path, own_database, free_port())
    server = Server(env)
    await asyncio.to_thread(server.start)
    try:
        key = await setup_merchant(env, server.url, receiver.behave(path))
        ids = await create_payments(server.url, key, n, "crash")

        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

            async def settle(invoice_id: str) -> None:
                with contextlib.suppress(httpx.HTTPError):
                    await client.post(f"/api/dev/payments/{invoice_id}/settle")

            burst = [asyncio.create_task(settle(i)) for i in ids]
            while sum(t.done() for t in burst) < n // 2:
                await asyncio.sleep(0.005)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)  # mid-burst: no shutdown, no cleanup
            await asyncio.gather(*burst)
        server.proc.wait(timeout=10)

        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for invoice_id in ids:  # whatever the burst did not settle (a settled one is refused)
                await client.post(f"/api/dev/payments/{invoice_id}/settle")
            arrived = await unique_arrivals(receiver, path, n, timeout=60)
            statuses = {
                (await client.get(f"/api/payments/{i}", headers=auth(key))).json()["status"] for i in ids
            }
        assert statuses == {"paid"}
        assert arrived == set(ids)
        unique_ids = {r.json["id"] for r in receiver.received[path]}
        assert len(unique_ids) == n  # deduplicated on the id: exactly N
        per_invoice = await completed_per_invoice(own_database)
        assert set(per_invoice) == set(ids) and set(per_invoice.values()) == {1}
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.skipif(DB_KIND != "postgresql", reason="replicas share one PostgreSQL")
async def test_two_replicas_deliver_every_event(tmp_path, own_database, receiver):
    n = 1000
    path = f"/replicas-{uuid.uuid4().hex[:6]}"
    first = Server(server_env(tmp_path, own_database, free_port()))
    second = Server(server_env(tmp_path, own_database, free_port()))
    await asyncio.to_thread(first.start)
    await asyncio.to_thread(second.start)
    try:
        key = await setup_merchant(first.env, first.url, receiver.behave(path))
        ids = await create_payments(first.url, key, n, "replica")
        async with httpx.AsyncClient(timeout=30) as client:
            semaphore = asyncio.Semaphore(16)

            async def settle(i: int, invoice_id: str) -> None:
                base = (first, second)[i % 2].url
                async with semaphore:
                    r = await client.post(f"{base}/api/dev/payments/{invoice_id}/settle")
                assert r.status_code == 200, r.text

            await asyncio.gather(*(settle(i, x) for i, x in enumerate(ids)))
        arrived = await unique_arrivals(receiver, path, n, timeout=120)
        assert arrived == set(ids)
        per_invoice = await completed_per_invoice(own_database)
        assert set(per_invoice.values()) == {1} and len(per_invoice) == n
        copies = Counter(r.json["id"] for r in receiver.received[path])
        duplicates = sum(c - 1 for c in copies.values())
        print(f"two replicas: {n} events, {len(receiver.received[path])} deliveries, {duplicates} duplicates")
        assert duplicates <= n // 100  # leases and SKIP LOCKED: duplicates only after a crash
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
