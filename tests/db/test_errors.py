"""A database that is down, restarting or full answers 503 ``database_unavailable`` (with
Retry-After, keeping the connection) instead of a 500: bench/faults.py found both a PostgreSQL
restart and a full disk under SQLite answering 500 with a traceback, hundreds of times a minute."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import httpx
import structlog
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from boltgate.db.errors import log_failure, unavailable
from boltgate.payment import service
from tests.conftest import Gateway, free_port, make_settings
from tests.helpers import auth

PAYMENT = {"orderId": "db-errors-1", "amount": "1.00", "currency": "USD"}


def disk_full(tmp_path: Path) -> sqlite3.OperationalError:
    """SQLite's own SQLITE_FULL ("database or disk is full"); max_page_count stands in for the disk."""
    db = sqlite3.connect(tmp_path / "full.db")
    try:
        db.execute("CREATE TABLE t (x BLOB)")
        db.execute("PRAGMA max_page_count = 4")
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (zeroblob(4096))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("the database never filled up")


def test_what_counts_as_unavailable(tmp_path: Path) -> None:
    assert unavailable(disk_full(tmp_path)) == "the disk is full"
    shutting = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    assert unavailable(shutting) == "the database system is shutting down"
    wrapped = DBAPIError("SELECT 1", None, shutting)  # as SQLAlchemy wraps the driver's error
    assert unavailable(wrapped) == "the database system is shutting down"
    assert unavailable(asyncpg.exceptions.DiskFullError("could not extend file")) == "could not extend file"
    # bugs stay bugs
    assert unavailable(sqlite3.OperationalError("no such table: nothing")) is None
    assert unavailable(asyncpg.exceptions.UndefinedTableError("relation does not exist")) is None
    assert unavailable(ValueError("nope")) is None
    # a refused connection is the database's only when its driver raised it
    assert unavailable(ConnectionRefusedError(111, "Connection refused")) is None


async def test_postgresql_unreachable_answers_503(data_root: Path) -> None:
    """Nothing listens on the port: every request that needs the database is a clean 503."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    gateway = Gateway(make_settings(data_root, url, port=free_port(), run_workers=False))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            for method in ("GET", "POST", "GET"):  # one connection: it stays open after each 503
                answer = await http.request(
                    method, "/api/payments", headers=auth("le_live_" + "a" * 40), json=PAYMENT
                )
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["retry-after"] == "5"
                body = answer.json()
                assert body["error"] == "database_unavailable"
                assert "cannot be reached" in body["detail"]
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"] == "database_unavailable"
    finally:
        await gateway.stop()


async def test_full_disk_answers_503_and_other_crashes_stay_500(
    temp_gateway, make_merchant, monkeypatch, tmp_path: Path
) -> None:
    gateway = await temp_gateway()
    _, key = await make_merchant()
    full = disk_full(tmp_path)

    async def fails(*_args: object, **_kwargs: object) -> None:
        raise full

    monkeypatch.setattr(service, "create_payment", fails)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        answer = await http.post("/api/payments", headers=auth(key), json=PAYMENT)
        assert answer.status_code == 503
        assert answer.json()["error"] == "database_unavailable"
        assert "disk is full" in answer.json()["detail"]
        assert answer.headers["retry-after"] == "5"
        # the same connection serves the next request (a 500 from the crash handler closed it)
        assert (await http.get("/api/payments", headers=auth(key))).status_code == 200

        async def crashes(*_args: object, **_kwargs: object) -> None:
            raise ConnectionRefusedError(111, "refused by something that is not the database")

        monkeypatch.setattr(service, "create_payment", crashes)
        crashed = await http.post("/api/payments", headers=auth(key), json=PAYMENT)
        assert crashed.status_code == 500
        assert crashed.json()["error"] == "internal_error"


def test_background_failures_log_a_database_outage_as_a_warning_and_bugs_with_a_traceback():
    """A loop that meets a database restart says so in one warning line; a bug keeps its traceback."""
    log = structlog.get_logger("test")
    with capture_logs() as logs:
        try:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")
        except Exception as exc:
            log_failure(log, "job_failed", exc, job="expire")
        try:
            raise KeyError("a bug")
        except Exception as exc:
            log_failure(log, "job_failed", exc, job="expire")
    outage, bug = logs
    assert outage["log_level"] == "warning" and "exc_info" not in outage
    assert outage["database_unavailable"] == "terminating connection due to administrator command"
    assert outage["job"] == "expire"
    assert bug["log_level"] == "error" and bug["exc_info"] is True and bug["job"] == "expire"
