"""The claim: after payment, the buyer's email and address turn the quoted order into a paid
Shopify order (``orderCreate``, financial status PAID, a successful SALE for the total, inventory
decremented obeying the store's policy) — exactly once.

Exactly once, across retries, replicas and Shopify timeouts:
- a claim takes a lease on the order (one conditional UPDATE); a second claim meanwhile gets 409
  ``claim_in_progress``; a lease left by a crashed process expires;
- every order we create carries the tag ``boltgate-<orderId>`` and ``sourceIdentifier``; a claim
  after an attempt whose outcome is unknown looks the order up by that tag before creating one;
- a finished claim answers the same order again.

What the buyer paid for is what Shopify records. When the variant's price changed since the
quote, the order is still created at the quoted price and **flagged** (tag, note and a
``shopify.order.flagged`` webhook to the merchant); when stock ran out, the order is created
without decrementing inventory (``BYPASS``) and flagged ``out_of_stock`` for the merchant to
fulfil later or refund; a variant deleted since is sold as a custom line item and flagged
``variant_removed``. A paid buyer is never left without an order.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import or_, select, update

from boltgate.context import Context
from boltgate.db.conn import SessionConn
from boltgate.errors import (
    BackendUnavailable,
    BadGateway,
    BoltgateError,
    Conflict,
    Gone,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from boltgate.lightning.base import InvoiceStatus, LightningError
from boltgate.payment import service as payments
from boltgate.payment.models import Payment
from boltgate.shopify import graphql
from boltgate.shopify.catalog import variant_of
from boltgate.shopify.checkout import group_for, shipping_cost
from boltgate.shopify.client import ShopifyError, ShopifyQueryError, ShopifyUnauthorized
from boltgate.shopify.models import ShopifyOrder, ShopifyStore
from boltgate.shopify.orders import DONE
from boltgate.shopify.schemas import ClaimCreate
from boltgate.shopify.stores import Channel, claim_hash
from boltgate.webhook import events, outbox

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=120)  # longer than a claim's Shopify calls can take with their retries
GATEWAY = "Lightning (boltgate)"


def tag_of(order_id: str) -> str:
    return f"boltgate-{order_id}"


async def find(ctx: Context, store: ShopifyStore, token: str) -> ShopifyOrder:
    async with ctx.db.reading() as session:
        order = await session.scalar(
            select(ShopifyOrder).where(ShopifyOrder.claim_token_hash == claim_hash(token))
        )
    if order is None or order.store_id != store.id:
        raise NotFound("no order of this store has this claim token", code="order_not_found")
    return order


async def ensure_paid(ctx: Context, order: ShopifyOrder) -> Payment:
    """The order's payment, paid; asks the backend once when our record still says unpaid."""
    async with ctx.db.reading() as session:
        payment = await session.get(Payment, order.payment_id)
    if payment is None:  # pragma: no cover - a foreign key keeps it
        raise NotFound("the order's payment is gone", code="order_not_found")
    if payment.status == "paid":
        return payment
    if payment.status == "refunded":
        raise Conflict("the order's payment was refunded: it cannot be claimed", code="payment_refunded")
    if payment.status in ("unpaid", "expired"):
        try:
            backend = await ctx.backends.get(payment.backend_ref)
            state = await backend.lookup_invoice(
                payment.payment_hash, backend_invoice_id=payment.backend_invoice_id
            )
        except LightningError as exc:
            raise BackendUnavailable(
                "the Lightning backend cannot say whether the order is paid; try again",
                headers={"Retry-After": "5"},
            ) from exc
        if state.status is InvoiceStatus.SETTLED and state.settled_at is not None:
            async with ctx.db.writing() as session:
                await payments.apply_settlement(
                    session, payment.payment_hash, state.amount_received_msat, state.settled_at, ctx.clock()
                )
            async with ctx.db.reading() as session:
                paid = await session.get(Payment, order.payment_id)
            if paid is not None and paid.status == "paid":
                return paid
    if payment.status == "expired" or payment.expires_at <= ctx.clock():
        raise Gone("the order's invoice expired unpaid: start a new checkout", code="payment_expired")
    raise Conflict(
        "the order is not paid yet: pay its invoice, then claim",
        code="payment_pending",
        headers={"Retry-After": "2"},
    )


