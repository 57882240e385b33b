"""Checkout products over real HTTP: CRUD, validation, tenancy, and the public /buy links."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import auth

PRODUCT = {
    "name": "Espresso beans 250 g",
    "description": "Single origin.\nRoasted weekly.",
    "price": 12.5,
    "currency": "eur",
    "imageUrl": "https://cdn.example/beans.png",
    "successUrl": "https://shop.example/thanks",
    "cancelUrl": "https://shop.example/cart",
}


async def test_product_lifecycle(client, merchant, gateway):
    _, key = merchant
    created = await client.post("/api/checkout/products", json=PRODUCT, headers=auth(key))
    assert created.status_code == 201, created.text
    product = created.json()
    pid = product["productId"]
    assert pid.startswith("prod_") and created.headers["location"] == f"/api/checkout/products/{pid}"
    assert product["currency"] == "EUR" and product["active"] is True
    assert '"price":12.50' in created.text  # exact decimal, the currency's digits
    assert product["buyUrl"] == f"{gateway.base_url}/buy/{pid}"
    assert product["description"] == PRODUCT["description"]

    got = await client.get(f"/api/checkout/products/{pid}", headers=auth(key))
    assert got.status_code == 200 and got.json() == product

    changed = await client.put(
        f"/api/checkout/products/{pid}", json={"price": "9", "active": False}, headers=auth(key)
    )
    assert changed.status_code == 200, changed.text
    assert '"price":9.00' in changed.text and changed.json()["active"] is False
    assert changed.json()["name"] == PRODUCT["name"]  # untouched fields stay
    cleared = await client.put(f"/api/checkout/products/{pid}", json={"imageUrl": None}, headers=auth(key))
    assert cleared.json()["imageUrl"] is None

    active = await client.get("/api/checkout/products?active=true", headers=auth(key))
    inactive = await client.get("/api/checkout/products?active=false", headers=auth(key))
    assert pid not in {p["productId"] for p in active.json()["items"]}
    assert [p["productId"] for p in inactive.json()["items"]] == [pid]

    gone = await client.delete(f"/api/checkout/products/{pid}", headers=auth(key))
    assert gone.status_code == 204
    assert (await client.get(f"/api/checkout/products/{pid}", headers=auth(key))).status_code == 404


async def test_list_pages_newest_first(client, make_merchant):
    _, key = await make_merchant()
    ids = []
    for n in range(3):
        body = {"name": f"Item {n}", "price": n + 1, "currency": "USD"}
        ids.append(
            (await client.post("/api/checkout/products", json=body, headers=auth(key))).json()["productId"]
        )
    page = (await client.get("/api/checkout/products?limit=2", headers=auth(key))).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    rest = (await client.get("/api/checkout/products?limit=2&offset=2", headers=auth(key))).json()
    assert [p["productId"] for p in page["items"] + rest["items"]] == ids[::-1]


async def test_products_are_per_merchant(client, make_merchant):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    pid = (await client.post("/api/checkout/products", json=PRODUCT, headers=auth(key_a))).json()["productId"]
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/api/checkout/products/{pid}", headers=auth(key_b))
        assert response.status_code == 404 and response.json()["error"] == "product_not_found"
    put = await client.put(f"/api/checkout/products/{pid}", json={"name": "x"}, headers=auth(key_b))
    assert put.status_code == 404
    assert (await client.get("/api/checkout/products", headers=auth(key_b))).json()["total"] == 0
    assert (await client.get("/api/checkout/products")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PRODUCT, "price": 0}, "price"),
        ({**PRODUCT, "price": "1.001"}, "price"),
        ({**PRODUCT, "price": "abc"}, "price"),
        ({**PRODUCT, "price": True}, "price"),
        ({**PRODUCT, "currency": "XYZ"}, "currency"),
        ({**PRODUCT, "name": ""}, "name"),
        ({**PRODUCT, "name": "a\x00b"}, "name"),
        ({**PRODUCT, "description": "nul \x00 byte"}, "description"),
        ({**PRODUCT, "imageUrl": "http://cdn.example/x.png"}, "imageUrl"),
        ({**PRODUCT, "imageUrl": "javascript:alert(1)"}, "imageUrl"),
        ({**PRODUCT, "successUrl": "javascript:alert(1)"}, "successUrl"),
        ({**PRODUCT, "active": "yes"}, "active"),
        ({**PRODUCT, "unknown": 1}, "unknown"),
        ({"name": "BTC dust", "price": "0.000000001", "currency": "BTC"}, "price"),
    ],
)
async def test_bad_products_are_400_and_change_nothing(client, make_merchant, body, field):
    _, key = await make_merchant()
    response = await client.post("/api/checkout/products", json=body, headers=auth(key))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["error"] == "validation_error" and field in str(problem["errors"])
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/checkout/products", headers=auth(key))).json()["total"] == 0


async def test_bad_updates_are_400_and_change_nothing(client, merchant):
    _, key = merchant
    pid = (await client.post("/api/checkout/products", json=PRODUCT, headers=auth(key))).json()["productId"]
    before = (await client.get(f"/api/checkout/products/{pid}", headers=auth(key))).json()
    for body in ({"name": None}, {"price": None}, {"currency": "JPY"}, {"active": None}, {"price": -1}):
        # JPY has no minor units, so the 12.50 price cannot move to it
        response = await client.put(f"/api/checkout/products/{pid}", json=body, headers=auth(key))
        assert response.status_code == 400, (body, response.text)
    raw = await client.put(
        f"/api/checkout/products/{pid}",
        content=b"{",
        headers={**auth(key), "content-type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["error"] == "malformed_json"
    assert (await client.get(f"/api/checkout/products/{pid}", headers=auth(key))).json() == before


async def test_buy_link_creates_a_payment_and_opens_its_checkout(client, merchant):
    _, key = merchant
    pid = (await client.post("/api/checkout/products", json=PRODUCT, headers=auth(key))).json()["productId"]
    first = await client.get(f"/buy/{pid}?lang=de")
    assert first.status_code == 303 and first.headers["cache-control"] == "no-store"
    location = urlsplit(first.headers["location"])
    assert location.path.startswith("/checkout/inv_") and location.query == "lang=de"
    invoice_id = location.path.rsplit("/", 1)[1]

    payment = (await client.get(f"/api/payments/{invoice_id}", headers=auth(key))).json()
    assert payment["amount"] == 12.5 and payment["currency"] == "EUR" and payment["status"] == "unpaid"
    assert payment["description"] == PRODUCT["name"]
    assert payment["successUrl"] == PRODUCT["successUrl"] and payment["cancelUrl"] == PRODUCT["cancelUrl"]
    assert payment["metadata"] == {"productId": pid, "source": "buy_link"}

    second = await client.post(f"/buy/{pid}")  # a form's button; every visit is its own order
    assert second.status_code == 303 and second.headers["location"] != first.headers["location"]
    page = await client.get(first.headers["location"])
    assert page.status_code == 200 and "12,50" in page.text  # German formatting of the amount


async def test_buy_link_of_a_missing_or_inactive_product_is_a_friendly_404(client, merchant):
    _, key = merchant
    pid = (await client.post("/api/checkout/products", json=PRODUCT, headers=auth(key))).json()["productId"]
    await client.put(f"/api/checkout/products/{pid}", json={"active": False}, headers=auth(key))
    listed = (await client.get("/api/payments", headers=auth(key))).json()["total"]
    for path in (f"/buy/{pid}", "/buy/prod_doesnotexist", "/buy/" + "x" * 300, "/buy/%00%ff"):
        response = await client.get(path, headers={"accept-language": "es"})
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Producto no disponible" in response.text
    assert (await client.get("/api/payments", headers=auth(key))).json()["total"] == listed  # nothing made


async def test_buy_link_pages_are_documented(client, merchant):
    """A price that cannot be charged is an HTML page too (400), and /openapi.json says so for every
    page /buy can answer with (tests/fuzz found the 400 documented as problem details only)."""
    _, key = merchant
    too_dear = {**PRODUCT, "price": 999_999_999, "currency": "USD"}
    pid = (await client.post("/api/checkout/products", json=too_dear, headers=auth(key))).json()["productId"]
    operations = (await client.get("/openapi.json")).json()["paths"]["/buy/{product_id}"]
    for method in ("get", "post"):
        response = await client.request(method.upper(), f"/buy/{pid}")
        assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
        responses = operations[method]["responses"]
        for status in ("400", "404", "429", "502", "503"):
            assert "text/html" in responses[status]["content"], (method, status)
        for status in ("400", "429", "502", "503"):  # what fails before the product is looked at
            assert "application/problem+json" in responses[status]["content"], (method, status)


async def test_buy_links_are_rate_limited_per_client(make_gateway, make_merchant):
    gateway = await make_gateway(buy_rate_limit="2/minute")
    _, key = await make_merchant()
    try:
        await _limited(gateway, key)
    finally:
        await gateway.stop()  # its database connections are not needed by later tests


async def _limited(gateway, key):
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        pid = (await http.post("/api/checkout/products", json=PRODUCT, headers=auth(key))).json()["productId"]
        assert [(await http.get(f"/buy/{pid}")).status_code for _ in range(2)] == [303, 303]
        limited = await http.get(f"/buy/{pid}", headers={"accept-language": "de"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert (
            limited.headers["content-type"].startswith("text/html")
            and "Bezahlung nicht möglich" in limited.text
        )
        assert (await http.get("/api/payments", headers=auth(key))).json()["total"] == 2
