"""Connections for the request path's few hot statements, behind one small async interface.

On SQLite these run on plain ``sqlite3`` connections from a small pool: every call is a few
microseconds and never waits (WAL readers never block; this process's writers queue on an
``asyncio.Lock`` first), so the async engine's greenlet switches and shielded close tasks (about
130 µs per checkout, measured) and even the sync engine's pool and transaction events (about
150 µs per write, measured) buy nothing. A ``BEGIN IMMEDIATE`` that finds another process's write lock
is retried after an ``asyncio.sleep``, never in SQLite's sleeping busy handler. On PostgreSQL the
same interface runs on a pool of plain asyncpg connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.raw import RawStatement, Record

BUSY_DEADLINE_SECONDS = 15.0


class Conn(Protocol):
    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Any | None:
        """The first row of a hot query (attribute access by column label), or None."""
        ...

    async def all(self, raw: RawStatement, parameters: Mapping[str, Any]) -> list[Any]:
        """Every row of a hot query."""
        ...

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        """Run a hot write statement."""
        ...


class SqliteConn:
    """SQLite: hot statements go straight to the driver (:mod:`boltgate.db.raw`)."""

    __slots__ = ("_driver",)

    def __init__(self, driver: sqlite3.Connection) -> None:
        self._driver = driver

    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Record | None:
        compiled = raw.sqlite
        row = self._driver.execute(compiled.sql, compiled.args(parameters)).fetchone()
        return None if row is None else compiled.record(row)

    async def all(self, raw: RawStatement, parameters: Mapping[str, Any]) -> list[Record]:
        compiled = raw.sqlite
        rows = self._driver.execute(compiled.sql, compiled.args(parameters)).fetchall()
        return [compiled.record(row) for row in rows]

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        compiled = raw.sqlite
        try:
            self._driver.execute(compiled.sql, compiled.args(parameters))
        except sqlite3.IntegrityError as exc:  # the same exception the SQLAlchemy path raises
            raise IntegrityError(compiled.sql, None, exc) from exc


class PgConn:
    """PostgreSQL: hot statements go straight to asyncpg (prepared once per connection)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Record | None:
        compiled = raw.postgresql
        row = await self._connection.fetchrow(compiled.sql, *compiled.args(parameters))
        return None if row is None else compiled.record(row)

    async def all(self, raw: RawStatement, parameters: Mapping[str, Any]) -> list[Record]:
        compiled = raw.postgresql
        rows = await self._connection.fetch(compiled.sql, *compiled.args(parameters))
        return [compiled.record(row) for row in rows]

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        compiled = raw.postgresql
        try:
            await self._connection.execute(compiled.sql, *compiled.args(parameters))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(compiled.sql, None, exc) from exc


class SessionConn:
    """The same interface inside an ORM session's transaction (the settlement path)."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def first(self, raw: RawStatement, parameters: Mapping[str, Any]) -> Any | None:
        return (await self._session.execute(raw.statement, dict(parameters))).first()

    async def all(self, raw: RawStatement, parameters: Mapping[str, Any]) -> list[Any]:
        return list((await self._session.execute(raw.statement, dict(parameters))).all())

    async def run(self, raw: RawStatement, parameters: Mapping[str, Any]) -> None:
        await self._session.execute(raw.statement, dict(parameters))


def asyncpg_dsn(url: str) -> str:
    """The libpq URL asyncpg takes, from a SQLAlchemy ``postgresql+asyncpg`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_pragmas(execute: Callable[[str], object], *, busy_timeout_ms: int) -> None:
    """The settings of every connection to the database file (the ORM's and the hot path's)."""
    execute("PRAGMA journal_mode=WAL")
    execute("PRAGMA synchronous=NORMAL")
    execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    execute("PRAGMA foreign_keys=ON")


class SqlitePool:
    """Plain ``sqlite3`` connections on one database file, for the hot statements only.

    A connection is taken and given back within one request's synchronous stretch; at most
    ``keep`` idle ones are kept open. Writers use manual transactions (``BEGIN IMMEDIATE``) and no
    busy handler (waits happen in :func:`begin_write`, off the event loop's critical path).
    """

    def __init__(self, url: str, *, writer: bool, keep: int) -> None:
        database = make_url(url).database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._database = database
        self._writer = writer
        self._keep = keep
        self._idle: list[sqlite3.Connection] = []

    def acquire(self) -> sqlite3.Connection:
        if self._idle:
            return self._idle.pop()
        connection = sqlite3.connect(self._database, check_same_thread=False, isolation_level=None)
        sqlite_pragmas(connection.execute, busy_timeout_ms=0 if self._writer else 15000)
        return connection

    def release(self, connection: sqlite3.Connection) -> None:
        if connection.in_transaction:  # never hand out a connection with a transaction open
            connection.rollback()
        if len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


async def begin_write(pool: SqlitePool) -> sqlite3.Connection:
    """A connection inside ``BEGIN IMMEDIATE``, waiting for other processes without blocking."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_DEADLINE_SECONDS
    pause = 0.0005
    connection = pool.acquire()
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return connection
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or loop.time() > deadline:
                pool.release(connection)
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.02)
