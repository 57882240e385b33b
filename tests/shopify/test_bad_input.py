"""The Shopify channel's public routes refuse bad input precisely and change nothing: every bad
checkout, claim, order-status look-up and webhook gets a 4xx problem with its stable ``error``
code, no payment or order row appears, and nothing is created in the (fake) Shopify store."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update

from boltgate.kit.clock import utcnow
from boltgate.payment.models import Payment
from boltgate.shopify.models import ShopifyOrder
from tests.helpers import auth
from tests.shopify.conftest import variants
from tests.shopify.fake_shopify import _respond
from tests.shopify.fake_store import Shop
from tests.shopify.test_flow import ADDRESS, checkout, claim, pay

SECRET = "whsec_store_secret"  # the webhook secret the `connect` fixture gives every store
US_ONLY = {"groups": [{"name": "domestic", "countries": ["US"], "rateUsd": "5.99"}]}


@dataclass
class Sold:
    """A connected store of a fresh merchant: the fake shop and the store's slug."""

    merchant_id: str
    key: str
    shop: Shop
    slug: str

    @property
    def mug(self) -> int:
        return int(variants(self.shop)["Mug/Default Title"].legacy_resource_id)

    @property
    def beans(self) -> int:
        return int(variants(self.shop)["Coffee Beans/12oz"].legacy_resource_id)

    @property
    def beans_2lb(self) -> int:
        return int(variants(self.shop)["Coffee Beans/2lb"].legacy_resource_id)


@pytest.fixture
async def sold(merchant, connect) -> Sold:
    merchant_id, key = merchant
    shop, store = await connect(key)
    return Sold(merchant_id, key, shop, store["slug"])


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status and stable ``error`` code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["error"] == code and body["status"] == status, body
    assert body["detail"] and body["message"] == body["detail"]
    return body


async def rows(db, merchant_id: str) -> tuple[int, int]:
    """The merchant's (payments, shopify_orders) row counts."""
    async with db.reading() as session:
        payments = await session.scalar(
            select(func.count()).select_from(Payment).where(Payment.merchant_id == merchant_id)
        )
        orders = await session.scalar(
            select(func.count()).select_from(ShopifyOrder).where(ShopifyOrder.merchant_id == merchant_id)
        )
    return int(payments or 0), int(orders or 0)


async def paid_order(sclient, s: Sold, items: list[dict[str, Any]] | None = None, **extra: Any) -> dict:
    body = (await checkout(sclient, s.slug, items or [{"variantId": s.mug, "quantity": 1}], **extra)).json()
    await pay(sclient, body["invoice"])
    return body


# -- checkout


def _items(kind: str, s: Sold) -> list[Any]:
    return {
        "no items": [],
        "11 items": [{"variantId": s.mug + n, "quantity": 1} for n in range(11)],
        "quantity 0": [{"variantId": s.mug, "quantity": 0}],
        "quantity 11": [{"variantId": s.mug, "quantity": 11}],
        "quantity -1": [{"variantId": s.mug, "quantity": -1}],
        "quantity 1.5": [{"variantId": s.mug, "quantity": 1.5}],
        "quantity 1.0": [{"variantId": s.mug, "quantity": 1.0}],
        "quantity '2'": [{"variantId": s.mug, "quantity": "2"}],
        "quantity true": [{"variantId": s.mug, "quantity": True}],
        "quantity null": [{"variantId": s.mug, "quantity": None}],
        "quantity missing": [{"variantId": s.mug}],
        "variantId missing": [{"quantity": 1}],
        "item not an object": ["x"],
        "items not a list": {"variantId": s.mug, "quantity": 1},
        "11 units across items": [{"variantId": s.mug, "quantity": 6}, {"variantId": s.beans, "quantity": 5}],
        "duplicate variant": [{"variantId": s.mug, "quantity": 1}, {"variantId": s.mug, "quantity": 2}],
        "duplicate variant, two spellings": [
            {"variantId": s.mug, "quantity": 1},
            {"variantId": f"gid://shopify/ProductVariant/{s.mug}", "quantity": 1},
        ],
        "unknown item field": [{"variantId": s.mug, "quantity": 1, "price": "0.01"}],
    }[kind]


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("no items", "items"),
        ("11 items", "items"),
        ("quantity 0", "items.0.quantity"),
        ("quantity 11", "items.0.quantity"),
        ("quantity -1", "items.0.quantity"),
        ("quantity 1.5", "items.0.quantity"),
        ("quantity 1.0", "items.0.quantity"),
        ("quantity '2'", "items.0.quantity"),
        ("quantity true", "items.0.quantity"),
        ("quantity null", "items.0.quantity"),
        ("quantity missing", "items.0.quantity"),
        ("variantId missing", "items.0.variantId"),
        ("item not an object", "items.0"),
        ("items not a list", "items"),
        ("11 units across items", None),
        ("duplicate variant", None),
        ("duplicate variant, two spellings", None),
        ("unknown item field", "items.0.price"),
    ],
)
async def test_bad_checkout_items_are_400(sclient, db, sold, kind, field):
    before = await rows(db, sold.merchant_id)
    response = await sclient.post(f"/api/shopify/{sold.slug}/checkout", json={"items": _items(kind, sold)})
    body = problem(response, 400, "validation_error")
    if field is not None:
        assert field in body["errors"], body
    assert await rows(db, sold.merchant_id) == before
    assert not sold.shop.orders


