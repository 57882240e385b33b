"""The Shopify channel end to end over real HTTP: connect a store, read its catalog, check out,
pay with the dev node, claim, and the paid order appears in the (fake) store exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from boltgate.shopify.models import ShopifyOrder
from tests.helpers import auth
from tests.shopify.conftest import variants
from tests.webhook.test_delivery import add_endpoint

L402_LINE = re.compile(r'^L402 macaroon="([A-Za-z0-9+/=]+)", invoice="(lnbcrt[0-9a-z]+)"$')
ADDRESS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "address1": "1 Analytical Way",
    "city": "Austin",
    "provinceCode": "TX",
    "zip": "78701",
    "countryCode": "US",
    "phone": "+1 512 555 0100",
}


async def checkout(sclient, slug, items, **extra):
    response = await sclient.post(f"/api/shopify/{slug}/checkout", json={"items": items}, **extra)
    assert response.status_code == 402, response.text
    return response


async def pay(sclient, invoice):
    paid = await sclient.post("/api/dev/pay", json={"invoice": invoice})
    assert paid.status_code == 200, paid.text
    return paid.json()["preimage"]


async def claim(sclient, slug, token, email="ada@example.com", address=ADDRESS):
    return await sclient.post(
        f"/api/shopify/{slug}/claim", json={"claimToken": token, "email": email, "shippingAddress": address}
    )


async def test_catalog_lists_active_products_with_availability(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    shop.add_product("Hidden", [{"title": "x", "price": "1.00", "inventory": 9}], status="DRAFT")
    catalog = await sclient.get(f"/api/shopify/{store['slug']}/catalog")
    assert catalog.status_code == 200, catalog.text
    body = catalog.json()
    assert body["storeName"] == shop.name and body["slug"] == store["slug"]
    assert body["shipping"]["domesticUsd"] == 5.99 and body["shipping"]["freeShippingThresholdUsd"] == 50.0
    assert body["shipping"]["domesticOnly"] is False
    titles = {p["title"]: p for p in body["products"]}
    assert set(titles) == {"Coffee Beans", "Mug"}
    beans = titles["Coffee Beans"]
    assert beans["description"] == "Single origin" and beans["imageUrl"] == "https://cdn.example/beans.png"
    by_title = {v["title"]: v for v in beans["variants"]}
    v12 = variants(shop)["Coffee Beans/12oz"]
    assert by_title["12oz"] == {
        "variantId": v12.legacy_resource_id,
        "title": "12oz",
        "sku": "CB-12",
        "priceUsd": 18.99,
        "available": True,
    }
    assert by_title["2lb"]["available"] is False  # no stock, DENY
    assert isinstance(beans["productId"], int)


async def test_catalog_is_cached_and_refreshed_by_a_product_webhook(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    await sclient.get(f"/api/shopify/{slug}/catalog")
    calls = len(shopify.requests)
    mug = variants(shop)["Mug/Default Title"]
    shop.set_price(mug.id, "14.50")
    again = await sclient.get(f"/api/shopify/{slug}/catalog")
    assert len(shopify.requests) == calls  # served from the cache: Shopify not asked
    assert {
        v["priceUsd"] for p in again.json()["products"] for v in p["variants"] if p["title"] == "Mug"
    } == {12.0}
    delivered = await shopify.send_webhook(
        f"{sclient.base_url}/api/shopify/{slug}/webhooks",
        shop,
        "products/update",
        shopify.product_payload(shop, mug.product.id),
        secret="whsec_store_secret",
    )
    assert delivered.status_code == 200, delivered.text
    fresh = await sclient.get(f"/api/shopify/{slug}/catalog")
    assert {
        v["priceUsd"] for p in fresh.json()["products"] for v in p["variants"] if p["title"] == "Mug"
    } == {14.5}


async def test_checkout_pay_claim_creates_one_paid_order(sclient, merchant, connect, shopify, receiver):
    _, key = merchant
    await add_endpoint(sclient, key, receiver.behave("/shopify-created"), events=["shopify.order.created"])
    shop, store = await connect(key)
    slug = store["slug"]
    v12 = variants(shop)["Coffee Beans/12oz"]
    mug = variants(shop)["Mug/Default Title"]
    first = await checkout(
        sclient,
        slug,
        [
            {"variantId": v12.legacy_resource_id, "quantity": 2},
            {"variantId": str(mug.legacy_resource_id), "quantity": 1},
        ],
    )
    lines = first.headers.get_list("www-authenticate")
    assert L402_LINE.match(lines[0]) and lines[1].startswith("Payment ")
    body = first.json()
    assert body["orderId"].startswith("shpfy_") and 1 <= len(body["claimToken"]) <= 20
    assert (body["subtotalUsd"], body["shippingUsd"], body["totalUsd"]) == (49.98, 5.99, 55.97)
    assert body["shippingGroup"] == "domestic" and body["amountSats"] > 0
    assert [i["quantity"] for i in body["items"]] == [2, 1]
    assert body["invoice"] == L402_LINE.match(lines[0]).group(2)
    assert not shop.orders  # nothing in Shopify before payment and claim

    status = await sclient.get(
        f"/api/shopify/{slug}/orders/{body['orderId']}", params={"claimToken": body["claimToken"]}
    )
    assert status.json()["status"] == "pending_payment" and status.json()["invoice"] == body["invoice"]
    unpaid = await claim(sclient, slug, body["claimToken"])
    assert unpaid.status_code == 409 and unpaid.json()["error"] == "payment_pending"
    assert not shop.orders

    preimage = await pay(sclient, body["invoice"])
    claimed = await claim(sclient, slug, body["claimToken"])
    assert claimed.status_code == 200, claimed.text
    out = claimed.json()
    assert (
        out["status"] == "ordered" and out["shopifyOrderNumber"] == "#1001" and out["alreadyClaimed"] is False
    )
    assert out["claimPageUrl"].startswith("https://") and out["flags"] == []
    [order] = shop.orders
    data = order.input
    assert (
        data["financialStatus"] == "PAID" and data["email"] == "ada@example.com" and data["currency"] == "USD"
    )
    assert [(li["variantId"], li["quantity"]) for li in data["lineItems"]] == [(v12.id, 2), (mug.id, 1)]
    [sale] = data["transactions"]
    assert (sale["kind"], sale["status"]) == ("SALE", "SUCCESS")
    assert sale["amountSet"]["shopMoney"] == {"amount": Decimal("55.97"), "currencyCode": "USD"}
    assert sale["authorizationCode"] == hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    assert f"boltgate-{body['orderId']}" in data["tags"] and data["sourceIdentifier"] == body["orderId"]
    assert (
        data["shippingAddress"]["countryCode"] == "US" and data["shippingAddress"]["lastName"] == "Lovelace"
    )
    assert data["shippingLines"][0]["priceSet"]["shopMoney"]["amount"] == Decimal("5.99")
    assert order.options["inventoryBehaviour"] == "DECREMENT_OBEYING_POLICY"
    assert (v12.inventory_quantity, mug.inventory_quantity) == (3, 2)  # decremented

    again = await claim(sclient, slug, body["claimToken"], email="other@example.com")
    assert again.status_code == 200 and again.json()["alreadyClaimed"] is True
    assert again.json()["shopifyOrderNumber"] == "#1001" and len(shop.orders) == 1

    status = await sclient.get(
        f"/api/shopify/{slug}/orders/{body['orderId']}", params={"claimToken": body["claimToken"]}
    )
    got = status.json()
    assert got["status"] == "ordered" and got["paidSats"] == body["amountSats"] and got["totalUsd"] == 55.97
    assert got["paidAt"] and got["createdAt"] and got["shippedAt"] is None

    [event] = await receiver.wait_for("/shopify-created", 1)
    sent = event.json
    assert sent["event"] == "shopify.order.created"
    assert sent["data"]["orderId"] == body["orderId"] and sent["data"]["shopifyOrderNumber"] == "#1001"
    assert sent["data"]["amountSats"] == body["amountSats"] and sent["data"]["flags"] == []


async def test_concurrent_claims_create_one_order(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await pay(sclient, body["invoice"])
    answers = await asyncio.gather(*(claim(sclient, slug, body["claimToken"]) for _ in range(6)))
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {200, 409}, [a.text for a in answers]
    assert all(a.json()["error"] == "claim_in_progress" for a in answers if a.status_code == 409)
    assert len(shop.orders) == 1
    final = await claim(sclient, slug, body["claimToken"])
    assert final.status_code == 200 and final.json()["shopifyOrderNumber"] == shop.orders[0].name


async def test_shopify_times_out_after_creating_then_the_retry_finds_it(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await pay(sclient, body["invoice"])
    shopify.reset()
    # the variants read answers at once; orderCreate is executed, then answered after the timeout
    shopify.delay_after_execute_next(0, 0)
    original = shopify._graphql

    async def slow_create(receive, send, domain, version, headers, raw):
        if b"orderCreate" in raw:
            shopify.delay_after_execute_next(1, 2.0)
        await original(receive, send, domain, version, headers, raw)

    shopify._graphql = slow_create
    try:
        first = await claim(sclient, slug, body["claimToken"])
    finally:
        shopify._graphql = original
    assert first.status_code == 503 and first.json()["error"] == "shopify_unavailable", first.text
    assert first.headers["retry-after"]
    assert len(shop.orders) == 1  # Shopify did create it
    second = await claim(sclient, slug, body["claimToken"])
    assert second.status_code == 200, second.text
    assert second.json()["shopifyOrderNumber"] == shop.orders[0].name
    assert len(shop.orders) == 1  # found by its tag, not created again
    creates = [r for r in shopify.requests if "orderCreate" in (r["query"] or "")]
    assert len(creates) == 1


async def test_throttling_and_429_are_retried(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    shopify.throttle_next(2)
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await pay(sclient, body["invoice"])
    shopify.status_next(1, 429, headers={"Retry-After": "0.2"})
    shopify.throttle_next(1)
    claimed = await claim(sclient, slug, body["claimToken"])
    assert claimed.status_code == 200, claimed.text
    assert len(shop.orders) == 1


async def test_price_change_is_flagged_and_the_merchant_told(sclient, merchant, connect, shopify, receiver):
    _, key = merchant
    await add_endpoint(sclient, key, receiver.behave("/flagged"), events=["shopify.order.flagged"])
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 2}])).json()
    await pay(sclient, body["invoice"])
    shop.set_price(mug.id, "15.00")
    claimed = await claim(sclient, slug, body["claimToken"])
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["flags"] == ["price_changed"]
    [order] = shop.orders
    assert order.input["lineItems"][0]["priceSet"]["shopMoney"]["amount"] == Decimal("12.00")  # what was paid
    assert "boltgate-price-changed" in order.input["tags"] and "price_changed" in order.input["note"]
    [event] = await receiver.wait_for("/flagged", 1)
    assert event.json["event"] == "shopify.order.flagged"
    assert event.json["data"]["flags"] == ["price_changed"]


async def test_out_of_stock_at_claim_is_created_flagged_without_decrement(
    sclient, merchant, connect, shopify
):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    v12 = variants(shop)["Coffee Beans/12oz"]
    body = (await checkout(sclient, slug, [{"variantId": v12.legacy_resource_id, "quantity": 4}])).json()
    await pay(sclient, body["invoice"])
    shop.set_inventory(v12.id, 1)
    claimed = await claim(sclient, slug, body["claimToken"])
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["flags"] == ["out_of_stock"]
    [order] = shop.orders
    assert order.options["inventoryBehaviour"] == "BYPASS" and v12.inventory_quantity == 1


async def test_sold_out_between_look_and_create_is_still_created(sclient, merchant, connect, shopify):
    """Shopify refuses the decrement (another sale won the race): the paid order is created, flagged."""
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    v12 = variants(shop)["Coffee Beans/12oz"]
    body = (await checkout(sclient, slug, [{"variantId": v12.legacy_resource_id, "quantity": 2}])).json()
    await pay(sclient, body["invoice"])
    original = shopify._graphql

    async def race(receive, send, domain, version, headers, raw):
        if b"orderCreate" in raw and v12.inventory_quantity > 1:
            v12.inventory_quantity = 1
        await original(receive, send, domain, version, headers, raw)

    shopify._graphql = race
    try:
        claimed = await claim(sclient, slug, body["claimToken"])
    finally:
        shopify._graphql = original
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["flags"] == ["out_of_stock"] and len(shop.orders) == 1


async def test_fulfilment_webhook_gives_tracking_and_duplicates_change_nothing(
    sclient, merchant, connect, shopify
):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await pay(sclient, body["invoice"])
    assert (await claim(sclient, slug, body["claimToken"])).status_code == 200
    [order] = shop.orders
    params = {"claimToken": body["claimToken"]}
    looked = (await sclient.get(f"/api/shopify/{slug}/orders/{body['orderId']}", params=params)).json()
    assert looked["status"] == "ordered"  # asked Shopify: no fulfilment yet (not asked again for a minute)
    shopify.fulfil(shop, order.id, "UPS", "1Z999", "https://ups.example/1Z999")
    url = f"{sclient.base_url}/api/shopify/{slug}/webhooks"
    forged = await shopify.send_webhook(
        url, shop, "orders/fulfilled", shopify.order_payload(shop, order.id), secret="wrong-secret"
    )
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_signature"
    before = (await sclient.get(f"/api/shopify/{slug}/orders/{body['orderId']}", params=params)).json()
    assert before["status"] == "ordered" and before["trackingNumber"] is None  # the forgery changed nothing
    sent = await shopify.send_webhook(
        url,
        shop,
        "orders/fulfilled",
        shopify.order_payload(shop, order.id),
        secret="whsec_store_secret",
        webhook_id="wh-1",
    )
    assert sent.status_code == 200 and sent.json()["duplicate"] is False and sent.json()["handled"] is True
    got = (await sclient.get(f"/api/shopify/{slug}/orders/{body['orderId']}", params=params)).json()
    assert got["status"] == "shipped" and got["trackingNumber"] == "1Z999" and got["trackingCarrier"] == "UPS"
    assert got["trackingUrl"] == "https://ups.example/1Z999" and got["shippedAt"]
    shopify.cancel(shop, order.id)
    repeat = await shopify.send_webhook(
        url,
        shop,
        "orders/updated",
        shopify.order_payload(shop, order.id),
        secret="whsec_store_secret",
        webhook_id="wh-1",
    )
    assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
    assert (await sclient.get(f"/api/shopify/{slug}/orders/{body['orderId']}", params=params)).json()[
        "status"
    ] == "shipped"


async def test_paid_retry_of_the_checkout_returns_the_order_and_its_token(
    sclient, merchant, connect, shopify
):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    items = [{"variantId": mug.legacy_resource_id, "quantity": 1}]
    first = await checkout(sclient, slug, items)
    macaroon, invoice = L402_LINE.match(first.headers.get_list("www-authenticate")[0]).groups()
    preimage = await pay(sclient, invoice)
    retried = await sclient.post(
        f"/api/shopify/{slug}/checkout",
        json={"items": items},
        headers={"Authorization": f"L402 {macaroon}:{preimage}"},
    )
    assert retried.status_code == 200, retried.text
    out = retried.json()
    assert out["orderId"] == first.json()["orderId"] and out["claimToken"] == first.json()["claimToken"]
    assert out["status"] == "paid"
    wrong = await sclient.post(
        f"/api/shopify/{slug}/checkout",
        json={"items": items},
        headers={"Authorization": f"L402 {macaroon}:{'00' * 32}"},
    )
    assert wrong.status_code == 402 and wrong.json()["orderId"] != out["orderId"]


async def test_stats(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    paid = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 2}])
    await pay(sclient, paid["invoice"])
    assert (await claim(sclient, slug, paid["claimToken"])).status_code == 200
    stats = await sclient.get("/api/stats/shopify", headers=auth(key))
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert (body["checkouts"], body["paidOrders"], body["createdOrders"]) == (2, 1, 1)
    assert body["revenueUsd"] == 17.99 and body["revenueSats"] == paid["amountSats"]
    assert body["stores"][0]["slug"] == slug and body["stores"][0]["checkouts"] == 2
    assert Decimal("17.99") == Decimal(str(paid["totalUsd"]))


@pytest.mark.parametrize(("country", "shipping"), [("US", 5.99), ("DE", 15.0)])
async def test_shipping_by_buyer_location(sclient, merchant, connect, shopify, country, shipping):
    _, key = merchant
    shop, store = await connect(key)
    mug = variants(shop)["Mug/Default Title"]
    response = await checkout(
        sclient,
        store["slug"],
        [{"variantId": mug.legacy_resource_id, "quantity": 1}],
        headers={"X-Buyer-Location": f"{country}-XX-12345"},
    )
    assert response.json()["shippingUsd"] == shipping


async def test_tracking_is_read_from_shopify_when_looked_at(sclient, merchant, connect, shopify, db):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await pay(sclient, body["invoice"])
    assert (await claim(sclient, slug, body["claimToken"])).status_code == 200
    shopify.fulfil(shop, shop.orders[0].id, "USPS", "9400", "https://usps.example/9400")
    params = {"claimToken": body["claimToken"]}
    calls = len(shopify.requests)
    fresh = await sclient.get(f"/api/shopify/{slug}/orders/{body['orderId']}", params=params)
    assert fresh.json()["status"] == "ordered" and len(shopify.requests) == calls  # just created: not asked
    async with db.writing() as session:  # a minute later
        await session.execute(
            update(ShopifyOrder)
            .where(ShopifyOrder.id == body["orderId"])
            .values(tracking_checked_at=datetime.now(UTC) - timedelta(minutes=2))
        )
    got = await sclient.get(
        f"/api/shopify/{slug}/orders/{body['orderId']}", params={"claimToken": body["claimToken"]}
    )
    out = got.json()
    assert (out["status"], out["trackingCarrier"], out["trackingNumber"]) == ("shipped", "USPS", "9400")
    shopify.status_next(5, 503)  # Shopify down: the status still answers from what is known
    again = await sclient.get(
        f"/api/shopify/{slug}/orders/{body['orderId']}", params={"claimToken": body["claimToken"]}
    )
    assert again.status_code == 200 and again.json()["status"] == "shipped"


async def test_catalog_reads_every_page(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key, products=False)
    for n in range(23):
        shop.add_product(f"Print {n}", [{"title": "A4", "price": f"{n + 1}.00", "inventory": 1}])
    body = (await sclient.get(f"/api/shopify/{store['slug']}/catalog")).json()
    assert len(body["products"]) == 23 and {p["title"] for p in body["products"]} == {
        f"Print {n}" for n in range(23)
    }
    catalog_calls = [r for r in shopify.requests if "query Catalog" in (r["query"] or "")]
    assert len(catalog_calls) == 3 and all(r["version"] == "2026-01" for r in catalog_calls)


async def test_concurrent_catalog_requests_read_shopify_once(sclient, merchant, connect, shopify):
    _, key = merchant
    _, store = await connect(key)
    shopify.reset()
    answers = await asyncio.gather(*(sclient.get(f"/api/shopify/{store['slug']}/catalog") for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert len([r for r in shopify.requests if "query Catalog" in (r["query"] or "")]) == 1


async def test_catalog_served_stale_when_shopify_is_down(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    first = await sclient.get(f"/api/shopify/{slug}/catalog")
    mug = variants(shop)["Mug/Default Title"]
    await shopify.send_webhook(
        f"{sclient.base_url}/api/shopify/{slug}/webhooks",
        shop,
        "products/update",
        shopify.product_payload(shop, mug.product.id),
        secret="whsec_store_secret",
    )
    shopify.status_next(10, 503)
    stale = await sclient.get(f"/api/shopify/{slug}/catalog")
    assert stale.status_code == 200 and stale.json() == first.json()
    shopify.reset()
    _, cold = await connect(key)
    shopify.status_next(10, 503)
    down = await sclient.get(f"/api/shopify/{cold['slug']}/catalog")
    assert down.status_code == 503 and down.json()["error"] == "shopify_unavailable"


async def test_a_store_switched_off_still_lets_paid_buyers_claim(sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"]
    body = (await checkout(sclient, slug, [{"variantId": mug.legacy_resource_id, "quantity": 1}])).json()
    await pay(sclient, body["invoice"])
    tokens = set(shop.tokens)
    shop.tokens.clear()  # uninstalling the app revokes its tokens
    uninstalled = await shopify.send_webhook(
        f"{sclient.base_url}/api/shopify/{slug}/webhooks",
        shop,
        "app/uninstalled",
        {"id": 1},
        secret="whsec_store_secret",
    )
    assert uninstalled.status_code == 200 and uninstalled.json()["handled"] is True
    got = await sclient.get(f"/api/shopify/stores/{slug}", headers=auth(key))
    assert got.json()["active"] is False
    closed = await sclient.get(f"/api/shopify/{slug}/catalog")
    assert closed.status_code == 404 and closed.json()["error"] == "store_not_found"
    shut = await sclient.post(
        f"/api/shopify/{slug}/checkout", json={"items": [{"variantId": 1, "quantity": 1}]}
    )
    assert shut.status_code == 404
    refused = await claim(sclient, slug, body["claimToken"])  # the store's token is dead
    assert refused.status_code == 502 and refused.json()["error"] == "shopify_unauthorized"
    shop.tokens.update(tokens)  # the merchant installs the app again
    claimed = await claim(sclient, slug, body["claimToken"])  # the paid buyer still gets the order
    assert claimed.status_code == 200, claimed.text
    status = await sclient.get(
        f"/api/shopify/{slug}/orders/{body['orderId']}", params={"claimToken": body["claimToken"]}
    )
    assert status.json()["status"] == "ordered"
