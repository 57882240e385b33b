"""The root-key store: one random root key per macaroon, filed under sha256(identifier).

Keys are sealed with the server key at rest and cached in memory after the first look-up, so a
verification costs at most one database read per process and token. Revoking deletes the row and
the local cache entry; other processes forget their cached copy after ``ttl_seconds``.

A root key that no server key of the ring opens raises :class:`SealError` (answered ``503
secret_key_mismatch``) rather than passing for an unknown token: the token was sold by this
database, so asking its holder to pay again would be wrong; the operator must supply the key.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.engine import Database
from boltgate.kit.crypto import SecretBox
from boltgate.l402.models import RootKey


class SecretStore:
    def __init__(self, db: Database, box: SecretBox, *, size: int = 50_000, ttl_seconds: float = 300) -> None:
        self.db = db
        self.box = box
        self.size = size
        self.ttl = ttl_seconds
        self._cache: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def _remember(self, key_id: bytes, root_key: bytes) -> None:
        self._cache[key_id] = (root_key, time.monotonic() + self.ttl)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)

    async def create(self, session: AsyncSession, key_id: bytes, now: datetime) -> bytes:
        """A new random root key, added in the caller's transaction."""
        root_key = secrets.token_bytes(32)
        session.add(RootKey(key_id=key_id.hex(), sealed_key=self.box.seal(root_key.hex()), created_at=now))
        self._remember(key_id, root_key)
        return root_key

    def cached(self, key_id: bytes) -> bytes | None:
        """The root key if this process holds it fresh (no await, no database)."""
        cached = self._cache.get(key_id)
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    async def get(self, key_id: bytes) -> bytes | None:
        root_key = self.cached(key_id)
        if root_key is not None:
            return root_key
        async with self.db.reading() as session:
            sealed = (
                await session.execute(select(RootKey.sealed_key).where(RootKey.key_id == key_id.hex()))
            ).scalar_one_or_none()
        if sealed is None:
            self._cache.pop(key_id, None)
            return None
        opened = self.box.open(sealed)  # SealError: sealed under a key the ring does not hold
        try:
            root_key = bytes.fromhex(opened)
        except ValueError:
            return None
        self._remember(key_id, root_key)
        return root_key

    async def revoke(self, session: AsyncSession, key_id: bytes) -> None:
        await session.execute(delete(RootKey).where(RootKey.key_id == key_id.hex()))
        self._cache.pop(key_id, None)


@dataclass(slots=True)
class Keys:
    """Per-process state of the scheme: the challenge-id HMAC keys and the root-key store."""

    mpp_key: bytes  # signs new challenge ids (the current server key's)
    store: SecretStore
    realm: str
    mpp_previous: tuple[bytes, ...] = ()  # also accepted: ids signed before a server key rotation
    known_paid: OrderedDict[str, None] = field(default_factory=OrderedDict)
    verified: OrderedDict[Any, tuple[Any, float]] = field(default_factory=OrderedDict)
    verified_ttl: float = 30.0
    authentic: OrderedDict[str, Any] = field(default_factory=OrderedDict)  # token text -> parsed + root key

    def remember_authentic(self, text: str, parsed: Any) -> None:
        """A token whose HMAC chain checked out, with the root key it checked against (bounded)."""
        self.authentic[text] = parsed
        if len(self.authentic) > 20_000:
            self.authentic.popitem(last=False)

    def remember_verdict(self, key: Any, verdict: Any, now: float, valid_until: float | None) -> None:
        """Keep a successful L402 verdict for ``verified_ttl`` seconds, never past the token's own
        expiry (bounded, oldest out)."""
        if self.verified_ttl <= 0:
            return
        until = now + self.verified_ttl
        self.verified[key] = (verdict, until if valid_until is None else min(until, valid_until))
        if len(self.verified) > 10_000:
            self.verified.popitem(last=False)

    def mark_known(self, payment_hash: str) -> bool:
        """Remember a hash seen paid; False when it was already known (no write needed)."""
        if payment_hash in self.known_paid:
            return False
        self.known_paid[payment_hash] = None
        if len(self.known_paid) > 100_000:
            self.known_paid.popitem(last=False)
        return True