async def test_unknown_variant_is_400_naming_the_item(sclient, db, sold):
    before = await rows(db, sold.merchant_id)
    product_id = variants(sold.shop)["Mug/Default Title"].product.legacy_resource_id
    items = [
        {"variantId": sold.mug, "quantity": 1},
        {"variantId": 999_999_999, "quantity": 1},
        {"variantId": product_id, "quantity": 1},  # a product's id is not a variant's
    ]
    response = await sclient.post(f"/api/shopify/{sold.slug}/checkout", json={"items": items})
    body = problem(response, 400, "unknown_variant")
    assert set(body["errors"]) == {"items.1.variantId", "items.2.variantId"}
    assert "999999999" in body["errors"]["items.1.variantId"][0]
    assert await rows(db, sold.merchant_id) == before


@pytest.mark.parametrize("spelling", ["number", "numeric string", "gid"])
async def test_variant_id_spellings_are_accepted(sclient, db, sold, spelling):
    variant_id: Any = {
        "number": sold.mug,
        "numeric string": str(sold.mug),
        "gid": f"gid://shopify/ProductVariant/{sold.mug}",
    }[spelling]
    response = await checkout(sclient, sold.slug, [{"variantId": variant_id, "quantity": 2}])
    body = response.json()
    assert [(i["variantId"], i["quantity"]) for i in body["items"]] == [(sold.mug, 2)]
    assert body["subtotalUsd"] == 24.0
    assert await rows(db, sold.merchant_id) == (1, 1)


@pytest.mark.parametrize(
    "variant_id",
    [
        "abc",
        "gid://shopify/Product/1",
        "gid://shopify/ProductVariant/",
        "gid://shopify/ProductVariant/abc",
        "",
        "-5",
        "1e3",
        0,
        -1,
        2**63,
        2**64,
        "9" * 21,
        1.5,
        True,
        None,
        [1],
    ],
    ids=repr,
)
async def test_garbage_variant_ids_are_400(sclient, db, sold, variant_id):
    before = await rows(db, sold.merchant_id)
    response = await sclient.post(
        f"/api/shopify/{sold.slug}/checkout", json={"items": [{"variantId": variant_id, "quantity": 1}]}
    )
    body = problem(response, 400, "validation_error")
    assert "items.0.variantId" in body["errors"], body
    assert await rows(db, sold.merchant_id) == before


async def test_out_of_stock_is_409_and_in_stock_quantities_sell(sclient, db, sold):
    before = await rows(db, sold.merchant_id)
    url = f"/api/shopify/{sold.slug}/checkout"
    sold_out = await sclient.post(url, json={"items": [{"variantId": sold.beans_2lb, "quantity": 1}]})
    assert "2lb" in problem(sold_out, 409, "out_of_stock")["detail"]
    # 5 in stock, DENY policy: 6 is refused, also next to an item that is fine
    too_many = await sclient.post(
        url,
        json={"items": [{"variantId": sold.mug, "quantity": 1}, {"variantId": sold.beans, "quantity": 6}]},
    )
    assert "12oz" in problem(too_many, 409, "out_of_stock")["detail"]
    assert await rows(db, sold.merchant_id) == before
    exactly = await checkout(sclient, sold.slug, [{"variantId": sold.beans, "quantity": 5}])
    assert exactly.json()["subtotalUsd"] == 94.95
    assert await rows(db, sold.merchant_id) == (before[0] + 1, before[1] + 1)


async def test_a_continue_policy_variant_without_stock_sells(sclient, db, sold):
    v2lb = variants(sold.shop)["Coffee Beans/2lb"]
    sold.shop.set_inventory(v2lb.id, 0, "CONTINUE")  # before the catalog is first read (it is cached)
    catalog = (await sclient.get(f"/api/shopify/{sold.slug}/catalog")).json()
    listed = {v["variantId"]: v for p in catalog["products"] for v in p["variants"]}
    assert listed[sold.beans_2lb]["available"] is True
    response = await checkout(sclient, sold.slug, [{"variantId": sold.beans_2lb, "quantity": 3}])
    assert response.json()["subtotalUsd"] == 104.97


