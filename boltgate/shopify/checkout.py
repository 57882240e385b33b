"""A Shopify checkout: the items quoted from the catalog, shipping by the buyer's country, one
Lightning payment for the total (USD → sats at the current rate) and an L402/Payment challenge for
that same invoice, so a paying agent can prove payment with the preimage.

The payment is an ordinary merchant payment (webhooks, hosted page, expiry, reconciliation), its
``orderId`` the channel's order id (``shpfy_…``). The order row keeps what was quoted; the claim
creates the Shopify order from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from boltgate.context import Context
from boltgate.errors import Conflict, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import new_id
from boltgate.l402 import service as l402
from boltgate.l402.service import Issued, Offer
from boltgate.payment import service as payments
from boltgate.payment.schemas import PaymentCreate
from boltgate.payment.service import PaymentView
from boltgate.shopify import catalog
from boltgate.shopify.models import ShopifyOrder, ShopifyStore
from boltgate.shopify.schemas import COUNTRIES, CheckoutCreate
from boltgate.shopify.stores import Channel, claim_hash

CENT = Decimal("0.01")


def group_for(shipping: dict[str, Any], country: str | None) -> dict[str, Any] | None:
    """The shipping group serving ``country`` (its own, else the ``*`` group); the first without one."""
    groups: list[dict[str, Any]] = shipping.get("groups") or []
    if country is None:
        return groups[0] if groups else None
    for group in groups:
        if country in group["countries"]:
            return group
    return next((g for g in groups if "*" in g["countries"]), None)


def shipping_cost(group: dict[str, Any], subtotal: Decimal) -> Decimal:
    free = group.get("freeOverUsd")
    if free is not None and subtotal >= Decimal(free):
        return Decimal("0.00")
    return Decimal(group["rateUsd"]).quantize(CENT)


def buyer_country(header: str | None) -> str | None:
    """The country of ``X-Buyer-Location: {country}-{state}-{zip}`` (None when absent or malformed)."""
    if not header:
        return None
    country = header.strip().split("-", 1)[0].upper()
    return country if country in COUNTRIES else None


def resource_of(store: ShopifyStore, order_id: str) -> str:
    return f"shopify:{store.slug}:{order_id}"


def offer_for(store: ShopifyStore, order_id: str, amount_sats: int) -> Offer:
    return Offer(
        resource=resource_of(store, order_id),
        amount_sats=amount_sats,
        merchant_id=store.merchant_id,
        description=f"{store.store_name} order {order_id}",
    )


@dataclass(frozen=True, slots=True)
class Checkout:
    order: ShopifyOrder
    payment: PaymentView
    issued: Issued
    claim_token: str


def quote(
    store: ShopifyStore, data: dict[str, Any], body: CheckoutCreate, country: str | None
) -> tuple[list[dict[str, Any]], Decimal, Decimal, str]:
    """The priced items, subtotal, shipping and shipping group; 400/409 for what cannot be sold."""
    known = catalog.variants_by_id(data)
    items: list[dict[str, Any]] = []
    unknown: dict[str, list[str]] = {}
    for i, item in enumerate(body.items):
        found = known.get(item.variantId)
        if found is None:
            unknown[f"items.{i}.variantId"] = [f"no variant {item.variantId} in this store's catalog"]
            continue
        product, variant = found
        items.append(
            {
                "variantId": variant["variantId"],
                "gid": variant["gid"],
                "productId": product["productId"],
                "productTitle": product["title"],
                "variantTitle": variant["title"],
                "quantity": item.quantity,
                "priceUsd": variant["priceUsd"],
            }
        )
    if unknown:
        first = next(iter(unknown.values()))[0]
        raise ValidationFailed(first, errors=unknown, code="unknown_variant")
    short = [i for i in items if not _in_stock(known[i["variantId"]][1], i["quantity"])]
    if short:
        names = ", ".join(f"{i['productTitle']} ({i['variantTitle']})" for i in short)
        raise Conflict(f"not available in the quantity asked: {names}", code="out_of_stock")
    subtotal = sum((Decimal(i["priceUsd"]) * i["quantity"] for i in items), Decimal("0.00"))
    group = group_for(store.shipping, country)
    if group is None:
        raise ValidationFailed(
            f"this store does not ship to {country}",
            errors={"shippingCountry": [f"not shipped to: {country}"]},
            code="country_not_shipped",
        )
    return items, subtotal.quantize(CENT), shipping_cost(group, subtotal), str(group["name"])


def _in_stock(variant: dict[str, Any], quantity: int) -> bool:
    if not variant["available"]:
        return False
    stock = variant.get("inventoryQuantity")
    return variant.get("inventoryPolicy") != "DENY" or stock is None or stock >= quantity


async def create(
    ctx: Context, channel: Channel, store: ShopifyStore, body: CheckoutCreate, country: str | None
) -> Checkout:
    data = await catalog.current(
        ctx.db, channel, store, ctx.settings.shopify_catalog_ttl_seconds, ctx.clock()
    )
    items, subtotal, shipping, group = quote(store, data, body, country)
    total = subtotal + shipping
    if total <= 0:
        raise ValidationFailed("the order total is 0: nothing to pay", code="amount_out_of_range")
    order_id = new_id("shpfy", 20)
    backend, backend_ref = await ctx.backends.for_merchant(store.merchant_id)
    payment, _ = await payments.create_payment(
        ctx.db,
        backend,
        ctx.rates,
        ctx.settings,
        store.merchant_id,
        PaymentCreate(
            orderId=order_id,
            amount=total,
            currency="USD",
            description=f"{store.store_name} order {order_id}"[:500],
            metadata={"source": "shopify", "store": store.slug, "shopifyCheckoutId": order_id},
        ),
        idempotency_key=None,
        clock=ctx.clock,
        backend_ref=backend_ref,
    )
    issued = await l402.mint_for_invoice(
        ctx,
        ctx.l402,
        offer_for(store, order_id, payment.amount_sats),
        payment_hash=payment.payment_hash,
        payment_request=payment.payment_request,
        expires_at=payment.expires_at,
    )
    token = channel.claim_token(order_id)
    now = ctx.clock()
    order = ShopifyOrder(
        id=order_id,
        store_id=store.id,
        merchant_id=store.merchant_id,
        payment_id=payment.id,
        payment_hash=payment.payment_hash,
        claim_token_hash=claim_hash(token),
        items=items,
        subtotal_usd=str(subtotal),
        shipping_usd=str(shipping),
        total_usd=str(total),
        amount_sats=payment.amount_sats,
        shipping_group=group,
        state="open",
        claim_attempts=0,
        flags="",
        created_at=now,
        updated_at=now,
    )
    async with ctx.db.writing() as session:
        session.add(order)
    return Checkout(order, payment, issued, token)


async def by_payment_hash(ctx: Context, store: ShopifyStore, payment_hash: str) -> ShopifyOrder | None:
    async with ctx.db.reading() as session:
        order = await session.scalar(select(ShopifyOrder).where(ShopifyOrder.payment_hash == payment_hash))
    return order if order is not None and order.store_id == store.id else None


def items_out(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "variantId": i["variantId"],
            "productTitle": i["productTitle"],
            "variantTitle": i["variantTitle"],
            "quantity": i["quantity"],
            "priceUsd": float(i["priceUsd"]),
        }
        for i in items
    ]


def checkout_out(base_url: str, store: ShopifyStore, c: Checkout, expires_at: datetime) -> dict[str, Any]:
    order, base = c.order, base_url.rstrip("/")
    return {
        "orderId": order.id,
        "items": items_out(order.items),
        "subtotalUsd": float(order.subtotal_usd),
        "shippingUsd": float(order.shipping_usd),
        "totalUsd": float(order.total_usd),
        "shippingGroup": order.shipping_group,
        "amountSats": order.amount_sats,
        "invoice": c.payment.payment_request,
        "paymentHash": c.payment.payment_hash,
        "expiresAt": rfc3339(expires_at),
        "claimToken": c.claim_token,
        "checkoutUrl": f"{base}/checkout/{c.payment.id}",
        "claimUrl": f"{base}/api/shopify/{store.slug}/claim",
        "statusUrl": f"{base}/api/shopify/{store.slug}/orders/{order.id}?claimToken={c.claim_token}",
    }
