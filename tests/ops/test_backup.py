"""Backup, restore and upgrade as deploy/README.md tells an operator to do them.

A gateway takes payments (some paid on the dev node) and ``boltgate backup`` copies its database
while it runs; the copy is restored into a fresh instance (a new data dir, or a new PostgreSQL
database with ``pg_restore``), where a ``boltgate serve`` finds every payment with its status and
the merchant's API key still works; the server key opens the sealed secrets again, another key
does not. Upgrading is ``boltgate migrate`` on a database of an older revision.

Each test has a database of its own: SQLite in its tmp dir, or a new PostgreSQL database in the
PostgreSQL run (the ``db`` marker), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from boltgate.db.engine import Database, is_sqlite
from boltgate.db.migrate import alembic_config, downgrade, upgrade
from boltgate.kit.crypto import SealError, SecretBox
from boltgate.merchant import service as merchant_service
from boltgate.ops.backup import BackupError, backup, pg_environment
from tests.conftest import DB_KIND, PG_ADMIN_DSN, Gateway, free_port, make_settings
from tests.core.test_cli import Server, run
from tests.helpers import auth

SECRET = "backup-test-server-key-" + "k" * 24
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
async def new_database(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Makes empty databases (URLs) of the run's kind; PostgreSQL ones are dropped at the end."""
    made: list[str] = []

    async def make(label: str) -> str:
        if DB_KIND != "postgresql":
            return f"sqlite+aiosqlite:///{tmp_path / label / 'boltgate.db'}"
        name = f"boltgate_{label}_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        made.append(name)
        return PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"

    yield make
    if made:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def server_env(data_dir: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "BOLTGATE_DATA_DIR": str(data_dir),
        "BOLTGATE_DATABASE_URL": database_url,
        "BOLTGATE_PORT": str(free_port()),
        "BOLTGATE_SECRET_KEY": SECRET,
        "BOLTGATE_LOG_LEVEL": "WARNING",
        "BOLTGATE_RATE_LIMIT": "100000/second",
        "BOLTGATE_DATABASE_POOL_SIZE": "3",  # PostgreSQL allows 100 connections to the whole suite
    }


async def start_gateway(data_dir: Path, database_url: str) -> Gateway:
    """An in-process gateway (fast to start) on a database of its own, with the test's server key."""
    port = free_port()
    settings = make_settings(
        data_dir, database_url, port=port, public_url=f"http://127.0.0.1:{port}", secret_key=SECRET
    )
    gateway = Gateway(settings)
    await gateway.start()
    return gateway


async def new_merchant(gateway: Gateway) -> tuple[str, str]:
    async with gateway.ctx.db.writing() as session:
        merchant, issued = await merchant_service.create_merchant(session, "Backup Shop")
    return merchant.id, issued.secret


async def take_payments(
    http: httpx.AsyncClient, key: str, orders: list[str], paid: set[str]
) -> dict[str, str]:
    """One payment per order id; those in ``paid`` paid on the dev node. Returns order -> invoice id."""
    ids = {}
    for order in orders:
        created = await http.post(
            "/api/payments", json={"orderId": order, "amount": "3.00", "currency": "USD"}, headers=auth(key)
        )
        assert created.status_code == 201, created.text
        ids[order] = created.json()["invoiceId"]
        if order in paid:
            settled = await http.post("/api/dev/pay", json={"paymentHash": created.json()["paymentHash"]})
            assert settled.status_code == 200, settled.text
    for order in paid:
        assert await status_of(http, key, ids[order], want="paid") == "paid"
    return ids