async def test_unknown_slug_is_404_everywhere(sclient, sold):
    for slug in ("no-such-store", "x" * 65, sold.slug.upper()):
        base = f"/api/shopify/{slug}"
        problem(await sclient.get(f"{base}/catalog"), 404, "store_not_found")
        problem(
            await sclient.post(f"{base}/checkout", json={"items": [{"variantId": sold.mug, "quantity": 1}]}),
            404,
            "store_not_found",
        )
        problem(
            await sclient.post(
                f"{base}/claim",
                json={"claimToken": "a" * 16, "email": "ada@example.com", "shippingAddress": ADDRESS},
            ),
            404,
            "store_not_found",
        )
        problem(
            await sclient.get(f"{base}/orders/shpfy_x", params={"claimToken": "a" * 16}),
            404,
            "store_not_found",
        )


async def test_an_inactive_store_sells_nothing_but_paid_buyers_still_claim(sclient, db, sold):
    """Switched off: catalog and checkout are 404 ``store_not_found``; a claim with a wrong token is
    404 too, while the buyer who paid can still claim and look at the order."""
    paid = await paid_order(sclient, sold)
    assert (await sclient.get(f"/api/shopify/{sold.slug}/catalog")).status_code == 200  # rendered once
    off = await sclient.put(
        f"/api/shopify/stores/{sold.slug}", json={"active": False}, headers=auth(sold.key)
    )
    assert off.status_code == 200 and off.json()["active"] is False
    before = await rows(db, sold.merchant_id)
    base = f"/api/shopify/{sold.slug}"
    problem(await sclient.get(f"{base}/catalog"), 404, "store_not_found")
    problem(
        await sclient.post(f"{base}/checkout", json={"items": [{"variantId": sold.mug, "quantity": 1}]}),
        404,
        "store_not_found",
    )
    problem(await claim(sclient, sold.slug, "A" * 16), 404, "order_not_found")
    assert await rows(db, sold.merchant_id) == before and not sold.shop.orders
    claimed = await claim(sclient, sold.slug, paid["claimToken"])
    assert claimed.status_code == 200, claimed.text
    status = await sclient.get(f"{base}/orders/{paid['orderId']}", params={"claimToken": paid["claimToken"]})
    assert status.status_code == 200 and status.json()["status"] == "ordered"
    on = await sclient.put(f"/api/shopify/stores/{sold.slug}", json={"active": True}, headers=auth(sold.key))
    assert on.status_code == 200
    assert (await sclient.get(f"{base}/catalog")).status_code == 200
    assert len(sold.shop.orders) == 1


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 400, "malformed_json"),
        (b'"items"', "application/json", 400, "malformed_json"),
        # boltgate answers a wrong media type with 400 on every route (not 415)
        (b'{"items": [{"variantId": 1, "quantity": 1}]}', "text/plain", 400, "unsupported_media_type"),
        (b"items=1", "application/x-www-form-urlencoded", 400, "unsupported_media_type"),
        (b'{"items": [{"variantId": 1, "quantity": 1}]}', "", 400, "unsupported_media_type"),
    ],
)
async def test_bodies_that_are_not_json_objects(sclient, db, sold, content, content_type, status, code):
    before = await rows(db, sold.merchant_id)
    headers = {"Content-Type": content_type} if content_type else {}
    for route in ("checkout", "claim"):
        response = await sclient.post(f"/api/shopify/{sold.slug}/{route}", content=content, headers=headers)
        problem(response, status, code)
    assert await rows(db, sold.merchant_id) == before


async def test_unknown_checkout_field_is_400(sclient, db, sold):
    before = await rows(db, sold.merchant_id)
    response = await sclient.post(
        f"/api/shopify/{sold.slug}/checkout",
        json={"items": [{"variantId": sold.mug, "quantity": 1}], "discountCode": "FREE"},
    )
    assert "discountCode" in problem(response, 400, "validation_error")["errors"]
    assert await rows(db, sold.merchant_id) == before


