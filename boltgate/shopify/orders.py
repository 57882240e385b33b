"""An order's status as its buyer sees it, and the tracking read back from Shopify (the
fulfilment webhooks, or the Admin API when the order is looked at and has not been checked for a
minute).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from boltgate.context import Context
from boltgate.kit.clock import parse_rfc3339, rfc3339
from boltgate.payment.models import Payment
from boltgate.shopify import graphql
from boltgate.shopify.checkout import items_out
from boltgate.shopify.client import ShopifyError
from boltgate.shopify.models import ShopifyOrder, ShopifyStore
from boltgate.shopify.stores import Channel

log = structlog.get_logger(__name__)
DONE = ("ordered", "shipped", "cancelled")
TRACKING_REFRESH = timedelta(seconds=60)


def status_of(order: ShopifyOrder, payment: Payment | None) -> str:
    if order.state in DONE:
        return order.state
    if order.state == "claiming":
        return "processing"
    if payment is not None and payment.status == "paid":
        return "paid"
    if payment is not None and payment.status == "expired":
        return "expired"
    return "pending_payment"


def order_out(order: ShopifyOrder, payment: Payment | None) -> dict[str, Any]:
    return {
        "orderId": order.id,
        "status": status_of(order, payment),
        "items": items_out(order.items),
        "subtotalUsd": float(order.subtotal_usd),
        "shippingUsd": float(order.shipping_usd),
        "totalUsd": float(order.total_usd),
        "paidSats": order.amount_sats if payment is not None and payment.paid_at is not None else 0,
        "amountSats": order.amount_sats,
        "shopifyOrderNumber": order.shopify_order_name,
        "shopifyOrderStatusUrl": order.status_page_url,
        "trackingNumber": order.tracking_number,
        "trackingCarrier": order.tracking_carrier,
        "trackingUrl": order.tracking_url,
        "flags": [f for f in order.flags.split("\n") if f],
        "createdAt": rfc3339(order.created_at),
        "paidAt": rfc3339(payment.paid_at) if payment is not None else None,
        "claimedAt": rfc3339(order.claimed_at),
        "shippedAt": rfc3339(order.shipped_at),
        "cancelledAt": rfc3339(order.cancelled_at),
    }


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def apply_graphql(order: ShopifyOrder, node: dict[str, Any], now: datetime) -> None:
    """Tracking and state from the Admin API's ``Order`` (ORDER_TRACKING)."""
    tracked = []
    for f in node.get("fulfillments") or []:
        if not isinstance(f, dict) or str(f.get("status", "")).upper() in ("CANCELLED", "FAILURE", "ERROR"):
            continue
        infos = f.get("trackingInfo") or [{}]
        info = infos[0] if isinstance(infos[0], dict) else {}
        tracked.append((_when(f.get("createdAt")) or now, info))
    _apply(order, tracked, _when(node.get("cancelledAt")), now)


def apply_rest(order: ShopifyOrder, payload: dict[str, Any], now: datetime) -> None:
    """Tracking and state from a webhook's REST-style order (snake_case)."""
    tracked = []
    for f in payload.get("fulfillments") or []:
        if not isinstance(f, dict) or str(f.get("status", "")).lower() in ("cancelled", "failure", "error"):
            continue
        info = {
            "company": f.get("tracking_company"),
            "number": f.get("tracking_number"),
            "url": f.get("tracking_url"),
        }
        if not info["number"] and f.get("tracking_numbers"):
            info["number"] = f["tracking_numbers"][0]
        if not info["url"] and f.get("tracking_urls"):
            info["url"] = f["tracking_urls"][0]
        tracked.append((_when(f.get("created_at")) or now, info))
    _apply(order, tracked, _when(payload.get("cancelled_at")), now)


def _apply(
    order: ShopifyOrder,
    tracked: list[tuple[datetime, dict[str, Any]]],
    cancelled_at: datetime | None,
    now: datetime,
) -> None:
    if order.state not in DONE:
        return  # not created in Shopify yet: nothing of Shopify's can apply
    if tracked:
        when, info = max(tracked, key=lambda t: t[0])
        order.tracking_number = _short(info.get("number"), 200)
        order.tracking_carrier = _short(info.get("company"), 200)
        url = _short(info.get("url"), 2048)
        order.tracking_url = url if url and url.startswith(("https://", "http://")) else None
        order.shipped_at = order.shipped_at or when
        if order.state == "ordered":
            order.state = "shipped"
    if cancelled_at is not None:
        order.cancelled_at = cancelled_at
        order.state = "cancelled"
    order.tracking_checked_at = now
    order.updated_at = now


def _short(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


async def refresh_tracking(ctx: Context, channel: Channel, store: ShopifyStore, order: ShopifyOrder) -> None:
    """Ask Shopify for the order's fulfilments when not asked for a minute (failures change nothing)."""
    now = ctx.clock()
    if order.state != "ordered" or not order.shopify_order_id:
        return
    if order.tracking_checked_at is not None and order.tracking_checked_at > now - TRACKING_REFRESH:
        return
    try:
        data = await channel.admin.execute(
            channel.credentials(store), graphql.ORDER_TRACKING, {"id": order.shopify_order_id}
        )
    except ShopifyError as exc:
        log.info("shopify_tracking_unavailable", order_id=order.id, error=type(exc).__name__)
        return
    node = data.get("order")
    async with ctx.db.writing() as session:
        row = await session.get(ShopifyOrder, order.id, with_for_update=True, populate_existing=True)
        if row is None:
            return
        if isinstance(node, dict):
            apply_graphql(row, node, now)
        else:
            row.tracking_checked_at = now
        for key in (
            "state",
            "tracking_number",
            "tracking_carrier",
            "tracking_url",
            "shipped_at",
            "cancelled_at",
        ):
            setattr(order, key, getattr(row, key))
