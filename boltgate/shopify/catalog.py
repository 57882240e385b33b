"""A store's catalog: read from the Admin API, kept in the database for
``BOLTGATE_SHOPIFY_CATALOG_TTL_SECONDS`` (shared by replicas), marked stale by Shopify's
``products/*`` webhooks, and served in the Lightning Enable shape.

Only active products are listed; a variant is ``available`` when Shopify says it is for sale.
Up to 100 pages of 10 products with 50 variants each are read (a store beyond that is listed
in part: the log says so).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.engine import Database
from boltgate.shopify import graphql
from boltgate.shopify.client import ShopifyError
from boltgate.shopify.models import ShopifyCatalog, ShopifyStore
from boltgate.shopify.stores import Channel, shopify_failure

log = structlog.get_logger(__name__)
MAX_PAGES = 100


def legacy_id(node: dict[str, Any]) -> int | None:
    """Shopify's numeric id of a node: ``legacyResourceId``, else the tail of its GID."""
    raw = node.get("legacyResourceId") or str(node.get("id") or "").rsplit("/", 1)[-1]
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def variant_of(node: dict[str, Any]) -> dict[str, Any] | None:
    """One variant as kept (prices as decimal strings), or None when Shopify's answer is unusable."""
    number = legacy_id(node)
    try:
        price = Decimal(str(node.get("price"))).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None
    if number is None or not price.is_finite() or price < 0:
        return None
    inventory = node.get("inventoryQuantity")
    return {
        "variantId": number,
        "gid": str(node.get("id")),
        "title": str(node.get("title") or ""),
        "sku": node.get("sku"),
        "priceUsd": str(price),
        "available": bool(node.get("availableForSale")),
        "inventoryQuantity": inventory if isinstance(inventory, int) else None,
        "inventoryPolicy": node.get("inventoryPolicy"),
    }


def _product(node: dict[str, Any]) -> dict[str, Any] | None:
    number = legacy_id(node)
    if number is None:
        return None
    media = node.get("featuredMedia") or {}
    image = ((media.get("preview") or {}).get("image") or {}).get("url")
    variants = [v for v in map(variant_of, ((node.get("variants") or {}).get("nodes") or [])) if v]
    return {
        "productId": number,
        "gid": str(node.get("id")),
        "title": str(node.get("title") or ""),
        "description": node.get("description") or "",
        "imageUrl": image,
        "variants": variants,
    }


async def fetch(channel: Channel, store: ShopifyStore) -> dict[str, Any]:
    """The catalog as Shopify has it now (every page)."""
    creds = channel.credentials(store)
    products: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        data = await channel.admin.execute(creds, graphql.CATALOG, {"cursor": cursor})
        page = data.get("products") or {}
        products.extend(p for p in map(_product, page.get("nodes") or []) if p)
        info = page.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            break
        cursor = info.get("endCursor")
    else:
        log.warning("shopify_catalog_truncated", store=store.slug, products=len(products))
    return {"products": products}


async def current(
    db: Database, channel: Channel, store: ShopifyStore, ttl: int, now: datetime
) -> dict[str, Any]:
    """The cached catalog while fresh, else read again (a failed read serves the old copy, if any).

    Requests that find it stale together wait for one read from Shopify (per process), not one each.
    """
    cached = await _cached(db, store.id)
    if _fresh(cached, ttl, now):
        assert cached is not None
        return cached.data
    async with channel.refresh_lock(store.id):
        again = await _cached(db, store.id)
        if (
            again is not None
            and _fresh(again, ttl, now)
            and (cached is None or again.fetched_at > cached.fetched_at)
        ):
            return again.data  # read by the request we waited for
        return await _refresh(db, channel, store, again, now)


async def _cached(db: Database, store_id: str) -> ShopifyCatalog | None:
    async with db.reading() as session:
        return await session.get(ShopifyCatalog, store_id)


def _fresh(cached: ShopifyCatalog | None, ttl: int, now: datetime) -> bool:
    return cached is not None and not cached.stale and cached.fetched_at > now - timedelta(seconds=ttl)


async def _refresh(
    db: Database, channel: Channel, store: ShopifyStore, cached: ShopifyCatalog | None, now: datetime
) -> dict[str, Any]:
    try:
        data = await fetch(channel, store)
    except ShopifyError as exc:
        if cached is not None:
            log.warning("shopify_catalog_stale_served", store=store.slug, error=type(exc).__name__)
            return cached.data
        raise shopify_failure(exc, store.shop_domain) from exc
    async with db.writing() as session:
        row = await session.get(ShopifyCatalog, store.id)
        if row is None:
            session.add(ShopifyCatalog(store_id=store.id, data=data, fetched_at=now, stale=False))
        else:
            row.data, row.fetched_at, row.stale = data, now, False
    return data


async def mark_stale(session: AsyncSession, store_id: str) -> None:
    await session.execute(
        update(ShopifyCatalog).where(ShopifyCatalog.store_id == store_id).values(stale=True)
    )


def variants_by_id(data: dict[str, Any]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """variant id → (product, variant)."""
    return {v["variantId"]: (p, v) for p in data.get("products", []) for v in p.get("variants", [])}


def shipping_out(shipping: dict[str, Any]) -> dict[str, Any]:
    """The store's shipping rules, with Lightning Enable's summary fields first (the first group)."""
    groups = shipping.get("groups") or []
    first = groups[0] if groups else {"countries": [], "rateUsd": "0", "freeOverUsd": None}
    return {
        "domesticUsd": float(first["rateUsd"]),
        "domesticOnly": len(groups) == 1 and "*" not in first["countries"],
        "freeShippingEnabled": first.get("freeOverUsd") is not None,
        "freeShippingThresholdUsd": None if first.get("freeOverUsd") is None else float(first["freeOverUsd"]),
        "groups": [
            {
                "name": g["name"],
                "countries": g["countries"],
                "rateUsd": float(g["rateUsd"]),
                "freeOverUsd": None if g.get("freeOverUsd") is None else float(g["freeOverUsd"]),
            }
            for g in groups
        ],
    }


def catalog_out(store: ShopifyStore, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "storeName": store.store_name,
        "slug": store.slug,
        "shipping": shipping_out(store.shipping),
        "products": [
            {
                "productId": p["productId"],
                "title": p["title"],
                "description": p["description"],
                "imageUrl": p["imageUrl"],
                "variants": [
                    {
                        "variantId": v["variantId"],
                        "title": v["title"],
                        "sku": v["sku"],
                        "priceUsd": float(v["priceUsd"]),
                        "available": v["available"],
                    }
                    for v in p["variants"]
                ],
            }
            for p in data.get("products", [])
        ],
    }