async def test_a_country_the_store_does_not_ship_to_is_400(sclient, db, merchant, connect):
    merchant_id, key = merchant
    shop, store = await connect(key, shipping=US_ONLY)
    mug = variants(shop)["Mug/Default Title"].legacy_resource_id
    url = f"/api/shopify/{store['slug']}/checkout"
    items = [{"variantId": mug, "quantity": 1}]
    by_body = await sclient.post(url, json={"items": items, "shippingCountry": "DE"})
    assert problem(by_body, 400, "country_not_shipped")["errors"] == {
        "shippingCountry": ["not shipped to: DE"]
    }
    lower = await sclient.post(url, json={"items": items, "shippingCountry": "de"})
    problem(lower, 400, "country_not_shipped")
    by_header = await sclient.post(url, json={"items": items}, headers={"X-Buyer-Location": "DE-BE-10115"})
    problem(by_header, 400, "country_not_shipped")
    # the body's country wins over the header's
    both = await sclient.post(
        url, json={"items": items, "shippingCountry": "DE"}, headers={"X-Buyer-Location": "US-TX-78701"}
    )
    problem(both, 400, "country_not_shipped")
    assert await rows(db, merchant_id) == (0, 0)
    fine = await checkout(sclient, store["slug"], items, headers={"X-Buyer-Location": "US-TX-78701"})
    assert fine.json()["shippingUsd"] == 5.99 and fine.json()["shippingGroup"] == "domestic"


@pytest.mark.parametrize("country", ["USA", "U", "u1", "D-", "", "  ", 49, None], ids=repr)
async def test_a_malformed_shipping_country_is_400(sclient, db, sold, country):
    before = await rows(db, sold.merchant_id)
    body: dict[str, Any] = {"items": [{"variantId": sold.mug, "quantity": 1}], "shippingCountry": country}
    response = await sclient.post(f"/api/shopify/{sold.slug}/checkout", json=body)
    if country is None:  # null is "not given": the first group
        assert response.status_code == 402, response.text
        return
    assert "shippingCountry" in problem(response, 400, "validation_error")["errors"]
    assert await rows(db, sold.merchant_id) == before


# -- claim


def _claim_body(token: str, case: str) -> tuple[dict[str, Any], str]:
    """A claim body made bad in one way, and the field the error must name."""
    body: dict[str, Any] = {"claimToken": token, "email": "ada@example.com", "shippingAddress": dict(ADDRESS)}
    address = body["shippingAddress"]
    field = "shippingAddress"
    match case.split(":", 2):
        case ["token", value]:
            body["claimToken"], field = {"empty": "", "21": "a" * 21, "number": 12345}[value], "claimToken"
        case ["email", value]:
            body["email"] = {
                "a": "a",
                "a@b": "a@b",
                "space": "a b@c.d",
                "255": "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "example.com",
                "local 65": "a" * 65 + "@example.com",
                "two @": "a@b@example.com",
                "empty label": "a@example..com",
                "control": "a\x01@example.com",
                "empty": "",
                "number": 7,
            }[value]
            field = "email"
        case ["missing", name]:
            del address[name]
            field = f"shippingAddress.{name}"
        case ["address", name, value]:
            address[name] = value
            field = f"shippingAddress.{name}"
        case ["extra", name]:
            address[name] = "x"
            field = f"shippingAddress.{name}"
        case ["no address"]:
            del body["shippingAddress"]
        case ["address not an object"]:
            body["shippingAddress"] = "1 Analytical Way, Austin"
        case ["extra top"]:
            body["giftMessage"], field = "hi", "giftMessage"
        case _:
            raise AssertionError(case)
    return body, field


CLAIM_CASES = [
    "token:empty",
    "token:21",
    "token:number",
    *(f"email:{v}" for v in ("a", "a@b", "space", "255", "local 65", "two @", "empty label", "control")),
    "email:empty",
    "email:number",
    *(f"missing:{n}" for n in ("lastName", "address1", "city", "countryCode")),
    "address:countryCode:USA",
    "address:countryCode:u1",
    "address:countryCode:",
    "address:zip:<script>",
    "address:provinceCode:T<X",
    "address:address1:1 Analytical\x00Way",
    "address:address1:1 Analytical\nWay",
    "address:city:Aus\x7ftin",
    "address:lastName:   ",
    "address:phone:call me maybe",
    "address:address2:" + "x" * 201,
    "extra:county",
    "no address",
    "address not an object",
    "extra top",
]


@pytest.mark.parametrize("case", CLAIM_CASES, ids=lambda c: c.encode("unicode_escape").decode()[:40])
async def test_bad_claims_are_400_and_create_nothing(sclient, db, sold, shopify, case):
    paid = await paid_order(sclient, sold)
    body, field = _claim_body(paid["claimToken"], case)
    before = await rows(db, sold.merchant_id)
    response = await claim_raw(sclient, sold.slug, body)
    errors = problem(response, 400, "validation_error")["errors"]
    assert field in errors, errors
    assert await rows(db, sold.merchant_id) == before
    assert not sold.shop.orders
    assert not [r for r in shopify.requests if "orderCreate" in (r["query"] or "")]
    status = await sclient.get(
        f"/api/shopify/{sold.slug}/orders/{paid['orderId']}", params={"claimToken": paid["claimToken"]}
    )
    # still claimable (paid, or not yet seen paid by the settlement poller)
    assert status.json()["status"] in ("paid", "pending_payment")
    assert (await claim(sclient, sold.slug, paid["claimToken"])).status_code == 200
    assert len(sold.shop.orders) == 1


