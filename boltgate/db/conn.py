"""Connections for the request path's few hot statements, behind one small async interface.

On SQLite these run on SQLAlchemy's *synchronous* engine: every call is a few microseconds
and never waits (WAL readers never block; this process's writers queue on an ``asyncio.Lock``
first), so the async engine's greenlet switches and shielded close tasks — measured at about
130 µs per checkout — buy nothing. A ``BEGIN IMMEDIATE`` that finds another process's write lock
is retried after an ``asyncio.sleep``, never in SQLite's sleeping busy handler. On PostgreSQL the
same interface wraps an ``AsyncConnection``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Result, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from boltgate.db.raw import RawStatement, Record

BUSY_DEADLINE_SECONDS = 15.0
Params = Mapping[str, Any] | None


class Conn(Protocol):
    async def execute(self, statement: Executable, parameters: Params = None) -> Result[Any]: ...

    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Any | None:
        """The first row of a hot query (attribute access by column label), or None."""
        ...

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        """Run a hot write statement."""
        ...


class SyncConn:
    """SQLite: hot statements go straight to the driver (:mod:`boltgate.db.raw`)."""

    __slots__ = ("_connection", "_driver")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]

    async def execute(self, statement: Executable, parameters: Params = None) -> Result[Any]:
        return self._connection.execute(statement, parameters)

    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Record | None:
        return raw.first(self._driver, parameters)

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        try:
            raw.run(self._driver, parameters)
        except sqlite3.IntegrityError as exc:  # the same exception the SQLAlchemy path raises
            raise IntegrityError(raw.sql, None, exc) from exc


class AsyncConn:
    __slots__ = ("_connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, parameters: Params = None) -> Result[Any]:
        return await self._connection.execute(statement, parameters)

    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Any | None:
        return (await self._connection.execute(raw.statement, parameters)).first()

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        await self._connection.execute(raw.statement, parameters)


def _pragmas(busy_timeout_ms: int) -> Any:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_sync_engine(url: str, *, writer: bool) -> Engine:
    """A synchronous pysqlite engine on the same file as ``url`` (an ``sqlite+aiosqlite`` URL)."""
    database = make_url(url).database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{database}",
        pool_size=4 if writer else 32,
        max_overflow=4 if writer else 32,
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _pragmas(0 if writer else 15000))
    if writer:
        event.listen(engine, "connect", _manual_transactions)
        event.listen(engine, "begin", _begin_immediate)
    return engine


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc.orig)
    return "locked" in text or "busy" in text


async def begin_write(engine: Engine) -> Connection:
    """A connection inside ``BEGIN IMMEDIATE``, waiting for other processes without blocking."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_DEADLINE_SECONDS
    pause = 0.0005
    while True:
        connection = engine.connect()
        try:
            connection.begin()
            return connection
        except OperationalError as exc:
            connection.close()
            if not _is_busy(exc) or loop.time() > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.02)
