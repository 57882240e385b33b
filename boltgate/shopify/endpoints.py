"""The Shopify channel's public routes (Lightning Enable's): catalog, checkout, claim, order status,
and the receiver of Shopify's webhooks. No API key: a checkout is paid for, a claim and an order
status need the order's claim token (whoever holds another order's id without its token learns
nothing: 404, as for an order that does not exist).
"""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from boltgate.context import Context
from boltgate.errors import PROBLEM_CONTENT_TYPE, NotFound, PayloadTooLarge
from boltgate.kit.clock import rfc3339
from boltgate.l402 import caveats, guard, mpp
from boltgate.l402 import service as l402
from boltgate.l402.guard import PUBLIC
from boltgate.payment.models import Payment
from boltgate.shopify import catalog, checkout, claim, orders, stores, webhooks
from boltgate.shopify.models import ShopifyOrder, ShopifyStore
from boltgate.shopify.schemas import CheckoutCreate, ClaimCreate
from boltgate.web import Ctx, json_body, json_response, problems, read_json

router = APIRouter(prefix="/api/shopify", tags=["shopify"])
Slug = Annotated[str, Query(max_length=64)]
MAX_WEBHOOK_BYTES = 1 << 20


async def _store(ctx: Context, slug: str, *, selling: bool = True) -> ShopifyStore:
    async with ctx.db.reading() as session:
        return await stores.public(session, slug, selling=selling)


@router.get(
    "/{slug}/catalog",
    responses=problems(404, 429, 503),
    dependencies=PUBLIC,
    summary="A store's products and shipping rules (cached; prices in USD)",
)
async def get_catalog(ctx: Ctx, slug: str) -> Response:
    hit = ctx.shopify.rendered.get(slug)
    if hit is not None and hit[0] > time.monotonic():
        return Response(hit[1], media_type="application/json")
    store = await _store(ctx, slug)
    ttl = ctx.settings.shopify_catalog_ttl_seconds
    data = await catalog.current(ctx.db, ctx.shopify, store, ttl, ctx.clock())
    body = orjson.dumps(catalog.catalog_out(store, data))
    if ttl > 0:
        ctx.shopify.rendered[store.slug] = (time.monotonic() + min(ttl, stores.RENDERED_SECONDS), body)
    return Response(body, media_type="application/json")


