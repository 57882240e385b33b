"""``X-API-Key`` authentication.

A key is looked up by its SHA-256 hash. Results are cached in-process for a few seconds so that
a busy merchant's requests cost no extra query; a revocation through this process evicts the
entry at once, and other replicas see it within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from boltgate.db.engine import Database
from boltgate.errors import Unauthorized
from boltgate.kit.ids import hash_api_key
from boltgate.merchant import repository


@dataclass(frozen=True, slots=True)
class Principal:
    merchant_id: str
    key_id: str


class KeyCache:
    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, Principal | None]:
        hit = self._entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key_hash: str, principal: Principal | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl, principal)

    def evict_key(self, key_id: str) -> None:
        for key_hash, (_, principal) in list(self._entries.items()):
            if principal is not None and principal.key_id == key_id:
                del self._entries[key_hash]


async def authenticate(db: Database, cache: KeyCache, api_key: str | None) -> Principal:
    if not api_key:
        raise Unauthorized("Send your API key in the X-API-Key header", code="missing_api_key")
    if len(api_key) > 200:
        raise Unauthorized("Invalid API key", code="invalid_api_key")
    key_hash = hash_api_key(api_key.strip())
    found, principal = cache.get(key_hash)
    if not found:
        async with db.reading() as session:
            row = await repository.find_active_key(session, key_hash)
        principal = Principal(merchant_id=row[0], key_id=row[1]) if row else None
        cache.put(key_hash, principal)
    if principal is None:
        raise Unauthorized("Invalid or revoked API key", code="invalid_api_key")
    return principal