async def ensure_paid_quietly(ctx: Context, order: ShopifyOrder) -> None:
    """Bring the payment's record up to date when it can be (a proof of payment was just shown)."""
    with contextlib.suppress(BoltgateError):
        await ensure_paid(ctx, order)


def check_destination(store: ShopifyStore, order: ShopifyOrder, country: str) -> None:
    """The address must be in a country the store ships to, for no more shipping than was paid."""
    group = group_for(store.shipping, country)
    if group is None:
        raise ValidationFailed(
            f"this store does not ship to {country}",
            errors={"shippingAddress.countryCode": [f"not shipped to: {country}"]},
            code="country_not_shipped",
        )
    if group["name"] != order.shipping_group and shipping_cost(group, Decimal(order.subtotal_usd)) > Decimal(
        order.shipping_usd
    ):
        raise Conflict(
            f"shipping to {country} costs more than the shipping paid at checkout "
            f"(quoted for {order.shipping_group}); give an address there, or check out again for {country}",
            code="shipping_country_mismatch",
        )


async def _lease(ctx: Context, order: ShopifyOrder, body: ClaimCreate, now: datetime) -> int | None:
    """Take the claim; returns the attempts made before, or None when the order is already done."""
    address = body.shippingAddress.model_dump(exclude_none=True)
    async with ctx.db.writing() as session:
        taken = await session.execute(
            update(ShopifyOrder)
            .where(
                ShopifyOrder.id == order.id,
                or_(
                    ShopifyOrder.state == "open",
                    (ShopifyOrder.state == "claiming") & (ShopifyOrder.claim_lease_until < now),
                ),
            )
            .values(
                state="claiming",
                claim_lease_until=now + LEASE,
                claim_attempts=ShopifyOrder.claim_attempts + 1,
                email=body.email,
                shipping_address=address,
                updated_at=now,
            )
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            attempts = await session.scalar(
                select(ShopifyOrder.claim_attempts).where(ShopifyOrder.id == order.id)
            )
            return int(attempts or 1) - 1
        state = await session.scalar(select(ShopifyOrder.state).where(ShopifyOrder.id == order.id))
    if state in DONE:
        return None
    raise Conflict(
        "this order is being claimed right now; try again shortly",
        code="claim_in_progress",
        headers={"Retry-After": "2"},
    )


async def _release(ctx: Context, order_id: str, error: str) -> None:
    async with ctx.db.writing() as session:
        await session.execute(
            update(ShopifyOrder)
            .where(ShopifyOrder.id == order_id, ShopifyOrder.state == "claiming")
            .values(state="open", claim_lease_until=None, last_error=error[:1000], updated_at=ctx.clock())
        )


async def claim(
    ctx: Context, channel: Channel, store: ShopifyStore, body: ClaimCreate
) -> tuple[ShopifyOrder, bool]:
    """The Shopify order of the claim (created now: True; found done already: False)."""
    order = await find(ctx, store, body.claimToken)
    if order.state in DONE:
        return order, False
    payment = await ensure_paid(ctx, order)
    check_destination(store, order, body.shippingAddress.countryCode)
    before = await _lease(ctx, order, body, ctx.clock())
    if before is None:
        return await _reload(ctx, order.id), False
    try:
        created, flags = await _place(ctx, channel, store, order, payment, body, look_first=before > 0)
    except ShopifyError as exc:
        await _release(ctx, order.id, f"{type(exc).__name__}: {exc}")
        log.warning("shopify_claim_failed", order_id=order.id, store=store.slug, error=type(exc).__name__)
        if isinstance(exc, ShopifyQueryError):
            raise BadGateway(f"Shopify refused the query: {exc}", code="shopify_query_failed") from exc
        if isinstance(exc, ShopifyUnauthorized):
            log.error("shopify_store_credentials_refused", store=store.slug, order_id=order.id)
            raise BadGateway(
                "the store's Shopify connection was refused; the payment is kept and the order can be "
                "claimed again once the store is reconnected",
                code="shopify_unauthorized",
            ) from exc
        raise ServiceUnavailable(
            "Shopify did not confirm the order; claim again in a few seconds (it will not be created twice)",
            code="shopify_unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    except BoltgateError as exc:
        await _release(ctx, order.id, exc.detail)
        raise
    return await _finish(ctx, store, order.id, created, flags), True


async def _reload(ctx: Context, order_id: str) -> ShopifyOrder:
    async with ctx.db.reading() as session:
        found = await session.get(ShopifyOrder, order_id)
    assert found is not None
    return found


async def _current_variants(
    channel: Channel, store: ShopifyStore, gids: list[str]
) -> dict[str, dict[str, Any]]:
    data = await channel.admin.execute(channel.credentials(store), graphql.VARIANTS, {"ids": gids})
    found: dict[str, dict[str, Any]] = {}
    for node in data.get("nodes") or []:
        if isinstance(node, dict) and node.get("id"):
            variant = variant_of(node)
            product = node.get("product") or {}
            if variant is not None and str(product.get("status", "ACTIVE")).upper() != "ACTIVE":
                variant["available"] = False
            if variant is not None:
                found[variant["gid"]] = variant
    return found


def _review(order: ShopifyOrder, current: dict[str, dict[str, Any]]) -> list[str]:
    flags: list[str] = []
    for item in order.items:
        now = current.get(item["gid"])
        if now is None:
            flags.append("variant_removed")
            continue
        if Decimal(now["priceUsd"]) != Decimal(item["priceUsd"]):
            flags.append("price_changed")
        stock = now.get("inventoryQuantity")
        short = now.get("inventoryPolicy") == "DENY" and stock is not None and stock < item["quantity"]
        if not now["available"] or short:
            flags.append("out_of_stock")
    return sorted(set(flags))


def _money(amount: str | Decimal) -> dict[str, Any]:
    return {"shopMoney": {"amount": str(amount), "currencyCode": "USD"}}


def order_input(
    store: ShopifyStore,
    order: ShopifyOrder,
    payment: Payment,
    body: ClaimCreate,
    current: dict[str, Any],
    flags: list[str],
) -> dict[str, Any]:
    lines = []
    for item in order.items:
        line: dict[str, Any] = {"quantity": item["quantity"], "priceSet": _money(item["priceUsd"])}
        if item["gid"] in current:
            line["variantId"] = item["gid"]
        else:
            line |= {
                "title": f"{item['productTitle']} - {item['variantTitle']}"[:255],
                "requiresShipping": True,
            }
        lines.append(line)
    note = (
        f"Paid with Lightning through boltgate: {payment.amount_sats} sats for {order.total_usd} USD, "
        f"payment hash {payment.payment_hash}, order {order.id}."
    )
    if flags:
        note += " Needs review: " + ", ".join(flags) + " (see the tags)."
    return {
        "currency": "USD",
        "email": body.email,
        "financialStatus": "PAID",
        "lineItems": lines,
        "shippingAddress": body.shippingAddress.model_dump(exclude_none=True),
        "shippingLines": [
            {"title": f"Shipping ({order.shipping_group})", "priceSet": _money(order.shipping_usd)}
        ],
        "transactions": [
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": GATEWAY,
                "amountSet": _money(order.total_usd),
                "authorizationCode": payment.payment_hash,
            }
        ],
        "note": note,
        "tags": [
            "lightning",
            "boltgate",
            tag_of(order.id),
            *(f"boltgate-{f.replace('_', '-')}" for f in flags),
        ],
        "sourceIdentifier": order.id,
    }


def _inventory_error(errors: list[dict[str, Any]]) -> bool:
    text = " ".join(f"{e.get('code') or ''} {e.get('message') or ''}" for e in errors).lower()
    return "inventory" in text or "stock" in text


async def _place(
    ctx: Context,
    channel: Channel,
    store: ShopifyStore,
    order: ShopifyOrder,
    payment: Payment,
    body: ClaimCreate,
    *,
    look_first: bool,
) -> tuple[dict[str, Any], list[str]]:
    creds = channel.credentials(store)
    current = await _current_variants(channel, store, [i["gid"] for i in order.items])
    flags = _review(order, current)
    if look_first:  # an earlier attempt may have created it before Shopify's answer was lost
        data = await channel.admin.execute(creds, graphql.FIND_ORDER, {"query": f"tag:{tag_of(order.id)}"})
        nodes = (data.get("orders") or {}).get("nodes") or []
        if nodes and isinstance(nodes[0], dict) and nodes[0].get("id"):
            log.info("shopify_order_found_again", order_id=order.id, shopify_order=nodes[0]["id"])
            return nodes[0], flags
    behaviour = "BYPASS" if "out_of_stock" in flags else "DECREMENT_OBEYING_POLICY"
    for _ in range(2):
        variables = {
            "order": order_input(store, order, payment, body, current, flags),
            "options": {"inventoryBehaviour": behaviour, "sendReceipt": True, "sendFulfillmentReceipt": True},
        }
        data = await channel.admin.execute(creds, graphql.ORDER_CREATE, variables, mutation=True)
        result = data.get("orderCreate") or {}
        errors = [e for e in result.get("userErrors") or [] if isinstance(e, dict)]
        created = result.get("order")
        if not errors and isinstance(created, dict) and created.get("id"):
            return created, flags
        if errors and behaviour != "BYPASS" and _inventory_error(errors):
            behaviour = "BYPASS"  # sold out between our look and Shopify's: paid, so create it flagged
            flags = sorted({*flags, "out_of_stock"})
            continue
        break
    raise _rejected(errors)


def _rejected(errors: list[dict[str, Any]]) -> BoltgateError:
    by_field: dict[str, list[str]] = {}
    for e in errors:
        path = [str(p) for p in e.get("field") or [] if p != "order"]
        key = ".".join(path) or "order"
        key = key.replace("shippingAddress", "shippingAddress", 1)
        by_field.setdefault(key, []).append(str(e.get("message") or "refused")[:300])
    if not by_field:
        return BadGateway("Shopify answered without an order", code="shopify_query_failed")
    first = next(iter(by_field.items()))
    return ValidationFailed(
        f"Shopify refused the order: {first[0]}: {first[1][0]}", errors=by_field, code="order_rejected"
    )


async def _finish(
    ctx: Context, store: ShopifyStore, order_id: str, created: dict[str, Any], flags: list[str]
) -> ShopifyOrder:
    now = ctx.clock()
    async with ctx.db.writing() as session:
        row = await session.get(ShopifyOrder, order_id, with_for_update=True, populate_existing=True)
        assert row is not None
        row.state = "ordered"
        row.shopify_order_id = str(created["id"])[:100]
        row.shopify_order_name = str(created.get("name") or "")[:100] or None
        url = created.get("statusPageUrl")
        row.status_page_url = str(url)[:2048] if isinstance(url, str) and url.startswith("https://") else None
        row.flags = "\n".join(flags)
        row.claimed_at, row.claim_lease_until, row.last_error, row.updated_at = now, None, None, now
        row.tracking_checked_at = now  # just created: nothing shipped yet, no need to ask for a minute
        data = _event_data(store, row)
        conn = SessionConn(session)
        postgresql = session.get_bind().dialect.name == "postgresql"
        await outbox.emit(
            conn,
            merchant_id=row.merchant_id,
            event=events.SHOPIFY_ORDER_CREATED,
            data=data,
            now=now,
            invoice_id=row.payment_id,
            postgresql=postgresql,
        )
        if flags:
            await outbox.emit(
                conn,
                merchant_id=row.merchant_id,
                event=events.SHOPIFY_ORDER_FLAGGED,
                data=data,
                now=now,
                invoice_id=row.payment_id,
                postgresql=postgresql,
            )
    ctx.wake.set()
    log.info("shopify_order_created", order_id=order_id, store=store.slug, flags=",".join(flags) or None)
    return row


def _event_data(store: ShopifyStore, order: ShopifyOrder) -> dict[str, Any]:
    return {
        "orderId": order.id,
        "store": store.slug,
        "invoiceId": order.payment_id,
        "shopifyOrderId": order.shopify_order_id,
        "shopifyOrderNumber": order.shopify_order_name,
        "totalUsd": float(order.total_usd),
        "amountSats": order.amount_sats,
        "flags": [f for f in order.flags.split("\n") if f],
    }