def _preimage_hash(header: str) -> str | None:
    """The payment hash a credential's preimage opens (unchecked: the guard checks it fully)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("l402", "lsat"):
        return l402.preimage_hash(value.rpartition(":")[2].strip())
    if scheme.lower() == "payment":
        try:
            return l402.preimage_hash(mpp.parse_credential(header).preimage)
        except mpp.CredentialError:
            return None
    return None


async def _paid_retry(ctx: Context, request: Request, store: ShopifyStore) -> Response | None:
    """An L402 client retrying the checkout with its proof: the paid order and its claim token."""
    header = request.headers.get("authorization")
    if not header or len(header) > guard.MAX_AUTHORIZATION:
        return None
    payment_hash = _preimage_hash(header)
    order = await checkout.by_payment_hash(ctx, store, payment_hash) if payment_hash else None
    if order is None:
        return None
    offer = checkout.offer_for(store, order.id, order.amount_sats)
    need = caveats.Requirement(
        now=int(ctx.clock().timestamp()),
        service=l402.SERVICE,
        merchant_id=store.merchant_id,
        resource=offer.resource,
    )
    verdict, _ = await guard.check(ctx, header, offer, need)
    if verdict is None or not verdict.ok:
        return None
    await claim.ensure_paid_quietly(ctx, order)
    payment, order = await _order_and_payment(ctx, order.id)
    token = ctx.shopify.claim_token(order.id, order.claim_token_hash)
    body = orders.order_out(order, payment) | {"claimToken": token}
    return json_response(body)


@router.post(
    "/{slug}/checkout",
    responses=problems(400, 402, 404, 409, 429, 503),
    dependencies=PUBLIC,
    openapi_extra=json_body(CheckoutCreate),
    summary="Check out 1-10 items: 402 with a Lightning invoice (L402 and Payment challenges) and a "
    "claimToken; retried with the paid credential: 200 and the paid order",
)
async def create_checkout(request: Request, ctx: Ctx, slug: str) -> Response:
    store = await _store(ctx, slug)
    paid = await _paid_retry(ctx, request, store)
    if paid is not None:
        return paid
    body = await read_json(request, CheckoutCreate, ctx.settings.max_body_bytes)
    country = body.shippingCountry or checkout.buyer_country(request.headers.get("x-buyer-location"))
    made = await checkout.create(ctx, ctx.shopify, store, body, country)
    detail = f"Pay {made.order.amount_sats} sat ({made.order.total_usd} USD) for order {made.order.id}"
    problem = {
        "error": "payment_required",
        "type": mpp.PROBLEM_BASE + "payment-required",
        "title": "Payment required",
        "status": 402,
        "detail": detail,
        "message": detail,
    }
    out = problem | checkout.checkout_out(
        ctx.settings.base_url, store, made, made.issued.challenge.expires_at
    )
    response = Response(orjson.dumps(out), status_code=402, media_type=PROBLEM_CONTENT_TYPE)
    for line in made.issued.www_authenticate():
        response.raw_headers.append((b"www-authenticate", line.encode("latin-1")))
    response.raw_headers.append((b"cache-control", b"no-store"))
    return response


@router.post(
    "/{slug}/claim",
    responses=problems(400, 404, 409, 410, 429, 502, 503),
    dependencies=PUBLIC,
    openapi_extra=json_body(ClaimCreate),
    summary="After payment: give email and shipping address; the paid order is created in Shopify "
    "(once, however often this is retried)",
)
async def claim_order(request: Request, ctx: Ctx, slug: str) -> Response:
    store = await _store(ctx, slug, selling=False)
    body = await read_json(request, ClaimCreate, ctx.settings.max_body_bytes)
    order, created = await claim.claim(ctx, ctx.shopify, store, body)
    flags = [f for f in order.flags.split("\n") if f]
    if created:
        message = "Order created in the store" + (
            f"; flagged for the merchant: {', '.join(flags)}" if flags else ""
        )
    else:
        message = "This order was already created"
    base = ctx.settings.base_url.rstrip("/")
    status_url = f"{base}/api/shopify/{store.slug}/orders/{order.id}?claimToken={body.claimToken}"
    return json_response(
        {
            "orderId": order.id,
            "status": order.state,
            "shopifyOrderNumber": order.shopify_order_name,
            "claimPageUrl": order.status_page_url or status_url,
            "statusUrl": status_url,
            "flags": flags,
            "alreadyClaimed": not created,
            "message": message,
        }
    )


async def _order_and_payment(ctx: Context, order_id: str) -> tuple[Payment | None, ShopifyOrder]:
    async with ctx.db.reading() as session:
        order = await session.get(ShopifyOrder, order_id)
        assert order is not None
        payment = await session.get(Payment, order.payment_id)
    return payment, order


@router.get(
    "/{slug}/orders/{order_id}",
    responses=problems(400, 404, 429),
    dependencies=PUBLIC,
    summary="An order's status and tracking (needs its claim token)",
)
async def get_order(
    ctx: Ctx, slug: str, order_id: str, claimToken: Annotated[str, Query(min_length=1, max_length=20)]
) -> Response:
    store = await _store(ctx, slug, selling=False)
    async with ctx.db.reading() as session:
        order = await session.get(ShopifyOrder, order_id[:64])
    if (
        order is None
        or order.store_id != store.id
        or not stores.hmac_equal(order.claim_token_hash, stores.claim_hash(claimToken))
    ):
        raise NotFound("no order with this id and claim token", code="order_not_found")
    await orders.refresh_tracking(ctx, ctx.shopify, store, order)
    payment, order = await _order_and_payment(ctx, order.id)
    out = orders.order_out(order, payment)
    if out["status"] == "pending_payment" and payment is not None:
        out |= {"invoice": payment.payment_request, "expiresAt": rfc3339(payment.expires_at)}
    return json_response(out)


@router.post(
    "/{slug}/webhooks",
    responses=problems(400, 401, 404, 413),
    summary="Shopify's webhooks for the store (orders, fulfilments, products), HMAC-verified",
    include_in_schema=True,
)
async def shopify_webhook(request: Request, ctx: Ctx, slug: str) -> Response:
    async with ctx.db.reading() as session:
        store = await stores.by_slug(session, slug)
    if store is None:
        raise NotFound(f"no store {slug[:64]!r}", code="store_not_found")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_WEBHOOK_BYTES} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = await webhooks.receive(ctx, ctx.shopify, store, body, headers)
    ctx.shopify.rendered.pop(store.slug, None)  # what it changed shows here at once (elsewhere in seconds)
    return json_response(answer)
