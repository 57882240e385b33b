"""Shopify's webhooks to a store's ``/api/shopify/{slug}/webhooks``: verified, handled once.

``X-Shopify-Hmac-SHA256`` is base64(HMAC-SHA256(raw body)) keyed with the app's client secret
(or the store's webhook secret when the webhooks were made under the shop's notification
settings); it is checked on the raw bytes, in constant time, before anything is parsed. Shopify
retries deliveries, so ``X-Shopify-Webhook-Id`` is recorded with the change it made, in one
transaction: a repeat changes nothing. Topics: ``orders/*`` and ``fulfillments/*`` update an
order's tracking and state; ``products/*`` and ``inventory_levels/*`` mark the catalog stale;
``app/uninstalled`` switches the store off (``active: false``) until it is connected again —
once the Admin API confirms that the store's credentials are refused: Shopify signs the body
only, so a signed body of another topic re-sent with this topic header must not stop a shop's
sales (while Shopify cannot be asked, the delivery is answered 503 and Shopify retries it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from boltgate.context import Context
from boltgate.errors import MalformedRequest, ServiceUnavailable, Unauthorized, ValidationFailed
from boltgate.shopify import catalog, graphql, orders
from boltgate.shopify.client import (
    ShopifyError,
    ShopifyNotFound,
    ShopifyUnauthorized,
    ShopifyUnavailable,
)
from boltgate.shopify.models import ShopifyOrder, ShopifyStore, ShopifyWebhookReceipt
from boltgate.shopify.stores import Channel

log = structlog.get_logger(__name__)
KEEP_RECEIPTS = timedelta(days=3)  # Shopify retries a delivery for about 4 hours


def signature_valid(key: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def _order_gid(payload: dict[str, Any], topic: str) -> str | None:
    if topic.startswith("fulfillments/"):
        number = payload.get("order_id")
        return f"gid://shopify/Order/{number}" if isinstance(number, int) else None
    gid = payload.get("admin_graphql_api_id")
    if isinstance(gid, str) and gid.startswith("gid://shopify/Order/"):
        return gid
    number = payload.get("id")
    return f"gid://shopify/Order/{number}" if isinstance(number, int) else None


async def receive(
    ctx: Context, channel: Channel, store: ShopifyStore, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    key = channel.webhook_key(store)
    if key is None or not signature_valid(key, body, headers.get("x-shopify-hmac-sha256")):
        raise Unauthorized("the X-Shopify-Hmac-SHA256 signature does not match", code="invalid_signature")
    webhook_id = headers.get("x-shopify-webhook-id", "").strip()
    topic = headers.get("x-shopify-topic", "").strip().lower()
    if not webhook_id or len(webhook_id) > 100 or not topic or len(topic) > 100:
        raise ValidationFailed(
            "X-Shopify-Webhook-Id and X-Shopify-Topic are required", code="invalid_webhook"
        )
    shop = headers.get("x-shopify-shop-domain", "").strip().lower()
    if shop and shop != store.shop_domain:
        raise ValidationFailed(f"this endpoint is for {store.shop_domain}", code="shop_mismatch")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest("the webhook body is not JSON", code="malformed_json") from exc
    if not isinstance(payload, dict):
        raise MalformedRequest("the webhook body must be a JSON object", code="malformed_json")
    uninstall = topic == "app/uninstalled" and await _installation_gone(channel, store)
    now = ctx.clock()
    try:
        async with ctx.db.writing() as session:
            session.add(
                ShopifyWebhookReceipt(store_id=store.id, webhook_id=webhook_id, topic=topic, received_at=now)
            )
            await session.flush()  # a repeat fails here, before it changes anything
            handled = await _handle(session, store, topic, payload, now, uninstall=uninstall)
    except IntegrityError:
        return {"received": True, "duplicate": True}
    log.info("shopify_webhook", store=store.slug, topic=topic, handled=handled)
    return {"received": True, "duplicate": False, "handled": handled}


async def _installation_gone(channel: Channel, store: ShopifyStore) -> bool:
    """Whether Shopify now refuses the store's credentials (the app really was uninstalled)."""
    try:
        await channel.admin.execute(channel.credentials(store), graphql.SHOP_INFO)
    except (ShopifyUnauthorized, ShopifyNotFound):
        return True
    except ShopifyUnavailable as exc:
        raise ServiceUnavailable(
            "Shopify cannot confirm the uninstall now; deliver again later",
            code="shopify_unavailable",
            headers={"Retry-After": "30"},
        ) from exc
    except ShopifyError as exc:  # it answered, but not that the credentials are refused
        log.warning("shopify_uninstall_not_confirmed", store=store.slug, error=type(exc).__name__)
        return False
    log.warning("shopify_uninstall_not_confirmed", store=store.slug)
    return False


async def _handle(
    session: Any,
    store: ShopifyStore,
    topic: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    uninstall: bool = False,
) -> bool:
    if topic == "app/uninstalled":
        if not uninstall:  # the credentials still work: not an uninstall, whatever the header says
            return False
        # its token is dead: stop selling until the merchant reconnects
        row = await session.get(ShopifyStore, store.id, with_for_update=True)
        row.active, row.updated_at = False, now
        log.warning("shopify_app_uninstalled", store=store.slug)
        return True
    if topic.startswith(("products/", "inventory_levels/", "inventory_items/")):
        await catalog.mark_stale(session, store.id)
        return True
    if topic.startswith(("orders/", "fulfillments/")):
        gid = _order_gid(payload, topic)
        if gid is None:
            return False
        order = await session.scalar(
            select(ShopifyOrder)
            .where(ShopifyOrder.store_id == store.id, ShopifyOrder.shopify_order_id == gid)
            .with_for_update()
        )
        if order is None:
            return False  # an order of the store that was not sold through us
        if topic.startswith("fulfillments/"):
            payload = {"fulfillments": [payload]}
        orders.apply_rest(order, payload, now)
        return True
    return False


async def forget_receipts(ctx: Context) -> int:
    async with ctx.db.writing() as session:
        gone = await session.execute(
            delete(ShopifyWebhookReceipt).where(
                ShopifyWebhookReceipt.received_at < ctx.clock() - KEEP_RECEIPTS
            )
        )
    return int(gone.rowcount or 0)  # type: ignore[attr-defined]