async def claim_raw(sclient, slug: str, body: dict[str, Any]) -> httpx.Response:
    return await sclient.post(f"/api/shopify/{slug}/claim", json=body)


async def test_wrong_claim_tokens_are_404(sclient, db, make_merchant, connect, sold):
    paid = await paid_order(sclient, sold)
    # another merchant's store with a paid order of its own
    other_id, other_key = await make_merchant()
    other_shop, other_store = await connect(other_key)
    other = Sold(other_id, other_key, other_shop, other_store["slug"])
    theirs = await paid_order(sclient, other)
    before = await rows(db, sold.merchant_id)
    wrong = "A" * len(paid["claimToken"])
    problem(await claim(sclient, sold.slug, wrong), 404, "order_not_found")
    problem(await claim(sclient, sold.slug, theirs["claimToken"]), 404, "order_not_found")
    problem(await claim(sclient, other.slug, paid["claimToken"]), 404, "order_not_found")
    assert await rows(db, sold.merchant_id) == before
    assert not sold.shop.orders and not other_shop.orders


async def test_an_unpaid_order_is_409_and_an_expired_one_410(sclient, db, sold, shopify):
    unpaid = (await checkout(sclient, sold.slug, [{"variantId": sold.mug, "quantity": 1}])).json()
    pending = await claim(sclient, sold.slug, unpaid["claimToken"])
    problem(pending, 409, "payment_pending")
    assert pending.headers["retry-after"]
    lapsed = (await checkout(sclient, sold.slug, [{"variantId": sold.mug, "quantity": 1}])).json()
    async with db.writing() as session:
        await session.execute(
            update(Payment)
            .where(Payment.payment_hash == lapsed["paymentHash"])
            .values(status="expired", expires_at=utcnow() - timedelta(minutes=1))
        )
    before = await rows(db, sold.merchant_id)
    problem(await claim(sclient, sold.slug, lapsed["claimToken"]), 410, "payment_expired")
    problem(await claim(sclient, sold.slug, lapsed["claimToken"]), 410, "payment_expired")
    status = await sclient.get(
        f"/api/shopify/{sold.slug}/orders/{lapsed['orderId']}", params={"claimToken": lapsed["claimToken"]}
    )
    assert status.json()["status"] == "expired"
    assert await rows(db, sold.merchant_id) == before
    assert not sold.shop.orders
    assert not [r for r in shopify.requests if "orderCreate" in (r["query"] or "")]


async def test_claiming_to_a_dearer_shipping_country_is_409(sclient, db, sold):
    paid = await paid_order(sclient, sold, headers={"X-Buyer-Location": "US-TX-78701"})
    assert paid["shippingGroup"] == "domestic" and paid["shippingUsd"] == 5.99
    abroad = {**ADDRESS, "countryCode": "DE", "provinceCode": "BE", "zip": "10115", "city": "Berlin"}
    before = await rows(db, sold.merchant_id)
    refused = await claim(sclient, sold.slug, paid["claimToken"], address=abroad)
    assert "DE" in problem(refused, 409, "shipping_country_mismatch")["detail"]
    assert await rows(db, sold.merchant_id) == before and not sold.shop.orders
    ok = await claim(sclient, sold.slug, paid["claimToken"])
    assert ok.status_code == 200, ok.text
    assert len(sold.shop.orders) == 1


async def test_free_shipping_quoted_does_not_cover_another_country(sclient, sold):
    # 3 x 18.99 >= 50: free domestic shipping; abroad costs 15.00
    paid = await paid_order(sclient, sold, [{"variantId": sold.beans, "quantity": 3}])
    assert paid["shippingUsd"] == 0.0
    refused = await claim(sclient, sold.slug, paid["claimToken"], address={**ADDRESS, "countryCode": "FR"})
    problem(refused, 409, "shipping_country_mismatch")
    assert not sold.shop.orders


