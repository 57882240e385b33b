"""``boltgate secret-key reseal``: seal every stored secret again with the current server key.

A rotation: set the new ``BOLTGATE_SECRET_KEY`` and the old one as
``BOLTGATE_SECRET_KEY_PREVIOUS``, restart every process, run this, then remove the previous key.
Each sealed column (:data:`SEALED`) is read in batches by primary key; a value that only a
previous key opens is sealed again with the current key in a write transaction, on the condition
that it has not changed meanwhile (a gateway running with the same ring may rotate a webhook secret
at the same moment: its new value is already under the current key). Values the current key opens
are left alone, so a second run changes nothing. Values no key opens are left untouched, counted
and reported (exit 1): they need the key they were sealed with.

Before anything is changed, it refuses (exit 2) while previous keys are given and
``BOLTGATE_NOSTR_PLATFORM_KEY`` is not set: the platform's Nostr identity is derived from the
oldest key of the ring (:func:`boltgate.agent.events.platform_secret`) and would change once the
previous keys are removed. ``boltgate secret-key platform-key`` prints the key to pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, select, update

from boltgate.agent import nostr
from boltgate.agent.events import platform_secret
from boltgate.config import Settings
from boltgate.db.base import Base
from boltgate.db.engine import Database
from boltgate.kit import crypto
from boltgate.kit.crypto import KeyRing, SealError
from boltgate.l402.models import RootKey
from boltgate.merchant.models import MerchantBackend
from boltgate.shopify.models import ShopifyStore
from boltgate.webhook.models import WebhookEndpoint


@dataclass(frozen=True, slots=True)
class Sealed:
    """A column whose values are sealed with the server key, and the purpose they are sealed for."""

    model: type[Base]
    column: str
    purpose: str

    @property
    def name(self) -> str:
        return f"{self.model.__tablename__}.{self.column}"


SEALED = (
    Sealed(WebhookEndpoint, "secret", crypto.WEBHOOK_SECRETS),
    Sealed(WebhookEndpoint, "previous_secret", crypto.WEBHOOK_SECRETS),  # kept during a rotation
    Sealed(RootKey, "sealed_key", crypto.L402_ROOT_KEYS),
    Sealed(MerchantBackend, "url_sealed", crypto.MERCHANT_BACKENDS),
    Sealed(ShopifyStore, "access_token", crypto.SHOPIFY_SECRETS),
    Sealed(ShopifyStore, "client_secret", crypto.SHOPIFY_SECRETS),
    Sealed(ShopifyStore, "webhook_secret", crypto.SHOPIFY_SECRETS),
)


@dataclass(slots=True)
class Count:
    column: str
    checked: int = 0
    resealed: int = 0
    unreadable: int = 0


def refusal(settings: Settings) -> str | None:
    """Why resealing must not start yet, or None."""
    if crypto.key_ring(settings).previous and settings.nostr_platform_key is None:
        return (
            "BOLTGATE_SECRET_KEY_PREVIOUS is set but BOLTGATE_NOSTR_PLATFORM_KEY is not: the platform's "
            "Nostr identity is derived from the oldest server key and would change once the previous "
            "keys are removed. Pin it first: set BOLTGATE_NOSTR_PLATFORM_KEY to the hex secret that "
            "`boltgate secret-key platform-key` prints, restart, then run this again"
        )
    return None


def platform_key(settings: Settings) -> tuple[str, str, bool]:
    """(hex secret, hex public key, pinned?) of the platform's Nostr key as the gateway uses it now."""
    configured = settings.nostr_platform_key.get_secret_value() if settings.nostr_platform_key else None
    secret = platform_secret(crypto.key_ring(settings), configured)
    return secret.hex(), nostr.pubkey_of(secret), bool(configured)


async def reseal(db: Database, ring: KeyRing, *, batch: int = 500) -> list[Count]:
    """Seal again with the current key every value of :data:`SEALED` that a previous key opens."""
    return [await _reseal_column(db, ring.box(sealed.purpose), sealed, batch) for sealed in SEALED]


async def _reseal_column(db: Database, box: crypto.SecretBox, sealed: Sealed, batch: int) -> Count:
    table = cast(Table, sealed.model.__table__)
    key = table.primary_key.columns.values()[0]
    column = table.columns[sealed.column]
    count = Count(sealed.name)
    after: str | None = None
    while True:
        async with db.writing() as session:
            query = select(key, column).where(column.is_not(None)).order_by(key).limit(batch)
            if after is not None:
                query = query.where(key > after)
            rows = (await session.execute(query)).all()
            for row_key, value in rows:
                count.checked += 1
                try:
                    fresh = box.reseal(value)
                except SealError:
                    count.unreadable += 1
                    continue
                if fresh is not None:
                    changed = await session.execute(
                        update(table).where(key == row_key, column == value).values({column: fresh})
                    )
                    count.resealed += changed.rowcount  # type: ignore[attr-defined]
        if len(rows) < batch:
            return count
        after = rows[-1][0]


def report(counts: list[Count]) -> list[str]:
    """One line per column, then the totals."""
    lines = [
        f"{c.column}: {c.checked} checked, {c.resealed} resealed, {c.unreadable} unreadable" for c in counts
    ]
    resealed = sum(c.resealed for c in counts)
    unreadable = sum(c.unreadable for c in counts)
    lines.append(f"resealed {resealed} values with the current key")
    if unreadable:
        lines.append(
            f"{unreadable} values could not be opened with any key and were left as they are: add the "
            "key they were sealed with to BOLTGATE_SECRET_KEY_PREVIOUS and run this again"
        )
    else:
        lines.append(
            "every sealed value opens with the current key: BOLTGATE_SECRET_KEY_PREVIOUS can be removed "
            "(refund claim links made before the rotation stop working then)"
        )
    return lines
