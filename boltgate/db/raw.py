"""Hot statements compiled once by SQLAlchemy and run straight on the SQLite driver.

Measured on this project's payment look-up: SQLAlchemy's sync Core execution costs ~100 µs per
statement (compile-cache lookup, execution context, result processing); the same SQL on the
``sqlite3`` connection ~12 µs. The SQL still comes from SQLAlchemy constructs (compiled once for
the SQLite dialect), and values are converted exactly as SQLAlchemy stores them (``UTCDateTime``
as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, ``JSON`` as JSON text), so rows written either way read
back the same. PostgreSQL keeps the ordinary SQLAlchemy path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import JSON
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.types import TypeEngine

from boltgate.db.base import UTCDateTime

_DIALECT = sqlite.dialect(paramstyle="qmark")


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


def _identity(value: Any) -> Any:
    return value


def _loader(kind: TypeEngine[Any]) -> Callable[[Any], Any]:
    if isinstance(kind, UTCDateTime):
        return _load_time
    if isinstance(kind, JSON):
        return _load_json
    return _identity


def _dumper(kind: TypeEngine[Any] | None) -> Callable[[Any], Any]:
    if isinstance(kind, UTCDateTime):
        return _dump_time
    if isinstance(kind, JSON):
        return _dump_json
    return _identity


class RawStatement:
    """``statement`` compiled for SQLite, with its parameter order and value converters."""

    def __init__(self, statement: Executable, column_keys: list[str] | None = None) -> None:
        self.statement = statement
        compiled: Compiled = statement.compile(dialect=_DIALECT, column_keys=column_keys)  # type: ignore[attr-defined]
        self.sql = compiled.string
        binds = compiled.binds  # type: ignore[attr-defined]
        order = compiled.positiontup or []  # type: ignore[attr-defined]
        self._params = [(name, _dumper(binds[name].type)) for name in order]
        columns = getattr(statement, "selected_columns", None)
        self._columns = (
            [(column.key, _loader(column.type)) for column in columns] if columns is not None else []
        )

    def _args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(dump(params[name]) for name, dump in self._params)

    def first(self, connection: sqlite3.Connection, params: Mapping[str, Any]) -> Record | None:
        row = connection.execute(self.sql, self._args(params)).fetchone()
        if row is None:
            return None
        return Record(**{key: load(value) for (key, load), value in zip(self._columns, row, strict=True)})

    def run(self, connection: sqlite3.Connection, params: Mapping[str, Any]) -> None:
        connection.execute(self.sql, self._args(params))