async def status_of(
    http: httpx.AsyncClient, key: str, invoice_id: str, want: str | None = None
) -> str | None:
    """The payment's status (None: not found); with ``want``, waits up to 10 s for it."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        response = await http.get(f"/api/payments/{invoice_id}", headers=auth(key))
        assert response.status_code in (200, 404), response.text
        status = response.json()["status"] if response.status_code == 200 else None
        if want is None or status == want or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.05)


async def query(database_url: str, sql: str, many: bool = False, **params: Any) -> Any:
    db = Database(database_url, pool_size=1)
    try:
        async with db.reading() as session:
            result = await session.execute(text(sql), params)
            return result.scalars().all() if many else result.scalar_one()
    finally:
        await db.dispose()


def pg_tools_match_the_server(server_version: str) -> str | None:
    """Why pg_dump/pg_restore cannot be used against this server (None: they can)."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        return "pg_dump/pg_restore are not installed"
    found = re.search(
        r"\) (\d+)", subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout
    )
    client = found.group(1) if found else "?"
    server = server_version.split(".")[0]
    if client != server:
        return f"pg_dump is PostgreSQL {client}, the server {server}: install postgresql-client-{server}"
    return None


async def restore(backup_file: Path, target_url: str) -> None:
    """What deploy/README.md tells: copy the SQLite file into place, or pg_restore into a new database."""
    if is_sqlite(target_url):
        target = Path(target_url.split("///", 1)[1])
        target.parent.mkdir(parents=True)
        shutil.copyfile(backup_file, target)
        return
    result = await asyncio.to_thread(
        subprocess.run,
        [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--no-password",
            f"--dbname={pg_environment(target_url)['PGDATABASE']}",
            str(backup_file),
        ],
        env={**os.environ, **pg_environment(target_url)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


async def keep_taking_payments(http: httpx.AsyncClient, key: str, started: list[str]) -> None:
    """Payments one after another until cancelled: the writes an online backup goes on beside."""
    while True:
        created = await http.post(
            "/api/payments",
            json={"orderId": f"during-{len(started)}", "amount": "1.00", "currency": "USD"},
            headers=auth(key),
        )
        assert created.status_code == 201, created.text
        started.append(created.json()["invoiceId"])


@pytest.mark.db
async def test_online_backup_restores_into_a_fresh_instance(tmp_path, new_database):
    source_url = await new_database("source")
    if DB_KIND == "postgresql":
        reason = pg_tools_match_the_server(await query(source_url, "SHOW server_version"))
        if reason:
            pytest.skip(reason)
    await upgrade(source_url)
    gateway = await start_gateway(tmp_path / "source", source_url)
    try:
        _, key = await new_merchant(gateway)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            hook = await http.post(
                "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "enabled": False}, headers=auth(key)
            )
            assert hook.status_code == 201, hook.text
            ids = await take_payments(http, key, ["paid-1", "paid-2", "open-1"], paid={"paid-1", "paid-2"})

            # the backup is taken while the gateway runs and takes payments (as its own user: the test's)
            backup_file = tmp_path / ("gateway.db" if DB_KIND != "postgresql" else "gateway.dump")
            env = server_env(tmp_path / "source", source_url)
            started_during: list[str] = []
            during = asyncio.create_task(keep_taking_payments(http, key, started_during))
            try:
                made = await asyncio.to_thread(run, env, "backup", str(backup_file))
            finally:
                during.cancel()
                await asyncio.gather(during, return_exceptions=True)
            assert started_during  # the backup did not stop the gateway's writes
            assert f"backup: {backup_file}" in made.stdout
            assert "BOLTGATE_SECRET_KEY" in made.stdout
            assert backup_file.stat().st_mode & 0o077 == 0
            later = await take_payments(http, key, ["after-backup"], paid=set())
    finally:
        await gateway.stop()

    restored_url = await new_database("restored")
    await restore(backup_file, restored_url)
    server = Server(server_env(tmp_path / "restored", restored_url))
    await asyncio.to_thread(server.start)  # `boltgate serve` migrates first: nothing to do
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/api/payments", headers=auth(key))).status_code == 200
            assert await status_of(http, key, ids["paid-1"]) == "paid"
            assert await status_of(http, key, ids["paid-2"]) == "paid"
            assert await status_of(http, key, ids["open-1"]) == "unpaid"
            assert await status_of(http, key, later["after-backup"]) is None  # made after the backup
            # a snapshot: the payments begun before some instant, every one of them, whole
            in_copy = await query(
                restored_url, "SELECT id FROM payments WHERE order_id LIKE 'during-%'", many=True
            )
            assert in_copy and set(in_copy) == set(started_during[: len(in_copy)])
            assert await status_of(http, key, started_during[len(in_copy) - 1]) == "unpaid"
            assert (await http.get("/api/payments", headers=auth("le_live_" + "x" * 40))).status_code == 401
    finally:
        await asyncio.to_thread(server.stop)

    sealed = await query(
        restored_url, "SELECT secret FROM webhook_endpoints WHERE id = :id", id=hook.json()["id"]
    )
    assert SecretBox(SECRET, "webhook-secrets").open(sealed) == hook.json()["secret"]
    with pytest.raises(SealError):  # restored without its server key, the secrets are lost
        SecretBox("another-server-key-" + "x" * 24, "webhook-secrets").open(sealed)


@pytest.mark.db
async def test_migrate_upgrades_an_older_database_keeping_its_data(tmp_path, new_database):
    url = await new_database("upgrade")
    await upgrade(url)
    gateway = await start_gateway(tmp_path / "upgrade", url)
    try:
        _, key = await new_merchant(gateway)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            ids = await take_payments(http, key, ["old-paid", "old-open"], paid={"old-paid"})
    finally:
        await gateway.stop()

    # the schema of an older release, with its data: SQLite rebuilds `merchants` on the way down,
    # which keeps the rows that refer to it only because migrations run with foreign keys off
    await downgrade(url, "0008")
    assert await query(url, "SELECT version_num FROM alembic_version") == "0008"

    migrated = await asyncio.to_thread(run, server_env(tmp_path / "upgrade", url), "migrate")
    assert "database is up to date" in migrated.stdout
    assert await query(url, "SELECT version_num FROM alembic_version") == HEAD

    gateway = await start_gateway(tmp_path / "upgrade", url)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            assert await status_of(http, key, ids["old-paid"]) == "paid"
            assert await status_of(http, key, ids["old-open"]) == "unpaid"
            more = await take_payments(http, key, ["new-paid"], paid={"new-paid"})
            assert await status_of(http, key, more["new-paid"]) == "paid"
    finally:
        await gateway.stop()


def test_backup_never_overwrites_and_leaves_nothing_behind(tmp_path):
    database = tmp_path / "boltgate.db"
    conn = sqlite3.connect(database)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    url = f"sqlite+aiosqlite:///{database}"
    existing = tmp_path / "existing.db"
    existing.write_text("keep me")
    with pytest.raises(BackupError, match="exists"):
        backup(url, existing)
    assert existing.read_text() == "keep me"
    with pytest.raises(BackupError, match="no database"):
        backup(f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}", tmp_path / "b.db")
    with pytest.raises(BackupError, match="not a directory"):
        backup(url, tmp_path / "nowhere" / "b.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boltgate.db", "existing.db"]

    made = backup(url, tmp_path / "b.db")
    assert (made.kind, made.size) == ("sqlite", (tmp_path / "b.db").stat().st_size)
    copy = sqlite3.connect(tmp_path / "b.db")
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
    assert copy.execute("SELECT x FROM t").fetchall() == [(1,)]
    copy.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the database to another user needs root")
def test_backup_refuses_to_run_as_another_user_than_the_databases(tmp_path):
    database = tmp_path / "boltgate.db"
    sqlite3.connect(database).execute("PRAGMA journal_mode=WAL").connection.close()
    os.chown(database, 10001, 10001)
    with pytest.raises(BackupError, match="uid 10001"):
        backup(f"sqlite+aiosqlite:///{database}", tmp_path / "b.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boltgate.db"]  # no root-owned -wal/-shm


def test_pg_environment_keeps_the_password_off_the_command_line():
    env = pg_environment("postgresql+asyncpg://gate:p%40ss@db.internal:6543/payments?ssl=require")
    assert env == {
        "PGHOST": "db.internal",
        "PGPORT": "6543",
        "PGUSER": "gate",
        "PGPASSWORD": "p@ss",
        "PGDATABASE": "payments",
        "PGSSLMODE": "require",
    }
    assert pg_environment("postgresql+asyncpg://postgres@127.0.0.1/test") == {
        "PGHOST": "127.0.0.1",
        "PGUSER": "postgres",
        "PGDATABASE": "test",
    }
