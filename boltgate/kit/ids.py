"""Random, prefixed identifiers (``inv_…``, ``mch_…``) and API keys."""

from __future__ import annotations

import hashlib
import secrets
import string

BASE62 = string.digits + string.ascii_letters


def random_base62(length: int) -> str:
    """``length`` uniform base62 characters (from one urandom call; rejection-free via a big int)."""
    number = int.from_bytes(secrets.token_bytes(length), "big")  # 8 bits per char > log2(62) bits
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def new_id(prefix: str, length: int = 20) -> str:
    """``<prefix>_<length base62 chars>``: 20 chars is ~119 bits, unguessable."""
    return f"{prefix}_{random_base62(length)}"


def new_api_key(test: bool = False) -> str:
    """``le_live_<40 base62>`` (or ``le_test_``): the shape Lightning Enable clients redact."""
    return ("le_test_" if test else "le_live_") + random_base62(40)


def hash_api_key(key: str) -> str:
    """SHA-256 of the key: keys carry ~238 random bits, so a fast hash is enough and lookups stay O(1)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