async def test_a_cheaper_or_same_cost_shipping_country_is_accepted(sclient, merchant, connect):
    _, key = merchant
    shipping = {
        "groups": [
            {"name": "domestic", "countries": ["US"], "rateUsd": "5.99"},
            {"name": "canada", "countries": ["CA"], "rateUsd": "5.99"},
            {"name": "world", "countries": ["*"], "rateUsd": "15.00"},
        ]
    }
    shop, store = await connect(key, shipping=shipping)
    s = Sold("", key, shop, store["slug"])
    same = await paid_order(sclient, s, headers={"X-Buyer-Location": "US-TX-78701"})
    canada = {**ADDRESS, "countryCode": "CA", "provinceCode": "ON", "zip": "M5V 2T6", "city": "Toronto"}
    assert (await claim(sclient, s.slug, same["claimToken"], address=canada)).status_code == 200
    dearer = await paid_order(sclient, s, headers={"X-Buyer-Location": "DE-BE-10115"})
    assert dearer["shippingUsd"] == 15.0
    cheaper = await claim(sclient, s.slug, dearer["claimToken"])
    assert cheaper.status_code == 200, cheaper.text
    assert len(shop.orders) == 2
    # what was paid is what Shopify records
    amounts = [o.input["shippingLines"][0]["priceSet"]["shopMoney"]["amount"] for o in shop.orders]
    assert amounts == [Decimal("5.99"), Decimal("15.00")]


async def test_claiming_to_a_country_not_shipped_is_400(sclient, db, merchant, connect):
    merchant_id, key = merchant
    shop, store = await connect(key, shipping=US_ONLY)
    s = Sold(merchant_id, key, shop, store["slug"])
    paid = await paid_order(sclient, s)
    refused = await claim(sclient, s.slug, paid["claimToken"], address={**ADDRESS, "countryCode": "MX"})
    body = problem(refused, 400, "country_not_shipped")
    assert "shippingAddress.countryCode" in body["errors"]
    assert not shop.orders
    assert (await claim(sclient, s.slug, paid["claimToken"])).status_code == 200


async def test_shopify_refusing_the_order_is_400_and_the_order_stays_claimable(sclient, db, sold, shopify):
    paid = await paid_order(sclient, sold)
    original = shopify._graphql
    refusals = []

    async def refuse(receive, send, domain, version, headers, raw):
        if b"orderCreate" in raw:
            refusals.append(raw)
            errors = [
                {"field": ["order", "shippingAddress", "zip"], "message": "Zip is invalid", "code": "INVALID"}
            ]
            return await _respond(send, 200, {"data": {"orderCreate": {"order": None, "userErrors": errors}}})
        await original(receive, send, domain, version, headers, raw)

    shopify._graphql = refuse
    try:
        refused = await claim(sclient, sold.slug, paid["claimToken"])
    finally:
        shopify._graphql = original
    body = problem(refused, 400, "order_rejected")
    assert body["errors"] == {"shippingAddress.zip": ["Zip is invalid"]}
    assert len(refusals) == 1 and not sold.shop.orders
    status = await sclient.get(
        f"/api/shopify/{sold.slug}/orders/{paid['orderId']}", params={"claimToken": paid["claimToken"]}
    )
    assert status.json()["status"] == "paid"
    again = await claim(sclient, sold.slug, paid["claimToken"], address={**ADDRESS, "zip": "78702"})
    assert again.status_code == 200, again.text
    assert again.json()["alreadyClaimed"] is False
    [order] = sold.shop.orders
    assert order.input["shippingAddress"]["zip"] == "78702"
    third = await claim(sclient, sold.slug, paid["claimToken"])
    assert third.status_code == 200 and third.json()["alreadyClaimed"] is True and len(sold.shop.orders) == 1


async def test_shopify_down_during_the_claim_is_503_then_the_claim_succeeds_once(sclient, db, sold, shopify):
    paid = await paid_order(sclient, sold)
    before = await rows(db, sold.merchant_id)
    shopify.status_next(10, 503)
    down = await claim(sclient, sold.slug, paid["claimToken"])
    problem(down, 503, "shopify_unavailable")
    assert int(down.headers["retry-after"]) > 0
    assert not sold.shop.orders and await rows(db, sold.merchant_id) == before
    shopify.reset()
    up = await claim(sclient, sold.slug, paid["claimToken"])
    assert up.status_code == 200, up.text
    assert len(sold.shop.orders) == 1
    assert len([r for r in shopify.requests if "orderCreate" in (r["query"] or "")]) == 1


# -- order status


