"""Which failures mean "the database cannot be used right now", as opposed to a bug.

A request that meets one is answered ``503 database_unavailable`` with ``Retry-After`` (the client
may try again, as it would after any 503) instead of a ``500``: PostgreSQL restarting, shutting
down or unreachable, a pooled connection the server has closed, too many connections, a full disk
(PostgreSQL's ``53100`` or SQLite's ``database or disk is full``), SQLite's file locked past the
wait or unreadable. Found by the fault runs of ``bench/faults.py``: both a PostgreSQL restart and
a full disk under SQLite answered 500 with a traceback in the log, hundreds of times a minute.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.exc import DBAPIError

# what the app registers its handler for (everything else keeps the generic 500)
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
    OSError,
)

_PG_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # class 08: connection failures, a closed connection
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, starting up, restarted
    asyncpg.exceptions.InsufficientResourcesError,  # 53: disk full, out of memory, too many connections
)
_SQLITE_REASONS = (
    ("database or disk is full", "the disk is full"),
    ("disk i/o error", "disk I/O error"),
    ("database is locked", "the database stayed locked"),
    ("unable to open database file", "the database file cannot be opened"),
    ("readonly database", "the database is read-only"),
)
_DATABASE_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite", "boltgate.db")


def unavailable(exc: BaseException) -> str | None:
    """Why the database cannot serve now, when ``exc`` (or an exception it wraps) says so."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        reason = _reason(current)
        if reason is not None:
            return reason
        wrapped = current.orig if isinstance(current, DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
    return None


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "the connection to the database was lost"
    if isinstance(exc, _PG_UNAVAILABLE):
        return str(exc).strip() or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return next((reason for needle, reason in _SQLITE_REASONS if needle in text), None)
    if isinstance(exc, OSError) and _raised_in_database_code(exc.__traceback__):
        return f"the database cannot be reached ({exc.strerror or type(exc).__name__})"
    return None


def _raised_in_database_code(tb: TracebackType | None) -> bool:
    """An OSError (refused, reset, timed out) is the database's only when its driver raised it."""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


def log_failure(log: Any, event: str, exc: BaseException, **fields: Any) -> None:
    """Log a background loop's failure: a warning naming the reason when the database is down
    (expected while it restarts: the loop retries; no traceback to alarm anyone), the traceback
    at error level for anything else. Call it in the ``except`` block."""
    reason = unavailable(exc)
    if reason is not None:
        log.warning(event, database_unavailable=reason, **fields)
    else:
        log.exception(event, **fields)
