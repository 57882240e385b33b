"""The fake Shopify itself: every operation boltgate sends validates and answers in Shopify's shapes,
and the faults, the bucket, the token grant and the webhook signatures behave as documented."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from boltgate.shopify import graphql as ops
from tests.conftest import free_port
from tests.shopify.fake_shopify import FakeShopify, Shop

VERSION = "2026-07"
TOKEN = "shpat_fake_token"
_shop_numbers = itertools.count(1)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeShopify]:
    server = FakeShopify(free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def _clean(fake: FakeShopify) -> Iterator[None]:
    yield
    fake.reset()


@pytest.fixture
def shop(fake: FakeShopify) -> Shop:
    domain = f"store-{next(_shop_numbers)}.myshopify.com"
    return fake.add_shop(domain, name="Acme Goods", access_token=TOKEN, client_id="cid", client_secret="css")


async def gql(
    fake: FakeShopify,
    shop: Shop,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
    timeout: float = 5.0,
) -> httpx.Response:
    headers = {"X-Shopify-Access-Token": token} if token else {}
    async with httpx.AsyncClient(base_url=fake.shop_url(shop.domain), timeout=timeout) as http:
        return await http.post(
            f"/admin/api/{VERSION}/graphql.json",
            json={"query": query, "variables": variables or {}},
            headers=headers,
        )


def order_input(variant_gid: str, quantity: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "currency": "USD",
        "email": "buyer@example.com",
        "financialStatus": "PAID",
        "lineItems": [{"variantId": variant_gid, "quantity": quantity}],
        "transactions": [
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": "Lightning",
                "authorizationCode": "ab" * 32,
                "amountSet": {"shopMoney": {"amount": "37.98", "currencyCode": "USD"}},
            }
        ],
        "tags": ["lightning", "lnpay-inv1"],
        "sourceIdentifier": "inv1",
        "note": "Paid via Lightning",
        **fields,
    }


def assert_cost(body: dict[str, Any]) -> dict[str, Any]:
    cost: dict[str, Any] = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] >= cost["actualQueryCost"] >= 0
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}
    return cost


async def test_shop_info_and_request_record(fake: FakeShopify, shop: Shop) -> None:
    response = await gql(fake, shop, ops.SHOP_INFO)
    assert response.status_code == 200
    assert response.headers["x-shopify-api-version"] == VERSION
    body = response.json()
    assert body["data"] == {
        "shop": {"name": "Acme Goods", "currencyCode": "USD", "myshopifyDomain": shop.domain},
        "currentAppInstallation": {"accessScopes": [{"handle": "read_products"}, {"handle": "write_orders"}]},
    }
    cost = assert_cost(body)
    assert cost["throttleStatus"]["maximumAvailable"] == 2000.0
    assert cost["throttleStatus"]["restoreRate"] == 100.0
    seen = fake.requests[-1]
    assert (seen["shop"], seen["version"], seen["operationName"]) == (shop.domain, VERSION, "ShopInfo")
    assert seen["headers"]["x-shopify-access-token"] == TOKEN
    assert seen["outcome"] == "ok"


async def test_catalog_pages_through_active_products(fake: FakeShopify, shop: Shop) -> None:
    for n in range(60):
        shop.add_product(f"Shirt {n}", [{"title": "M", "price": "18.99", "inventory": n % 3, "sku": f"S{n}"}])
    shop.add_product("Old", status="ARCHIVED")
    shop.add_product("Soon", status="DRAFT")
    mug = shop.add_product(
        "Mug",
        [
            {"title": "Red", "price": "9.5", "inventory": 0, "policy": "CONTINUE"},
            {"title": "Blue", "price": "9.5"},
        ],
        image_url="https://cdn.example/mug.png",
        description="A mug",
    )
    seen: list[dict[str, Any]] = []
    cursor = None
    for expect_more in [True] * 6 + [False]:  # 61 active products, 10 a page
        body = (await gql(fake, shop, ops.CATALOG, {"cursor": cursor})).json()
        page = body["data"]["products"]
        assert page["pageInfo"]["hasNextPage"] is expect_more
        cursor = page["pageInfo"]["endCursor"]
        seen += page["nodes"]
        assert_cost(body)
    assert len(seen) == 61 and len({p["id"] for p in seen}) == 61
    assert {p["status"] for p in seen} == {"ACTIVE"}
    last = seen[-1]
    assert last["id"] == mug.id == f"gid://shopify/Product/{mug.legacy_resource_id}"
    assert last["legacyResourceId"] == str(mug.legacy_resource_id)
    assert (last["title"], last["description"], last["handle"]) == ("Mug", "A mug", "mug")
    assert last["featuredMedia"] == {"preview": {"image": {"url": "https://cdn.example/mug.png"}}}
    red, blue = last["variants"]["nodes"]
    assert red["price"] == "9.50" and red["inventoryPolicy"] == "CONTINUE"
    assert red["availableForSale"] is True and blue["availableForSale"] is False  # no stock, DENY
    assert seen[1]["variants"]["nodes"][0]["inventoryQuantity"] == 1
    assert seen[0]["featuredMedia"] is None
    assert all(int(p["legacyResourceId"]) > 10**12 for p in seen)


async def test_variants_by_ids_and_price_changes(fake: FakeShopify, shop: Shop) -> None:
    product = shop.add_product("Hat", [{"title": "One", "price": "20.00", "inventory": 2, "sku": "HAT"}])
    variant = product.variants[0]
    shop.set_price(variant.id, "22.5")
    shop.archive(product.id)
    missing = "gid://shopify/ProductVariant/1"
    body = (await gql(fake, shop, ops.VARIANTS, {"ids": [variant.id, missing]})).json()
    found, absent = body["data"]["nodes"]
    assert absent is None
    assert found["price"] == "22.50" and found["sku"] == "HAT" and found["inventoryQuantity"] == 2
    assert found["availableForSale"] is False  # archived
    assert found["product"] == {
        "id": product.id,
        "legacyResourceId": str(product.legacy_resource_id),
        "title": "Hat",
        "status": "ARCHIVED",
    }
    bad = (await gql(fake, shop, ops.VARIANTS, {"ids": ["45"]})).json()
    assert bad["errors"][0]["message"] == "Invalid global id '45'"


async def test_order_create_paid_decrements_and_is_found_by_tag(fake: FakeShopify, shop: Shop) -> None:
    variant = shop.add_product("Tee", [{"title": "L", "price": "18.99", "inventory": 5}]).variants[0]
    shipping = [{"title": "Post", "priceSet": {"shopMoney": {"amount": "4.00", "currencyCode": "USD"}}}]
    variables = {
        "order": order_input(variant.id, 2, shippingLines=shipping, shippingAddress={"countryCode": "US"}),
        "options": {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY", "sendReceipt": True},
    }
    body = (await gql(fake, shop, ops.ORDER_CREATE, variables)).json()
    assert body["extensions"]["cost"]["requestedQueryCost"] >= 10
    payload = body["data"]["orderCreate"]
    assert payload["userErrors"] == []
    order = payload["order"]
    assert order["name"] == "#1001" and order["displayFinancialStatus"] == "PAID"
    assert (
        order["id"].startswith("gid://shopify/Order/")
        and order["legacyResourceId"] == order["id"].rsplit("/")[-1]
    )
    assert order["statusPageUrl"].startswith(f"https://{shop.domain}/")
    assert order["totalPriceSet"] == {"shopMoney": {"amount": "41.98", "currencyCode": "USD"}}
    assert variant.inventory_quantity == 3
    stored = shop.order(order["id"])
    assert stored.tags == ["lightning", "lnpay-inv1"] and stored.source_identifier == "inv1"
    assert stored.email == "buyer@example.com" and stored.note == "Paid via Lightning"
    assert stored.shipping_address == {"countryCode": "US"}
    assert stored.transactions[0]["authorizationCode"] == "ab" * 32
    assert stored.transactions[0]["amountSet"]["shopMoney"]["amount"] == Decimal("37.98")
    assert stored.options["sendReceipt"] is True and stored.options["sendFulfillmentReceipt"] is False

    second = (
        await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id, tags=["other"])})
    ).json()
    assert second["data"]["orderCreate"]["order"]["name"] == "#1002"
    for query, expected in (
        ("tag:lnpay-inv1", "#1001"),
        ("tag:other", "#1002"),
        ("source_identifier:inv1", "#1002"),
    ):
        found = (await gql(fake, shop, ops.FIND_ORDER, {"query": query})).json()["data"]["orders"]["nodes"]
        assert [o["name"] for o in found] == [expected]  # newest first, first: 1
    none = (await gql(fake, shop, ops.FIND_ORDER, {"query": "tag:nope"})).json()
    assert none["data"]["orders"]["nodes"] == []


async def test_order_create_short_stock_refused(fake: FakeShopify, shop: Shop) -> None:
    variant = shop.add_product("Tee", [{"title": "L", "price": "18.99", "inventory": 3}]).variants[0]
    options = {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"}
    body = (
        await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id, 4), "options": options})
    ).json()
    payload = body["data"]["orderCreate"]
    assert payload["order"] is None
    assert payload["userErrors"] == [
        {
            "field": ["order", "lineItems", "0"],
            "message": "Unable to reserve inventory for Tee - L",
            "code": "INVENTORY_CLAIM_FAILED",
        }
    ]
    assert variant.inventory_quantity == 3 and shop.orders == []
    shop.set_policy(variant.id, "CONTINUE")  # overselling allowed: the claim goes below zero
    body = (
        await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id, 4), "options": options})
    ).json()
    assert body["data"]["orderCreate"]["userErrors"] == []
    assert variant.inventory_quantity == -1


async def test_order_create_bypass_by_default_and_user_errors(fake: FakeShopify, shop: Shop) -> None:
    variant = shop.add_product("Tee", [{"title": "L", "price": "18.99", "inventory": 1}]).variants[0]
    body = (await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id, 3)})).json()
    assert body["data"]["orderCreate"]["order"]["totalPriceSet"]["shopMoney"]["amount"] == "56.97"
    assert variant.inventory_quantity == 1  # BYPASS
    order = order_input("gid://shopify/ProductVariant/999", email="not-an-email")
    payload = (await gql(fake, shop, ops.ORDER_CREATE, {"order": order})).json()["data"]["orderCreate"]
    assert payload["order"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["order", "email"], "INVALID"),
        (["order", "lineItems", "0", "variantId"], "INVALID"),
    ]
    assert len(shop.orders) == 1


async def test_tracking_after_fulfilment_and_cancel(fake: FakeShopify, shop: Shop) -> None:
    variant = shop.add_product("Tee", [{"price": "5"}]).variants[0]
    gid = (await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)})).json()["data"][
        "orderCreate"
    ]["order"]["id"]
    before = (await gql(fake, shop, ops.ORDER_TRACKING, {"id": gid})).json()["data"]["order"]
    assert before == {
        "id": gid,
        "name": "#1001",
        "displayFulfillmentStatus": "UNFULFILLED",
        "cancelledAt": None,
        "fulfillments": [],
    }
    fake.fulfil(shop.domain, gid, "UPS", "1Z999", "https://ups.example/1Z999")
    fake.cancel(shop.domain, gid)
    after = (await gql(fake, shop, ops.ORDER_TRACKING, {"id": gid})).json()["data"]["order"]
    assert after["displayFulfillmentStatus"] == "FULFILLED" and after["cancelledAt"].endswith("Z")
    (fulfilment,) = after["fulfillments"]
    assert fulfilment["status"] == "SUCCESS" and fulfilment["deliveredAt"] is None
    assert fulfilment["trackingInfo"] == [
        {"company": "UPS", "number": "1Z999", "url": "https://ups.example/1Z999"}
    ]
    unknown = (await gql(fake, shop, ops.ORDER_TRACKING, {"id": "gid://shopify/Order/1"})).json()
    assert unknown["data"] == {"order": None}


async def test_schema_mistakes_get_shopify_errors(fake: FakeShopify, shop: Shop) -> None:
    typo = (await gql(fake, shop, ops.SHOP_INFO.replace("currencyCode", "currency"))).json()
    assert "data" not in typo
    (error,) = typo["errors"]
    assert error["message"].startswith("Cannot query field 'currency' on type 'Shop'")
    assert error["locations"] == [{"line": 3, "column": 15}]
    assert error["extensions"]["code"] == "undefinedField"
    variant = shop.add_product("Tee").variants[0]
    wrong_input = {"order": order_input(variant.id), "options": {"inventoryBehavior": "BYPASS"}}
    bad = (await gql(fake, shop, ops.ORDER_CREATE, wrong_input)).json()
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert "inventoryBehavior" in bad["errors"][0]["message"] and shop.orders == []
    enum = (
        await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id, financialStatus="SETTLED")})
    ).json()
    assert enum["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    syntax = (await gql(fake, shop, "query { shop { name }")).json()
    assert syntax["errors"][0]["extensions"]["code"] == "parseError"


async def test_authentication(fake: FakeShopify, shop: Shop) -> None:
    invalid = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    for token in ("shpat_wrong", None):
        response = await gql(fake, shop, ops.SHOP_INFO, token=token)
        assert response.status_code == 401 and response.json() == invalid
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        unknown = await http.post(
            f"/shops/nowhere.myshopify.com/admin/api/{VERSION}/graphql.json",
            json={"query": ops.SHOP_INFO},
            headers={"X-Shopify-Access-Token": TOKEN},
        )
        assert unknown.status_code == 404
        url = f"/shops/{shop.domain}/admin/oauth/access_token"
        form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "css"}
        granted = await http.post(url, data=form)
        assert granted.status_code == 200
        grant = granted.json()
        assert grant["access_token"].startswith("shpat_") and grant["expires_in"] == 86399
        assert grant["scope"] == "read_products,write_orders"
        refused = await http.post(url, data={**form, "client_secret": "wrong"})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
        assert "error_description" in refused.json()
    assert (await gql(fake, shop, ops.SHOP_INFO, token=grant["access_token"])).status_code == 200


async def test_missing_scope_is_access_denied(fake: FakeShopify) -> None:
    shop = fake.add_shop("readonly.myshopify.com", name="R", access_token=TOKEN, scopes=("read_products",))
    variant = shop.add_product("Tee").variants[0]
    body = (await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)})).json()
    assert body["data"] == {"orderCreate": None}
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert body["errors"][0]["path"] == ["orderCreate"]
    assert shop.orders == []


async def test_throttling(fake: FakeShopify, shop: Shop) -> None:
    variant = shop.add_product("Tee").variants[0]
    fake.throttle_next(1)
    throttled = await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)})
    assert throttled.status_code == 200
    body = throttled.json()
    assert "data" not in body and shop.orders == []  # not executed
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
        }
    ]
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert (await gql(fake, shop, ops.SHOP_INFO)).json()["data"]["shop"]["name"] == "Acme Goods"

    # the bucket itself: 7 points, 1 restored a second; SHOP_INFO costs 3, CATALOG more than a full bucket
    shop.maximum_available = shop.currently_available = 7.0
    shop.restore_rate = 1.0
    catalog = (await gql(fake, shop, ops.CATALOG)).json()
    assert catalog["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert catalog["extensions"]["cost"]["requestedQueryCost"] > 7
    answers = [(await gql(fake, shop, ops.SHOP_INFO)).json() for _ in range(3)]
    assert [a["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] for a in answers[:2]] == [4, 1]
    assert "data" not in answers[2] and answers[2]["errors"][0]["message"] == "Throttled"
    shop.currently_available = 7.0
    assert "data" in (await gql(fake, shop, ops.SHOP_INFO)).json()


async def test_status_faults(fake: FakeShopify, shop: Shop) -> None:
    fake.status_next(1, 429)
    fake.status_next(1, 503, body="<html>Service Unavailable</html>")
    limited = await gql(fake, shop, ops.SHOP_INFO)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert "Exceeded 2 calls per second" in limited.json()["errors"]
    down = await gql(fake, shop, ops.SHOP_INFO)
    assert down.status_code == 503 and down.text == "<html>Service Unavailable</html>"
    assert (await gql(fake, shop, ops.SHOP_INFO)).status_code == 200
    assert [r["outcome"] for r in fake.requests] == ["status 429", "status 503", "ok"]


async def test_late_answers(fake: FakeShopify, shop: Shop) -> None:
    variant = shop.add_product("Tee", [{"price": "5", "inventory": 9}]).variants[0]
    fake.delay_after_execute_next(1, 0.6)
    with pytest.raises(httpx.ReadTimeout):  # Shopify did it, the client never heard
        await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)}, timeout=0.2)
    assert [o.name for o in shop.orders] == ["#1001"]

    fake.delay_next(1, 0.4)
    with pytest.raises(httpx.ReadTimeout):  # the client gave up first: nothing done
        await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)}, timeout=0.1)
    deadline = time.monotonic() + 2
    while fake.requests[-1]["outcome"] is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert fake.requests[-1]["outcome"] == "abandoned" and len(shop.orders) == 1

    fake.delay_next(1, 0.1)  # a patient client gets its answer
    late = await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)}, timeout=2)
    assert late.json()["data"]["orderCreate"]["order"]["name"] == "#1002"


async def test_webhooks_are_signed_and_rest_shaped(fake: FakeShopify, shop: Shop, receiver: Any) -> None:
    variant = shop.add_product(
        "Tee", [{"title": "L", "price": "18.99", "inventory": 4, "sku": "T-L"}]
    ).variants[0]
    gid = (await gql(fake, shop, ops.ORDER_CREATE, {"order": order_input(variant.id)})).json()["data"][
        "orderCreate"
    ]["order"]["id"]
    fake.fulfil(shop, gid, "DHL", "JD0001", "https://dhl.example/JD0001")
    url = receiver.behave(f"/shopify/{shop.domain}/orders")
    answer = await fake.send_webhook(
        url, shop.domain, "orders/fulfilled", fake.order_payload(shop.domain, gid), event_id="evt-1"
    )
    assert answer.status_code == 200
    (got,) = await receiver.wait_for(f"/shopify/{shop.domain}/orders", 1)
    digest = base64.b64encode(hmac.new(b"css", got.body, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(got.headers["x-shopify-hmac-sha256"], digest)
    assert got.headers["x-shopify-topic"] == "orders/fulfilled"
    assert got.headers["x-shopify-shop-domain"] == shop.domain
    assert got.headers["x-shopify-event-id"] == "evt-1" and len(got.headers["x-shopify-webhook-id"]) == 36
    assert got.headers["x-shopify-api-version"] and got.headers["x-shopify-triggered-at"].endswith("Z")
    order = orjson.loads(got.body)
    assert order["admin_graphql_api_id"] == gid and order["id"] == int(gid.rsplit("/", 1)[1])
    assert (order["name"], order["financial_status"], order["fulfillment_status"]) == (
        "#1001",
        "paid",
        "fulfilled",
    )
    assert order["tags"] == "lightning, lnpay-inv1" and order["cancelled_at"] is None
    (fulfilment,) = order["fulfillments"]
    assert fulfilment["tracking_company"] == "DHL" and fulfilment["status"] == "success"
    assert fulfilment["tracking_numbers"] == ["JD0001"] and fulfilment["tracking_urls"] == [
        "https://dhl.example/JD0001"
    ]
    assert (
        fulfilment["tracking_number"] == "JD0001"
        and fulfilment["tracking_url"] == "https://dhl.example/JD0001"
    )
    assert fulfilment["created_at"].endswith("Z")

    product = fake.product_payload(shop.domain, variant.product.id)
    assert product["status"] == "active" and product["admin_graphql_api_id"] == variant.product.id
    expected = {"id": variant.legacy_resource_id, "price": "18.99", "inventory_quantity": 4, "sku": "T-L"}
    assert expected.items() <= product["variants"][0].items()
    forged = await fake.send_webhook(url, shop, "products/update", product, secret="not-the-secret")
    assert forged.status_code == 200
    got = (await receiver.wait_for(f"/shopify/{shop.domain}/orders", 2))[1]
    assert got.headers["x-shopify-hmac-sha256"] == FakeShopify.sign(got.body, "not-the-secret")
    assert got.headers["x-shopify-hmac-sha256"] != FakeShopify.sign(got.body, "css")


async def test_nested_connections_multiply_and_an_oversized_query_is_refused(
    fake: FakeShopify, shop: Shop
) -> None:
    ours = (await gql(fake, shop, ops.CATALOG, {"cursor": None})).json()
    assert 500 <= assert_cost(ours)["requestedQueryCost"] <= 1000  # 10 products x 50 variants fits
    bigger = ops.CATALOG.replace("products(first: 10,", "products(first: 50,").replace(
        "variants(first: 50)", "variants(first: 100)"
    )
    refused = (await gql(fake, shop, bigger, {"cursor": None})).json()
    assert "data" not in refused or refused.get("data") is None
    assert refused["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert refused["errors"][0]["extensions"]["cost"] > 5000
