"""Injectable time: services take a ``Clock`` so tests can freeze or move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """RFC 3339 UTC with ``Z`` and at most 6 fractional digits (none when whole seconds)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat() + "Z"  # isoformat omits a zero fraction


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time with an offset (``Z`` too), as UTC; ValueError otherwise."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a time without an offset")
    return value.astimezone(UTC)
