"""The platform's Nostr key, and every event the marketplace signs or accepts: stored, then published.

The platform key signs what the hosted API signs on an agent's behalf (capability adverts, their
removal, service requests, agreements). It comes from ``BOLTGATE_NOSTR_PLATFORM_KEY`` or, by
default, is derived from the server key (HKDF, purpose ``nostr-platform-key``), so it stays the
same across restarts and replicas without another secret to keep. Events are stored whole in the
same transaction as the change they describe; after the commit they are sent to the relays of
``BOLTGATE_NOSTR_RELAYS`` in the background (a relay that is down loses nothing: the export
``GET /api/agents/events`` has every event).

While the server key is being rotated (``BOLTGATE_SECRET_KEY_PREVIOUS`` set) the derived key
comes from the *oldest* key of the ring (the last previous one), so the identity stays the one
the platform had before the rotation began (with one previous key: the key just replaced; with
several, a rotation started again before the last one was finished, the oldest is still the one
the platform had). It would change once the previous keys are removed, so ``boltgate secret-key
reseal`` refuses to run until the operator pins it: ``boltgate secret-key platform-key`` prints
it, to be set as ``BOLTGATE_NOSTR_PLATFORM_KEY``; from then on the server key no longer matters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.agent import nostr, relays
from boltgate.agent.models import NostrEvent
from boltgate.kit.crypto import KeyRing, derive_key

log = structlog.get_logger(__name__)
_ORDER = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)  # secp256k1 n


def platform_secret(ring: KeyRing, configured: str | None) -> bytes:
    """The platform's 32-byte secret key: the configured one, or one derived from the oldest key
    of the ring (the server key when no rotation is under way)."""
    if configured:
        secret = bytes.fromhex(configured)
        if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < _ORDER:
            raise ValueError("BOLTGATE_NOSTR_PLATFORM_KEY must be a 64-hex secp256k1 secret key")
        return secret
    number = int.from_bytes(derive_key(ring.secrets[-1], "nostr-platform-key"), "big") % (_ORDER - 1) + 1
    return number.to_bytes(32, "big")


@dataclass
class Platform:
    secret: bytes
    relays: tuple[str, ...] = ()
    pubkey: str = ""
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pubkey = nostr.pubkey_of(self.secret)

    def sign(self, kind: int, tags: Sequence[Sequence[str]], content: str, now: datetime) -> nostr.Event:
        return nostr.sign_event(self.secret, int(now.timestamp()), kind, tags, content)

    def publish_later(self, events: Sequence[nostr.Event]) -> None:
        """Send committed events to the configured relays without holding the request."""
        if not self.relays or not events:
            return
        task = asyncio.create_task(self._publish(events))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, events: Sequence[nostr.Event]) -> None:
        for event in events:
            for result in await relays.publish(self.relays, event.to_json()):
                log.info(
                    "nostr_published" if result.accepted else "nostr_publish_refused",
                    relay=result.relay,
                    event_id=event.id,
                    kind=event.kind,
                    message=result.message,
                )

    async def close(self) -> None:
        """Give events being sent a moment to leave, then stop."""
        if self._sending:
            await asyncio.wait(self._sending, timeout=5)
        for task in list(self._sending):
            task.cancel()


def store(session: AsyncSession, event: nostr.Event, now: datetime) -> None:
    """Keep the event as it was signed (its exact JSON) for the export feed."""
    session.add(
        NostrEvent(
            id=event.id,
            kind=event.kind,
            pubkey=event.pubkey,
            created_at=event.created_at,
            raw=orjson.dumps(event.to_json()).decode(),
            stored_at=now,
        )
    )
