"""Connected stores: connect (checked against Shopify before anything is saved), change, list,
remove; and the credentials a call to a store needs.

A store is connected only when Shopify accepts its credentials, grants the scopes the channel
needs and prices in USD (the channel quotes in USD and converts to sats at the current rate).

A buyer's claim token is an HMAC of the order id under a key derived from the server key, and is
stored only as its SHA-256: the buyer's token keeps working whatever the server key becomes. Only
showing it again (to whoever proves payment) needs the key it was made with, found in the ring.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.engine import Database
from boltgate.errors import BadGateway, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from boltgate.kit import crypto
from boltgate.kit.clock import rfc3339
from boltgate.kit.crypto import KeyRing, SecretBox
from boltgate.kit.ids import BASE62, new_id
from boltgate.shopify import graphql
from boltgate.shopify.client import (
    Credentials,
    ShopifyAdmin,
    ShopifyError,
    ShopifyNotFound,
    ShopifyQueryError,
    ShopifyUnauthorized,
    ShopifyUnavailable,
)
from boltgate.shopify.models import ShopifyOrder, ShopifyStore
from boltgate.shopify.schemas import DEFAULT_SHIPPING, StoreCreate, StoreUpdate

MAX_STORES = 50  # per merchant
RENDERED_SECONDS = 2.0


@dataclass(frozen=True)
class Channel:
    """What the Shopify routes share: the Admin client, the sealing box and the claim-token keys
    (the current server key's first)."""

    admin: ShopifyAdmin
    box: SecretBox
    claim_keys: tuple[bytes, ...]
    refreshing: dict[str, asyncio.Lock] = field(default_factory=dict)  # per store: one catalog read at a time
    # slug → (monotonic expiry, the catalog answer's bytes): the public catalog is read far more often
    # than it changes; kept RENDERED_SECONDS per process, dropped at once by this process's changes
    rendered: dict[str, tuple[float, bytes]] = field(default_factory=dict)

    def refresh_lock(self, store_id: str) -> asyncio.Lock:
        return self.refreshing.setdefault(store_id, asyncio.Lock())

    @classmethod
    def build(cls, admin: ShopifyAdmin, ring: KeyRing) -> Channel:
        return cls(admin, ring.box(crypto.SHOPIFY_SECRETS), ring.keys("shopify-claim"))

    def claim_token(self, order_id: str, stored_hash: str | None = None) -> str:
        """The order's claim token: derived, so whoever proves payment can be shown it again. A new
        order's comes from the current key; with the order's ``stored_hash``, the one of the ring
        key that made it (a rotation does not change the token shown again)."""
        if stored_hash is not None:
            for key in self.claim_keys:
                token = _claim_token(key, order_id)
                if hmac_equal(claim_hash(token), stored_hash):
                    return token
        return _claim_token(self.claim_keys[0], order_id)

    def credentials(self, store: ShopifyStore) -> Credentials:
        return Credentials(
            shop_domain=store.shop_domain,
            access_token=self.box.open(store.access_token) if store.access_token else None,
            client_id=store.client_id,
            client_secret=self.box.open(store.client_secret) if store.client_secret else None,
        )

    def webhook_key(self, store: ShopifyStore) -> str | None:
        sealed = store.webhook_secret or store.client_secret
        return self.box.open(sealed) if sealed else None


def _claim_token(key: bytes, order_id: str) -> str:
    return random_base62_from(hmac.new(key, order_id.encode(), hashlib.sha256).digest(), 16)


def random_base62_from(digest: bytes, length: int) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def claim_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def by_slug(session: AsyncSession, slug: str) -> ShopifyStore | None:
    found: ShopifyStore | None = await session.scalar(
        select(ShopifyStore).where(ShopifyStore.slug == slug[:64])
    )
    return found


def shopify_failure(exc: ShopifyError, shop: str) -> Exception:
    """A Shopify failure during a merchant's own request, as our error (the merchant can act on it)."""
    if isinstance(exc, ShopifyUnauthorized):
        return ValidationFailed(
            f"Shopify refused the credentials for {shop}: check the Admin API token or client id and secret",
            code="shopify_unauthorized",
        )
    if isinstance(exc, ShopifyNotFound):
        return ValidationFailed(f"no Shopify store answers at {shop}", code="shopify_store_not_found")
    if isinstance(exc, ShopifyQueryError):
        return BadGateway(f"Shopify refused the query: {exc}", code="shopify_query_failed")
    return ServiceUnavailable(
        f"Shopify is unavailable for {shop}: {exc}", code="shopify_unavailable", headers={"Retry-After": "10"}
    )


async def verify(channel: Channel, creds: Credentials) -> dict[str, Any]:
    """Shopify's word on the credentials: the shop's name, or a precise 4xx/5xx."""
    try:
        data = await channel.admin.execute(creds, graphql.SHOP_INFO)
    except (ShopifyUnauthorized, ShopifyNotFound, ShopifyQueryError, ShopifyUnavailable) as exc:
        raise shopify_failure(exc, creds.shop_domain) from exc
    shop = data.get("shop") or {}
    installation = data.get("currentAppInstallation") or {}
    granted = {s.get("handle") for s in installation.get("accessScopes") or [] if isinstance(s, dict)}
    # a write scope implies its read scope (Shopify's access-scopes page)
    granted |= {"read_" + g.removeprefix("write_") for g in granted if isinstance(g, str)}
    missing = [s for s in graphql.REQUIRED_SCOPES if s not in granted]
    if missing:
        raise ValidationFailed(
            f"the Shopify app lacks the access scopes {', '.join(missing)}: add them and reinstall the app",
            code="shopify_scopes_missing",
        )
    if shop.get("currencyCode") != "USD":
        raise ValidationFailed(
            f"the store prices in {shop.get('currencyCode')!s:.8}; the Lightning channel sells stores "
            "that price in USD",
            code="shopify_currency_unsupported",
        )
    return dict(shop)


async def _credentials_of(
    channel: Channel, store: ShopifyStore, body: StoreCreate | StoreUpdate
) -> Credentials:
    base = (
        channel.credentials(store)
        if store.access_token or store.client_id
        else Credentials(store.shop_domain)
    )
    if body.accessToken is not None:
        return Credentials(store.shop_domain, access_token=body.accessToken)
    if body.clientId is not None and body.clientSecret is not None:
        return Credentials(store.shop_domain, client_id=body.clientId, client_secret=body.clientSecret)
    return base


def _apply_secrets(channel: Channel, store: ShopifyStore, body: StoreCreate | StoreUpdate) -> None:
    if body.accessToken is not None:
        store.access_token = channel.box.seal(body.accessToken)
        store.client_id = store.client_secret = None
    elif body.clientId is not None and body.clientSecret is not None:
        store.client_id = body.clientId
        store.client_secret = channel.box.seal(body.clientSecret)
        store.access_token = None
    if body.webhookSecret is not None:
        store.webhook_secret = channel.box.seal(body.webhookSecret)


async def _refuse_taken(session: AsyncSession, merchant_id: str, slug: str) -> None:
    if await session.scalar(select(ShopifyStore.id).where(ShopifyStore.slug == slug)) is not None:
        raise Conflict(f"the slug {slug!r} is taken", code="slug_taken")
    count = await session.scalar(
        select(func.count()).select_from(ShopifyStore).where(ShopifyStore.merchant_id == merchant_id)
    )
    if (count or 0) >= MAX_STORES:
        raise Conflict(f"at most {MAX_STORES} stores per merchant", code="too_many_stores")


async def create(
    db: Database, channel: Channel, merchant_id: str, body: StoreCreate, now: datetime
) -> ShopifyStore:
    """Connect a store: refused early when the slug is taken, then checked with Shopify outside
    any write transaction (a slow Shopify never holds the database's writer), then saved; a
    concurrent connect of the same slug that wins meanwhile makes this one 409 ``slug_taken``."""
    async with db.reading() as session:
        await _refuse_taken(session, merchant_id, body.slug)
    store = ShopifyStore(
        id=new_id("shs"),
        merchant_id=merchant_id,
        slug=body.slug,
        shop_domain=body.shopDomain,
        store_name=body.storeName or body.shopDomain,
        shipping=body.shipping.stored() if body.shipping else DEFAULT_SHIPPING,
        active=True if body.active is None else body.active,
        created_at=now,
        updated_at=now,
    )
    shop = await verify(channel, await _credentials_of(channel, store, body))
    if body.storeName is None and shop.get("name"):
        store.store_name = str(shop["name"])[:200]
    _apply_secrets(channel, store, body)
    try:
        async with db.writing() as session:
            await _refuse_taken(session, merchant_id, body.slug)
            session.add(store)
    except IntegrityError as exc:  # the same slug, saved by a concurrent connect after our check
        raise Conflict(f"the slug {body.slug!r} is taken", code="slug_taken") from exc
    channel.rendered.pop(store.slug, None)
    return store


async def get(session: AsyncSession, merchant_id: str, slug: str, *, lock: bool = False) -> ShopifyStore:
    stmt = select(ShopifyStore).where(ShopifyStore.slug == slug)
    store = await session.scalar(stmt.with_for_update() if lock else stmt)
    if store is None or store.merchant_id != merchant_id:
        raise NotFound(f"store {slug} not found", code="store_not_found")
    return store


async def public(session: AsyncSession, slug: str, *, selling: bool = True) -> ShopifyStore:
    """A store by its public slug; 404 ``store_not_found`` otherwise. ``selling``: only an active
    one (catalog, checkout); claims and order status work on an inactive store too, so switching
    a store off never strands a buyer who has paid."""
    store = await by_slug(session, slug)
    if store is None or (selling and not store.active):
        raise NotFound(f"no store {slug[:64]!r}", code="store_not_found")
    return store


async def update(
    db: Database, channel: Channel, merchant_id: str, slug: str, body: StoreUpdate, now: datetime
) -> ShopifyStore:
    """Change the fields given; new credentials are checked with Shopify first, outside any write
    transaction."""
    if body.accessToken is not None or body.clientId is not None:
        async with db.reading() as session:
            current = await get(session, merchant_id, slug)
        await verify(channel, await _credentials_of(channel, current, body))
    async with db.writing() as session:
        store = await get(session, merchant_id, slug, lock=True)
        _apply_secrets(channel, store, body)
        if body.storeName is not None:
            store.store_name = body.storeName
        if body.shipping is not None:
            store.shipping = body.shipping.stored()
        if body.active is not None:
            store.active = body.active
        store.updated_at = now
    channel.rendered.pop(store.slug, None)
    return store


async def delete(session: AsyncSession, merchant_id: str, slug: str) -> None:
    store = await get(session, merchant_id, slug, lock=True)
    orders = await session.scalar(
        select(func.count()).select_from(ShopifyOrder).where(ShopifyOrder.store_id == store.id)
    )
    if orders:
        raise Conflict(
            f"store {slug} has {orders} orders and is kept for them; set active to false to stop selling",
            code="store_has_orders",
        )
    await session.delete(store)


async def list_for(session: AsyncSession, merchant_id: str) -> list[ShopifyStore]:
    found = await session.scalars(
        select(ShopifyStore).where(ShopifyStore.merchant_id == merchant_id).order_by(ShopifyStore.created_at)
    )
    return list(found)


def store_out(store: ShopifyStore, base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "slug": store.slug,
        "shopDomain": store.shop_domain,
        "storeName": store.store_name,
        "active": store.active,
        "auth": "access_token" if store.access_token else "client_credentials",
        "clientId": store.client_id,
        "hasWebhookSecret": bool(store.webhook_secret or store.client_secret),
        "shipping": store.shipping,
        "catalogUrl": f"{base}/api/shopify/{store.slug}/catalog",
        "checkoutUrl": f"{base}/api/shopify/{store.slug}/checkout",
        "webhookUrl": f"{base}/api/shopify/{store.slug}/webhooks",
        "createdAt": rfc3339(store.created_at),
        "updatedAt": rfc3339(store.updated_at),
    }
