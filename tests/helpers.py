"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
