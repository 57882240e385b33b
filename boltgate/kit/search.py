"""Case-insensitive search over short labels and texts, the same on SQLite and PostgreSQL.

Lists of labels (categories, tags) are stored one per line. For search they are also stored
case-folded by Python — SQLite's ``lower()`` folds ASCII only — as ``"\\n<a>\\n<b>\\n"``, so that
``LIKE '%\\n<label>\\n%'`` matches a whole label, and free text as one folded column that every
word of a query must appear in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.sql.elements import ColumnElement


def join_lines(values: Iterable[str] | None) -> str:
    return "\n".join(values or [])


def split_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


def folded_text(parts: Iterable[str]) -> str:
    """The column every query word is looked for in."""
    return "\n".join(parts).casefold()


def folded_keys(values: Iterable[str]) -> str:
    """``"\\n<a>\\n<b>\\n"``, case-folded: the column :func:`has_key` matches whole labels in."""
    return "\n" + "".join(value.casefold() + "\n" for value in values)


def _like(text: str) -> str:
    escaped = text.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(column: Any, word: str) -> ColumnElement[bool]:
    """``word`` appears in a :func:`folded_text` column, in any case (``%`` and ``_`` literal)."""
    return column.like(_like(word), escape="\\")  # type: ignore[no-any-return]


def has_key(column: Any, label: str) -> ColumnElement[bool]:
    """A :func:`folded_keys` column holds the whole ``label``, in any case."""
    return contains(column, f"\n{label.strip()}\n")
