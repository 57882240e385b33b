"""Hot statements compiled once by SQLAlchemy and run straight on the database driver.

Measured on this project's payment look-up: SQLAlchemy's sync Core execution costs ~100 µs per
statement (compile-cache lookup, execution context, result processing); the same SQL on the
``sqlite3`` connection ~12 µs. On PostgreSQL the async engine adds a greenlet hop and its own
result processing to asyncpg's call (~250 µs of SQLAlchemy per create, measured). The SQL still
comes from SQLAlchemy constructs (compiled once per dialect: ``?`` for sqlite3, ``$n`` for
asyncpg, whose prepared-statement cache then skips the parse), and values are converted exactly as
SQLAlchemy stores them (``UTCDateTime`` as naive UTC — ``YYYY-MM-DD HH:MM:SS.ffffff`` text on
SQLite —, ``JSON`` as JSON text), so rows written either way read back the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import JSON
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled as SqlCompiled
from sqlalchemy.types import TypeEngine

from boltgate.db.base import UTCDateTime

_SQLITE = sqlite.dialect(paramstyle="qmark")
_POSTGRESQL = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]


class Record(SimpleNamespace):
    """A row with attribute access (``record.order_id``), like a SQLAlchemy ``Row``."""


def _load_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _dump_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond:06d}"


def _load_json(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()  # None is stored as JSON null, as SQLAlchemy's JSON does


def _load_pg_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _dump_pg_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _identity(value: Any) -> Any:
    return value


def _loader(kind: TypeEngine[Any], postgresql: bool) -> Callable[[Any], Any]:
    if isinstance(kind, UTCDateTime):
        return _load_pg_time if postgresql else _load_time
    if isinstance(kind, JSON):
        return _load_json
    return _identity


def _dumper(kind: TypeEngine[Any] | None, postgresql: bool) -> Callable[[Any], Any]:
    if isinstance(kind, UTCDateTime):
        return _dump_pg_time if postgresql else _dump_time
    if isinstance(kind, JSON):
        return _dump_json
    return _identity


class Compiled:
    """One statement's SQL for one dialect, with its parameter order and value converters."""

    __slots__ = ("columns", "constants", "params", "sql")

    def __init__(self, statement: Executable, column_keys: list[str] | None, *, postgresql: bool) -> None:
        dialect = _POSTGRESQL if postgresql else _SQLITE
        compiled: SqlCompiled = statement.compile(dialect=dialect, column_keys=column_keys)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        binds = compiled.binds  # type: ignore[attr-defined]
        order = compiled.positiontup or []  # type: ignore[attr-defined]
        self.params = [(name, _dumper(binds[name].type, postgresql)) for name in order]
        self.constants = {name: binds[name].value for name in order if not binds[name].required}
        selected = getattr(statement, "selected_columns", None)
        self.columns = (
            [(column.key, _loader(column.type, postgresql)) for column in selected]
            if selected is not None
            else []
        )

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.constants:  # literals of the statement itself (``coalesce(x, 0)``)
            params = {**self.constants, **params}
        return tuple(dump(params[name]) for name, dump in self.params)

    def record(self, row: Sequence[Any]) -> Record:
        return Record(**{key: load(value) for (key, load), value in zip(self.columns, row, strict=True)})


class RawStatement:
    """A hot statement, compiled for SQLite and for PostgreSQL (asyncpg)."""

    def __init__(self, statement: Executable, column_keys: list[str] | None = None) -> None:
        self.statement = statement
        self.sqlite = Compiled(statement, column_keys, postgresql=False)
        self.postgresql = Compiled(statement, column_keys, postgresql=True)