async def test_order_status_needs_the_right_claim_token(sclient, db, sold, make_merchant, connect):
    first = (await checkout(sclient, sold.slug, [{"variantId": sold.mug, "quantity": 1}])).json()
    second = (await checkout(sclient, sold.slug, [{"variantId": sold.mug, "quantity": 2}])).json()
    url = f"/api/shopify/{sold.slug}/orders/{first['orderId']}"
    problem(await sclient.get(url), 400, "validation_error")
    problem(await sclient.get(url, params={"claimToken": ""}), 400, "validation_error")
    problem(await sclient.get(url, params={"claimToken": "a" * 21}), 400, "validation_error")
    problem(await sclient.get(url, params={"claimToken": "A" * 16}), 404, "order_not_found")
    problem(await sclient.get(url, params={"claimToken": second["claimToken"]}), 404, "order_not_found")
    problem(
        await sclient.get(
            f"/api/shopify/{sold.slug}/orders/shpfy_nope", params={"claimToken": first["claimToken"]}
        ),
        404,
        "order_not_found",
    )
    # an order of another store, with its own token, looked up under this store's slug
    _, other_key = await make_merchant()
    other_shop, other_store = await connect(other_key)
    mug = variants(other_shop)["Mug/Default Title"].legacy_resource_id
    theirs = (await checkout(sclient, other_store["slug"], [{"variantId": mug, "quantity": 1}])).json()
    problem(
        await sclient.get(
            f"/api/shopify/{sold.slug}/orders/{theirs['orderId']}",
            params={"claimToken": theirs["claimToken"]},
        ),
        404,
        "order_not_found",
    )
    right = await sclient.get(url, params={"claimToken": first["claimToken"]})
    assert right.status_code == 200 and right.json()["orderId"] == first["orderId"]


# -- webhooks


def _sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def post_webhook(
    url: str,
    shop: Shop,
    body: bytes,
    *,
    secret: str | None = SECRET,
    topic: str | None = "orders/updated",
    webhook_id: str | None = "wh-bad-1",
    domain: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Shopify-Shop-Domain": domain or shop.domain}
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = _sign(body, secret)
    if topic is not None:
        headers["X-Shopify-Topic"] = topic
    if webhook_id is not None:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(url, content=body, headers=headers)


async def test_webhooks_that_are_refused(sclient, sold, shopify):
    url = f"{sclient.base_url}/api/shopify/{sold.slug}/webhooks"
    payload = orjson.dumps({"id": 1, "admin_graphql_api_id": "gid://shopify/Order/1"})
    problem(await post_webhook(url, sold.shop, payload, secret=None), 401, "invalid_signature")
    problem(await post_webhook(url, sold.shop, payload, secret="whsec_not_the_one"), 401, "invalid_signature")
    problem(
        await post_webhook(url, sold.shop, payload, secret=sold.shop.client_secret), 401, "invalid_signature"
    )
    tampered = await sclient.post(
        url,
        content=payload + b" ",
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": _sign(payload),
            "X-Shopify-Topic": "orders/updated",
            "X-Shopify-Webhook-Id": "wh-tampered",
        },
    )
    problem(tampered, 401, "invalid_signature")
    problem(await post_webhook(url, sold.shop, payload, webhook_id=None), 400, "invalid_webhook")
    problem(await post_webhook(url, sold.shop, payload, webhook_id="w" * 101), 400, "invalid_webhook")
    problem(await post_webhook(url, sold.shop, payload, topic=None), 400, "invalid_webhook")
    problem(await post_webhook(url, sold.shop, b"{not json"), 400, "malformed_json")
    problem(await post_webhook(url, sold.shop, b"[1, 2]"), 400, "malformed_json")
    problem(
        await post_webhook(url, sold.shop, payload, domain="someone-else.myshopify.com"), 400, "shop_mismatch"
    )
    unknown = f"{sclient.base_url}/api/shopify/no-such-store/webhooks"
    problem(await post_webhook(unknown, sold.shop, payload), 404, "store_not_found")
    # none of the refused deliveries used up its id: the same id, delivered right, is handled
    fine = await post_webhook(url, sold.shop, payload)
    assert fine.status_code == 200, fine.text
    assert fine.json() == {"received": True, "duplicate": False, "handled": False}  # not an order of ours


@pytest.mark.parametrize("topic", ["shop/update", "customers/create", "app_subscriptions/update"])
async def test_a_topic_we_do_not_handle_is_200_unhandled(sclient, sold, shopify, topic):
    url = f"{sclient.base_url}/api/shopify/{sold.slug}/webhooks"
    sent = await shopify.send_webhook(url, sold.shop, topic, {"id": 1}, secret=SECRET)
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"received": True, "duplicate": False, "handled": False}
    got = await sclient.get(f"/api/shopify/stores/{sold.slug}", headers=auth(sold.key))
    assert got.json()["active"] is True


