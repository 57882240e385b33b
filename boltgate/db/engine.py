"""Engines and sessions: SQLite (WAL) for the embedded default, PostgreSQL via asyncpg for production.

SQLite allows one writer at a time, and a deferred transaction that reads and then writes fails
at once (``database is locked``) when another writer committed in between. So on SQLite writes go
through their own engine whose transactions start with ``BEGIN IMMEDIATE``, one at a time behind
an ``asyncio.Lock`` (FIFO: waiting in SQLAlchemy's pool instead let some writers starve for over a
second under load, measured), and readers keep their own pool (WAL lets them read while one
writes). On PostgreSQL reads use an autocommit engine (one round trip per query) and writes a
transactional one; no lock is taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from boltgate.db.conn import (
    Conn,
    PgConn,
    SqliteConn,
    SqlitePool,
    asyncpg_dsn,
    begin_write,
    sqlite_pragmas,
)
from boltgate.db.sqlite_inline import inline_creator


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    sqlite_pragmas(cursor.execute, busy_timeout_ms=15000)
    cursor.close()


def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # waits happen in retry_busy, off the busy handler
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_engine(url: str, *, writer: bool) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"async_creator": inline_creator(database or ":memory:")}
    if writer:
        kwargs.update(pool_size=2, max_overflow=2, pool_timeout=60)
    else:
        # Inline connections are cheap to keep; a pool smaller than the number of requests in
        # flight would open and close one per request. Last in, first out: the same few
        # connections serve the usual load, so only their page caches (2 MB each) fill; first in,
        # first out cycled through every connection a burst had opened and filled all their
        # caches, and the process grew for as long as the database did (bench/RESULTS.md, soak).
        kwargs.update(pool_size=32, max_overflow=32, pool_use_lifo=True)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    if writer:
        event.listen(engine.sync_engine, "connect", _manual_transactions)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


class Database:
    """The process's engines and session factories; built once per app or CLI command."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        if self.is_sqlite:
            self.read_engine = _sqlite_engine(url, writer=False)
            self.write_engine = _sqlite_engine(url, writer=True)
        else:
            # Reads run in autocommit: one round trip per query instead of BEGIN, query, ROLLBACK
            # (and no pre-ping: a dead connection is recycled on its first error).
            self.read_engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_recycle=600,
                isolation_level="AUTOCOMMIT",
            )
            self.write_engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._sync_read = SqlitePool(url, writer=False, keep=32) if self.is_sqlite else None
        self._sync_write = SqlitePool(url, writer=True, keep=2) if self.is_sqlite else None
        self._pool_size = pool_size
        self._commit_callbacks: list[Callable[[], None]] = []
        self._pg_pool: asyncpg.Pool | None = None
        self._pg_pool_lock = asyncio.Lock()
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def _one_writer(self) -> AsyncIterator[None]:
        if self._write_lock is None:
            yield
        else:
            async with self._write_lock:
                yield

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        async with self._one_writer(), self._writer() as session, session.begin():
            yield session
        self._committed()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (rolled back at the end)."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[Conn]:
        """A Core connection for the hot read paths (see :mod:`boltgate.db.conn`)."""
        if self._sync_read is not None:
            driver = self._sync_read.acquire()
            try:
                yield SqliteConn(driver)
            finally:
                self._sync_read.release(driver)
        else:
            async with (await self._pg()).acquire() as connection:
                yield PgConn(connection)

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[Conn]:
        """A Core write transaction for the hot write paths; committed when the block ends."""
        if self._sync_write is not None:
            async with self._one_writer():
                sync = await begin_write(self._sync_write)
                try:
                    yield SqliteConn(sync)
                    sync.execute("COMMIT")
                finally:
                    self._sync_write.release(sync)  # rolls back what was not committed
        else:
            async with (await self._pg()).acquire() as connection, connection.transaction():
                yield PgConn(connection)
        self._committed()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every write transaction of this process commits (the live
        event feed looks for new events at once instead of at its next poll)."""
        self._commit_callbacks.append(callback)

    def _committed(self) -> None:
        for callback in self._commit_callbacks:
            callback()

    async def _pg(self) -> asyncpg.Pool:
        """The asyncpg pool of the hot statements, opened on first use (it needs the loop)."""
        if self._pg_pool is None:
            async with self._pg_pool_lock:
                if self._pg_pool is None:
                    self._pg_pool = await asyncpg.create_pool(
                        asyncpg_dsn(self.url),
                        min_size=0,
                        max_size=self._pool_size,
                        max_inactive_connection_lifetime=300,
                    )
        return self._pg_pool

    async def dispose(self) -> None:
        for pool in (self._sync_read, self._sync_write):
            if pool is not None:
                pool.close()
        if self._pg_pool is not None:
            pool, self._pg_pool = self._pg_pool, None
            await pool.close()
        await self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            await self.write_engine.dispose()
