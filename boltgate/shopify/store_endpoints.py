"""The merchant's side of the Shopify channel (API key): connect stores, change them, see their
orders, and ``/api/stats/shopify``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from boltgate.payment.models import Payment
from boltgate.shopify import orders, stores
from boltgate.shopify.models import ShopifyOrder
from boltgate.shopify.schemas import StoreCreate, StoreUpdate
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(tags=["shopify"])


@router.post(
    "/api/shopify/stores",
    status_code=201,
    responses=problems(400, 401, 409, 429, 502, 503),
    openapi_extra=json_body(StoreCreate),
    summary="Connect a Shopify store (its credentials are checked with Shopify, then kept sealed)",
)
async def create_store(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, StoreCreate, ctx.settings.max_body_bytes)
    store = await stores.create(ctx.db, ctx.shopify, merchant.merchant_id, body, ctx.clock())
    out = stores.store_out(store, ctx.settings.base_url)
    return json_response(out, 201, {"Location": f"/api/shopify/stores/{store.slug}"})


@router.get("/api/shopify/stores", responses=problems(401, 429), summary="Your connected stores")
async def list_stores(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        found = await stores.list_for(session, merchant.merchant_id)
    items = [stores.store_out(s, ctx.settings.base_url) for s in found]
    return json_response({"items": items, "total": len(items)})


@router.get("/api/shopify/stores/{slug}", responses=problems(401, 404, 429), summary="A connected store")
async def get_store(ctx: Ctx, merchant: Merchant, slug: str) -> Response:
    async with ctx.db.reading() as session:
        store = await stores.get(session, merchant.merchant_id, slug)
    return json_response(stores.store_out(store, ctx.settings.base_url))


@router.put(
    "/api/shopify/stores/{slug}",
    responses=problems(400, 401, 404, 429, 502, 503),
    openapi_extra=json_body(StoreUpdate),
    summary="Change a store (the fields given; new credentials are checked with Shopify first)",
)
async def update_store(request: Request, ctx: Ctx, merchant: Merchant, slug: str) -> Response:
    body = await read_json(request, StoreUpdate, ctx.settings.max_body_bytes)
    store = await stores.update(ctx.db, ctx.shopify, merchant.merchant_id, slug, body, ctx.clock())
    return json_response(stores.store_out(store, ctx.settings.base_url))


@router.delete(
    "/api/shopify/stores/{slug}",
    status_code=204,
    responses=problems(401, 404, 409, 429),
    summary="Remove a store that has no orders (one with orders is kept: set active to false)",
)
async def delete_store(ctx: Ctx, merchant: Merchant, slug: str) -> Response:
    async with ctx.db.writing() as session:
        await stores.delete(session, merchant.merchant_id, slug)
    ctx.shopify.rendered.pop(slug, None)  # the catalog answer kept for a moment goes with the store
    return Response(status_code=204)


@router.get(
    "/api/shopify/stores/{slug}/orders",
    responses=problems(400, 401, 404, 429),
    summary="The store's Lightning orders, newest first",
)
async def list_orders(
    ctx: Ctx,
    merchant: Merchant,
    slug: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    async with ctx.db.reading() as session:
        store = await stores.get(session, merchant.merchant_id, slug)
        rows = (
            await session.execute(
                select(ShopifyOrder, Payment)
                .join(Payment, Payment.id == ShopifyOrder.payment_id)
                .where(ShopifyOrder.store_id == store.id)
                .order_by(ShopifyOrder.created_at.desc(), ShopifyOrder.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    items = [
        orders.order_out(o, p) | {"invoiceId": o.payment_id, "email": o.email, "lastError": o.last_error}
        for o, p in rows
    ]
    return json_response({"items": items, "limit": limit, "offset": offset})


Days = Annotated[int, Query(ge=1, le=3660, description="orders checked out in the last N UTC days")]


@router.get(
    "/api/stats/shopify",
    responses=problems(400, 401, 429),
    summary="Your Shopify channel: checkouts, paid and created orders, revenue, per store",
)
async def shopify_stats(ctx: Ctx, merchant: Merchant, days: Days = 30) -> Response:
    start = (ctx.clock() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    async with ctx.db.reading() as session:
        found = await stores.list_for(session, merchant.merchant_id)
        rows = (
            await session.execute(
                select(
                    ShopifyOrder.store_id,
                    ShopifyOrder.state,
                    ShopifyOrder.flags,
                    ShopifyOrder.total_usd,
                    Payment.status,
                    Payment.amount_sats,
                )
                .join(Payment, Payment.id == ShopifyOrder.payment_id)
                .where(ShopifyOrder.merchant_id == merchant.merchant_id, ShopifyOrder.created_at >= start)
            )
        ).all()
    per: dict[str, dict[str, Any]] = {s.id: _zero() for s in found}
    total = _zero()
    for store_id, state, flags, usd, status, sats in rows:
        for target in (per.setdefault(store_id, _zero()), total):
            target["checkouts"] += 1
            if status == "paid":
                target["paidOrders"] += 1
                target["revenueSats"] += sats
                target["revenueUsd"] += Decimal(usd)
            target["createdOrders"] += state in orders.DONE
            target["shippedOrders"] += state == "shipped"
            target["flaggedOrders"] += bool(flags)
            target["unclaimedPaidOrders"] += status == "paid" and state in ("open", "claiming")
    return json_response(
        {
            "merchantId": merchant.merchant_id,
            "since": start.strftime("%Y-%m-%d"),
            **_plain(total),
            "stores": [
                {"slug": s.slug, "storeName": s.store_name, "active": s.active, **_plain(per[s.id])}
                for s in found
            ],
        }
    )


def _zero() -> dict[str, Any]:
    return dict.fromkeys(
        (
            "checkouts",
            "paidOrders",
            "createdOrders",
            "shippedOrders",
            "flaggedOrders",
            "unclaimedPaidOrders",
            "revenueSats",
        ),
        0,
    ) | {"revenueUsd": Decimal("0.00")}


def _plain(figures: dict[str, Any]) -> dict[str, Any]:
    return figures | {"revenueUsd": float(figures["revenueUsd"])}