async def test_a_duplicate_webhook_changes_nothing_twice(sclient, sold, shopify):
    url = f"{sclient.base_url}/api/shopify/{sold.slug}/webhooks"
    mug = variants(sold.shop)["Mug/Default Title"]
    catalog = f"/api/shopify/{sold.slug}/catalog"

    def mug_price(response: httpx.Response) -> float:
        [price] = [
            v["priceUsd"] for p in response.json()["products"] for v in p["variants"] if p["title"] == "Mug"
        ]
        return float(price)

    assert mug_price(await sclient.get(catalog)) == 12.0
    sold.shop.set_price(mug.id, "13.00")
    payload = shopify.product_payload(sold.shop, mug.product.id)
    first = await shopify.send_webhook(
        url, sold.shop, "products/update", payload, secret=SECRET, webhook_id="dup-1"
    )
    assert first.json() == {"received": True, "duplicate": False, "handled": True}
    assert mug_price(await sclient.get(catalog)) == 13.0  # marked stale, read again
    sold.shop.set_price(mug.id, "14.00")
    asked = len(shopify.requests)
    repeat = await shopify.send_webhook(
        url, sold.shop, "products/update", payload, secret=SECRET, webhook_id="dup-1"
    )
    assert repeat.status_code == 200 and repeat.json() == {"received": True, "duplicate": True}
    assert mug_price(await sclient.get(catalog)) == 13.0  # the repeat did not mark it stale again
    assert len(shopify.requests) == asked


# -- secrets


async def test_no_response_shows_the_store_secrets(sclient, sold, shopify):
    [token] = sold.shop.tokens
    texts: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        texts.append(response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items()))
        return response

    headers = auth(sold.key)
    base = f"/api/shopify/{sold.slug}"
    keep(await sclient.get("/api/shopify/stores", headers=headers))
    keep(await sclient.get(f"/api/shopify/stores/{sold.slug}", headers=headers))
    keep(
        await sclient.put(f"/api/shopify/stores/{sold.slug}", json={"storeName": "Renamed"}, headers=headers)
    )
    keep(
        await sclient.put(
            f"/api/shopify/stores/{sold.slug}", json={"accessToken": "shpat_wrong_one"}, headers=headers
        )
    )
    keep(await sclient.get(f"{base}/catalog"))
    paid = (await checkout(sclient, sold.slug, [{"variantId": sold.mug, "quantity": 1}])).json()
    keep(await claim(sclient, sold.slug, paid["claimToken"]))  # 409 unpaid
    await pay(sclient, paid["invoice"])
    keep(await claim(sclient, sold.slug, "A" * 16))
    shopify.status_next(10, 503)
    keep(await claim(sclient, sold.slug, paid["claimToken"]))
    shopify.reset()
    keep(await claim(sclient, sold.slug, paid["claimToken"]))
    keep(await sclient.get(f"{base}/orders/{paid['orderId']}", params={"claimToken": paid["claimToken"]}))
    keep(await sclient.get(f"/api/shopify/stores/{sold.slug}/orders", headers=headers))
    keep(await sclient.get("/api/stats/shopify", headers=headers))
    url = f"{sclient.base_url}{base}/webhooks"
    keep(await post_webhook(url, sold.shop, b"{}", secret="whsec_not_the_one"))
    keep(await post_webhook(url, sold.shop, b"{}", webhook_id=None))
    keep(await post_webhook(url, sold.shop, b"{}", domain="other.myshopify.com"))
    shopify.status_next(10, 503)
    keep(
        await sclient.put(
            f"/api/shopify/stores/{sold.slug}", json={"accessToken": "shpat_other_one"}, headers=headers
        )
    )
    shopify.reset()
    assert len(texts) == 16 and all(texts)
    for text in texts:
        for secret in (token, SECRET, sold.shop.client_secret, "shpat_wrong_one", "shpat_other_one"):
            assert secret not in text, (secret, text)


async def test_an_oversized_webhook_is_refused(sclient, sold):
    url = f"{sclient.base_url}/api/shopify/{sold.slug}/webhooks"
    body = b'{"pad": "' + b"x" * (1 << 20) + b'"}'
    problem(await post_webhook(url, sold.shop, body), 400, "payload_too_large")


@pytest.mark.parametrize("country", ["XX", "ZZ", "AA"])
async def test_a_country_code_that_is_no_country_is_400(sclient, merchant, connect, country):
    _, key = merchant
    world = {"groups": [{"name": "world", "countries": ["*"], "rateUsd": "9.00"}]}
    shop, store = await connect(key, shipping=world)
    s = Sold("", key, shop, store["slug"])
    paid = await paid_order(sclient, s)
    response = await claim(sclient, s.slug, paid["claimToken"], address={**ADDRESS, "countryCode": country})
    assert "shippingAddress.countryCode" in problem(response, 400, "validation_error")["errors"]
    assert not shop.orders
