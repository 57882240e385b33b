"""The merchant's side of the Shopify channel (X-API-Key): connect a store (its credentials checked
with Shopify before anything is saved, then kept sealed), change it, list it and its orders,
remove it. Every refusal is a precise problem and saves nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from boltgate.shopify.models import ShopifyStore
from tests.conftest import free_port
from tests.helpers import auth
from tests.shopify.conftest import new_shop, variants
from tests.shopify.test_flow import checkout, claim, pay

SECRET = "whsec_store_secret"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["error"] == code and body["status"] == status, body
    return body


def body_for(domain: str, token: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"slug": domain.split(".")[0], "shopDomain": domain}
    if token is not None:
        body["accessToken"] = token
    return body | fields


async def listed(sclient, key: str) -> list[str]:
    response = await sclient.get("/api/shopify/stores", headers=auth(key))
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["total"] == len(out["items"])
    return [s["slug"] for s in out["items"]]


async def stored(db, slug: str) -> ShopifyStore | None:
    async with db.reading() as session:
        found: ShopifyStore | None = await session.scalar(
            select(ShopifyStore).where(ShopifyStore.slug == slug)
        )
    return found


# -- connect


async def test_connect_with_a_static_token(sclient, db, merchant, shopify):
    _, key = merchant
    shop, token = new_shop(shopify)
    shop.add_product("Mug", [{"title": "Default Title", "price": "12.00", "inventory": 3}])
    body = body_for(shop.domain, token, webhookSecret=SECRET)
    created = await sclient.post("/api/shopify/stores", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    slug = body["slug"]
    assert created.headers["location"] == f"/api/shopify/stores/{slug}"
    assert token not in created.text and SECRET not in created.text
    out = created.json()
    assert out["slug"] == slug and out["shopDomain"] == shop.domain
    assert out["storeName"] == shop.name  # Shopify's name when none is given
    assert out["active"] is True and out["auth"] == "access_token" and out["clientId"] is None
    assert out["hasWebhookSecret"] is True
    assert out["shipping"] == {
        "groups": [{"name": "domestic", "countries": ["US"], "rateUsd": "0.00", "freeOverUsd": None}]
    }
    assert out["catalogUrl"].endswith(f"/api/shopify/{slug}/catalog")
    assert out["checkoutUrl"].endswith(f"/api/shopify/{slug}/checkout")
    assert out["webhookUrl"].endswith(f"/api/shopify/{slug}/webhooks")
    assert set(out) >= {"createdAt", "updatedAt"}
    assert not {"accessToken", "clientSecret", "webhookSecret"} & set(out)

    got = await sclient.get(created.headers["location"], headers=auth(key))
    assert got.status_code == 200 and got.json() == out
    assert token not in got.text and SECRET not in got.text
    every = await sclient.get("/api/shopify/stores", headers=auth(key))
    assert every.json() == {"items": [out], "total": 1}
    assert token not in every.text and SECRET not in every.text

    row = await stored(db, slug)
    assert row is not None and row.access_token is not None and row.webhook_secret is not None
    assert row.access_token.startswith("v1.") and token not in row.access_token
    assert row.webhook_secret.startswith("v1.") and SECRET not in row.webhook_secret
    assert row.client_id is None and row.client_secret is None
    # the only Shopify call was the check of the credentials, with the token given
    [asked] = shopify.requests
    assert asked["operationName"] == "ShopInfo" and asked["headers"]["x-shopify-access-token"] == token
    catalog = await sclient.get(f"/api/shopify/{slug}/catalog")
    assert catalog.status_code == 200 and [p["title"] for p in catalog.json()["products"]] == ["Mug"]


async def test_a_given_name_and_a_loosely_written_domain(sclient, merchant, shopify):
    _, key = merchant
    shop, token = new_shop(shopify)
    body = body_for(
        shop.domain, token, shopDomain=f"https://{shop.domain.upper()}/", storeName=" Ada's Beans "
    )
    created = await sclient.post("/api/shopify/stores", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    assert created.json()["shopDomain"] == shop.domain and created.json()["storeName"] == "Ada's Beans"
    assert created.json()["hasWebhookSecret"] is False


async def test_connect_with_client_credentials(sclient, db, merchant, shopify):
    _, key = merchant
    client_id, client_secret = f"cid-{free_port()}", "shpss_client_secret_1"
    shop, _ = new_shop(shopify, access_token=None, client_id=client_id, client_secret=client_secret)
    assert not shop.tokens
    shop.add_product("Mug", [{"title": "Default Title", "price": "12.00", "inventory": 3}])
    body = body_for(shop.domain, clientId=client_id, clientSecret=client_secret)
    created = await sclient.post("/api/shopify/stores", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    assert client_secret not in created.text
    out = created.json()
    assert out["auth"] == "client_credentials" and out["clientId"] == client_id
    assert out["hasWebhookSecret"] is True  # the app's client secret signs its webhooks
    [grant] = [t for t in shopify.token_requests if t["shop"] == shop.domain]
    assert grant["form"] == {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    [fetched] = shop.tokens
    slug = body["slug"]
    catalog = await sclient.get(f"/api/shopify/{slug}/catalog")
    assert catalog.status_code == 200, catalog.text
    mug = variants(shop)["Mug/Default Title"].legacy_resource_id
    assert [v["variantId"] for p in catalog.json()["products"] for v in p["variants"]] == [mug]
    made = await checkout(sclient, slug, [{"variantId": mug, "quantity": 1}])
    await pay(sclient, made.json()["invoice"])
    assert (await claim(sclient, slug, made.json()["claimToken"])).status_code == 200
    assert len(shop.orders) == 1
    # one token, fetched once, used for every call
    assert len([t for t in shopify.token_requests if t["shop"] == shop.domain]) == 1
    mine = [r for r in shopify.requests if r["shop"] == shop.domain]
    assert len(mine) >= 4 and {r["headers"]["x-shopify-access-token"] for r in mine} == {fetched}
    row = await stored(db, slug)
    assert row is not None and row.access_token is None and row.client_id == client_id
    assert row.client_secret is not None and row.client_secret.startswith("v1.")
    assert client_secret not in row.client_secret
    # a webhook signed with the client secret is accepted
    sent = await shopify.send_webhook(
        f"{sclient.base_url}/api/shopify/{slug}/webhooks", shop, "shop/update", {}
    )
    assert sent.status_code == 200, sent.text


async def test_a_write_scope_grants_its_read_scope(sclient, merchant, shopify):
    _, key = merchant
    shop, token = new_shop(shopify, scopes=("write_products", "write_orders"))
    created = await sclient.post("/api/shopify/stores", json=body_for(shop.domain, token), headers=auth(key))
    assert created.status_code == 201, created.text


def _refusal(shopify, case: str) -> tuple[dict[str, Any], int, str]:
    """A connect body Shopify refuses, with the status and code boltgate answers."""
    if case == "wrong token":
        shop, _ = new_shop(shopify)
        return body_for(shop.domain, "shpat_not_this_one"), 400, "shopify_unauthorized"
    if case == "wrong client secret":
        shop, _ = new_shop(shopify, access_token=None, client_id="cid-1", client_secret="shpss_right_one")
        return (
            body_for(shop.domain, clientId="cid-1", clientSecret="shpss_wrong_one"),
            400,
            "shopify_unauthorized",
        )
    if case == "client credentials of a token-only shop":
        shop, _ = new_shop(shopify)
        return (
            body_for(shop.domain, clientId="cid-1", clientSecret="shpss_whatever"),
            400,
            "shopify_unauthorized",
        )
    if case == "unknown shop":
        domain = f"nosuch{free_port()}.myshopify.com"
        return body_for(domain, "shpat_whatever"), 400, "shopify_store_not_found"
    if case == "unknown shop, client credentials":
        domain = f"nosuch{free_port()}.myshopify.com"
        return body_for(domain, clientId="cid", clientSecret="shpss_whatever"), 400, "shopify_store_not_found"
    if case == "missing scope":
        shop, token = new_shop(shopify, scopes=("read_products",))
        return body_for(shop.domain, token), 400, "shopify_scopes_missing"
    if case == "no scope":
        shop, token = new_shop(shopify, scopes=())
        return body_for(shop.domain, token), 400, "shopify_scopes_missing"
    if case == "EUR":
        shop, token = new_shop(shopify, currency="EUR")
        return body_for(shop.domain, token), 400, "shopify_currency_unsupported"
    if case == "Shopify down":
        shop, token = new_shop(shopify)
        shopify.status_next(10, 503)
        return body_for(shop.domain, token), 503, "shopify_unavailable"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "wrong token",
        "wrong client secret",
        "client credentials of a token-only shop",
        "unknown shop",
        "unknown shop, client credentials",
        "missing scope",
        "no scope",
        "EUR",
        "Shopify down",
    ],
)
async def test_credentials_shopify_refuses_save_nothing(sclient, db, merchant, shopify, case):
    _, key = merchant
    body, status, code = _refusal(shopify, case)
    response = await sclient.post("/api/shopify/stores", json=body, headers=auth(key))
    out = problem(response, status, code)
    if status == 503:
        assert int(response.headers["retry-after"]) > 0
    for secret in ("accessToken", "clientSecret"):
        if secret in body:
            assert body[secret] not in response.text
    assert "errors" not in out or out["errors"]
    assert await listed(sclient, key) == []
    assert await stored(db, body["slug"]) is None
    problem(
        await sclient.get(f"/api/shopify/stores/{body['slug']}", headers=auth(key)), 404, "store_not_found"
    )


async def test_a_refused_connect_leaves_the_slug_free(sclient, merchant, shopify):
    _, key = merchant
    shop, token = new_shop(shopify)
    shopify.status_next(10, 503)
    body = body_for(shop.domain, token)
    problem(
        await sclient.post("/api/shopify/stores", json=body, headers=auth(key)), 503, "shopify_unavailable"
    )
    shopify.reset()
    assert (await sclient.post("/api/shopify/stores", json=body, headers=auth(key))).status_code == 201


def _bad(case: str, body: dict[str, Any]) -> dict[str, Any]:
    group = {"name": "domestic", "countries": ["US"], "rateUsd": "5.99"}
    world = {"name": "world", "countries": ["*"], "rateUsd": "15.00"}
    changes: dict[str, Any] = {
        "slug A": {"slug": "A"},
        "slug ab": {"slug": "ab"},
        "slug -abc": {"slug": "-abc"},
        "slug abc-": {"slug": "abc-"},
        "slug with _": {"slug": "ab_c"},
        "slug with space": {"slug": "ab c"},
        "slug Upper": {"slug": "Abc"},
        "slug stores": {"slug": "stores"},
        "slug webhooks": {"slug": "webhooks"},
        "slug 65": {"slug": "a" * 65},
        "slug number": {"slug": 123},
        "domain evil.com": {"shopDomain": "evil.com"},
        "domain suffix": {"shopDomain": "x.myshopify.com.evil.com"},
        "domain http": {"shopDomain": "http://x.myshopify.com"},
        "domain path": {"shopDomain": "x.myshopify.com/admin"},
        "domain port": {"shopDomain": "x.myshopify.com:8443"},
        "domain userinfo": {"shopDomain": "evil.com@x.myshopify.com"},
        "domain empty": {"shopDomain": ""},
        "token with spaces": {"accessToken": "shpat abc def"},
        "token with newline": {"accessToken": "shpat_abc\ndef"},
        "token short": {"accessToken": "shpat_1"},
        "client id alone": {"accessToken": None, "clientId": "cid"},
        "unknown field": {"password": "x"},
        "storeName control": {"storeName": "Ada\x00Beans"},
        "storeName blank": {"storeName": "   "},
        "shipping USA": {"shipping": {"groups": [{**group, "countries": ["USA"]}]}},
        "shipping country twice": {"shipping": {"groups": [group, {**world, "countries": ["US", "CA"]}]}},
        "shipping country twice in a group": {"shipping": {"groups": [{**group, "countries": ["US", "us"]}]}},
        "shipping same name": {"shipping": {"groups": [group, {**world, "name": "Domestic"}]}},
        "shipping rate -1": {"shipping": {"groups": [{**group, "rateUsd": -1}]}},
        "shipping rate 1.234": {"shipping": {"groups": [{**group, "rateUsd": "1.234"}]}},
        "shipping rate abc": {"shipping": {"groups": [{**group, "rateUsd": "abc"}]}},
        "shipping rate NaN": {"shipping": {"groups": [{**group, "rateUsd": "NaN"}]}},
        "shipping rate true": {"shipping": {"groups": [{**group, "rateUsd": True}]}},
        "shipping rate huge": {"shipping": {"groups": [{**group, "rateUsd": "100000.01"}]}},
        "shipping free -1": {"shipping": {"groups": [{**group, "freeOverUsd": "-1"}]}},
        "shipping no countries": {"shipping": {"groups": [{**group, "countries": []}]}},
        "shipping no groups": {"shipping": {"groups": []}},
        "shipping 21 groups": {
            "shipping": {
                "groups": [
                    {"name": f"g{n}", "countries": [f"A{chr(65 + n)}"], "rateUsd": "1"} for n in range(21)
                ]
            }
        },
        "shipping group field": {"shipping": {"groups": [{**group, "carrier": "UPS"}]}},
        "shipping rate missing": {"shipping": {"groups": [{"name": "x", "countries": ["US"]}]}},
    }
    out = body | changes[case]
    return {k: v for k, v in out.items() if v is not None}


BAD_CASES = [
    "slug A",
    "slug ab",
    "slug -abc",
    "slug abc-",
    "slug with _",
    "slug with space",
    "slug Upper",
    "slug stores",
    "slug webhooks",
    "slug 65",
    "slug number",
    "domain evil.com",
    "domain suffix",
    "domain http",
    "domain path",
    "domain port",
    "domain userinfo",
    "domain empty",
    "no credentials",
    "token with spaces",
    "token with newline",
    "token short",
    "client id alone",
    "unknown field",
    "storeName control",
    "storeName blank",
    "shipping USA",
    "shipping country twice",
    "shipping country twice in a group",
    "shipping same name",
    "shipping rate -1",
    "shipping rate 1.234",
    "shipping rate abc",
    "shipping rate NaN",
    "shipping rate true",
    "shipping rate huge",
    "shipping free -1",
    "shipping no countries",
    "shipping no groups",
    "shipping 21 groups",
    "shipping group field",
    "shipping rate missing",
]


@pytest.mark.parametrize("case", BAD_CASES)
async def test_bad_store_bodies_are_400_and_ask_shopify_nothing(sclient, merchant, shopify, case):
    _, key = merchant
    shop, token = new_shop(shopify)
    good = body_for(shop.domain, token)
    body = (
        {k: v for k, v in good.items() if k != "accessToken"}
        if case == "no credentials"
        else _bad(case, good)
    )
    response = await sclient.post("/api/shopify/stores", json=body, headers=auth(key))
    out = problem(response, 400, "validation_error")
    assert out["errors"], out
    assert token not in response.text
    assert not shopify.requests and not shopify.token_requests
    assert await listed(sclient, key) == []


async def test_a_taken_slug_is_409_even_for_another_merchant(sclient, merchant, make_merchant, shopify):
    _, key = merchant
    shop, token = new_shop(shopify)
    body = body_for(shop.domain, token)
    assert (await sclient.post("/api/shopify/stores", json=body, headers=auth(key))).status_code == 201
    shopify.reset()
    other_shop, other_token = new_shop(shopify)
    again = body_for(other_shop.domain, other_token, slug=body["slug"])
    problem(await sclient.post("/api/shopify/stores", json=again, headers=auth(key)), 409, "slug_taken")
    _, other_key = await make_merchant()
    problem(await sclient.post("/api/shopify/stores", json=again, headers=auth(other_key)), 409, "slug_taken")
    assert not shopify.requests  # refused before Shopify is asked
    assert await listed(sclient, other_key) == [] and await listed(sclient, key) == [body["slug"]]


async def test_concurrent_connects_of_one_slug_make_one_store(sclient, merchant, make_merchant, shopify):
    _, key = merchant
    _, other_key = await make_merchant()
    slug = f"race-{free_port()}"
    bodies = []
    for owner in (key, other_key, key, other_key):
        shop, token = new_shop(shopify)
        bodies.append((owner, body_for(shop.domain, token, slug=slug)))
    shopify.delay_next(4, 0.3)  # Shopify answers slowly: every connect is past its slug check at once
    answers = await asyncio.gather(
        *(sclient.post("/api/shopify/stores", json=b, headers=auth(k)) for k, b in bodies)
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409], [a.text for a in answers]
    assert all(a.json()["error"] == "slug_taken" for a in answers if a.status_code == 409)


# -- change, remove


async def test_put_changes_shipping_and_name(sclient, merchant, connect):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    shipping = {
        "groups": [{"name": "everywhere", "countries": ["*"], "rateUsd": "7.50", "freeOverUsd": "100"}]
    }
    changed = await sclient.put(
        f"/api/shopify/stores/{slug}",
        json={"storeName": "Ada's Beans", "shipping": shipping},
        headers=auth(key),
    )
    assert changed.status_code == 200, changed.text
    out = changed.json()
    assert out["storeName"] == "Ada's Beans"
    assert out["shipping"] == {
        "groups": [{"name": "everywhere", "countries": ["*"], "rateUsd": "7.50", "freeOverUsd": "100.00"}]
    }
    assert out["auth"] == "access_token" and out["hasWebhookSecret"] is True  # untouched
    assert (await sclient.get(f"/api/shopify/stores/{slug}", headers=auth(key))).json() == out
    catalog = (await sclient.get(f"/api/shopify/{slug}/catalog")).json()
    assert catalog["storeName"] == "Ada's Beans" and catalog["shipping"]["domesticUsd"] == 7.5
    mug = variants(shop)["Mug/Default Title"].legacy_resource_id
    made = await checkout(
        sclient, slug, [{"variantId": mug, "quantity": 1}], headers={"X-Buyer-Location": "DE-BE-1"}
    )
    assert made.json()["shippingUsd"] == 7.5 and made.json()["shippingGroup"] == "everywhere"


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "renamed"},
        {"shopDomain": "other.myshopify.com"},
        {"clientId": "cid"},
        {"clientSecret": "shpss_xxxxxxxx"},
        {"shipping": {"groups": [{"name": "x", "countries": ["USA"], "rateUsd": "1"}]}},
        {"active": "maybe"},
        {"storeName": ""},
    ],
    ids=repr,
)
async def test_bad_changes_are_400(sclient, merchant, connect, body):
    _, key = merchant
    _, store = await connect(key)
    response = await sclient.put(f"/api/shopify/stores/{store['slug']}", json=body, headers=auth(key))
    problem(response, 400, "validation_error")
    after = (await sclient.get(f"/api/shopify/stores/{store['slug']}", headers=auth(key))).json()
    assert after == store


async def test_a_refused_new_token_keeps_the_old_one(sclient, db, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    [old] = shop.tokens
    sealed = (await stored(db, slug)).access_token
    refused = await sclient.put(
        f"/api/shopify/stores/{slug}", json={"accessToken": "shpat_not_valid_here"}, headers=auth(key)
    )
    problem(refused, 400, "shopify_unauthorized")
    assert "shpat_not_valid_here" not in refused.text
    assert (await stored(db, slug)).access_token == sealed
    shopify.status_next(10, 503)
    down = await sclient.put(
        f"/api/shopify/stores/{slug}", json={"accessToken": "shpat_maybe_good"}, headers=auth(key)
    )
    problem(down, 503, "shopify_unavailable")
    shopify.reset()
    catalog = await sclient.get(f"/api/shopify/{slug}/catalog")  # first read: Shopify is asked now
    assert catalog.status_code == 200, catalog.text
    [asked] = [r for r in shopify.requests if r["shop"] == shop.domain]
    assert asked["headers"]["x-shopify-access-token"] == old
    # a new token Shopify accepts replaces the old one
    shop.tokens.add("shpat_the_new_one")
    changed = await sclient.put(
        f"/api/shopify/stores/{slug}", json={"accessToken": "shpat_the_new_one"}, headers=auth(key)
    )
    assert changed.status_code == 200, changed.text
    assert (await stored(db, slug)).access_token != sealed


async def test_another_merchants_store_is_404(sclient, merchant, make_merchant, connect):
    _, key = merchant
    _, store = await connect(key)
    slug = store["slug"]
    _, other_key = await make_merchant()
    url = f"/api/shopify/stores/{slug}"
    problem(await sclient.get(url, headers=auth(other_key)), 404, "store_not_found")
    problem(
        await sclient.put(url, json={"storeName": "Mine now"}, headers=auth(other_key)),
        404,
        "store_not_found",
    )
    problem(await sclient.put(url, json={"active": False}, headers=auth(other_key)), 404, "store_not_found")
    problem(await sclient.delete(url, headers=auth(other_key)), 404, "store_not_found")
    problem(await sclient.get(f"{url}/orders", headers=auth(other_key)), 404, "store_not_found")
    assert await listed(sclient, other_key) == []
    mine = await sclient.get(url, headers=auth(key))
    assert mine.status_code == 200 and mine.json() == store
    missing = "/api/shopify/stores/no-such-store"
    problem(await sclient.get(missing, headers=auth(key)), 404, "store_not_found")
    problem(await sclient.put(missing, json={"active": False}, headers=auth(key)), 404, "store_not_found")
    problem(await sclient.delete(missing, headers=auth(key)), 404, "store_not_found")
    problem(await sclient.get(f"{missing}/orders", headers=auth(key)), 404, "store_not_found")


async def test_delete_a_store_without_orders(sclient, db, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    assert (await sclient.get(f"/api/shopify/{slug}/catalog")).status_code == 200  # a cached catalog
    sent = await shopify.send_webhook(
        f"{sclient.base_url}/api/shopify/{slug}/webhooks", shop, "shop/update", {}, secret=SECRET
    )
    assert sent.status_code == 200  # and a webhook receipt
    gone = await sclient.delete(f"/api/shopify/stores/{slug}", headers=auth(key))
    assert gone.status_code == 204 and gone.content == b""
    problem(await sclient.get(f"/api/shopify/stores/{slug}", headers=auth(key)), 404, "store_not_found")
    problem(await sclient.delete(f"/api/shopify/stores/{slug}", headers=auth(key)), 404, "store_not_found")
    problem(await sclient.get(f"/api/shopify/{slug}/catalog"), 404, "store_not_found")
    assert await listed(sclient, key) == [] and await stored(db, slug) is None
    # the slug is free again
    again = await sclient.post(
        "/api/shopify/stores", json=body_for(shop.domain, next(iter(shop.tokens))), headers=auth(key)
    )
    assert again.status_code == 201, again.text


async def test_a_deleted_stores_catalog_is_gone_at_once(sclient, merchant, connect):
    _, key = merchant
    _, store = await connect(key)
    slug = store["slug"]
    assert (await sclient.get(f"/api/shopify/{slug}/catalog")).status_code == 200
    assert (await sclient.delete(f"/api/shopify/stores/{slug}", headers=auth(key))).status_code == 204
    problem(await sclient.get(f"/api/shopify/{slug}/catalog"), 404, "store_not_found")


async def test_a_store_with_orders_is_kept(sclient, merchant, connect):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"].legacy_resource_id
    await checkout(sclient, slug, [{"variantId": mug, "quantity": 1}])  # an order, even unpaid
    kept = await sclient.delete(f"/api/shopify/stores/{slug}", headers=auth(key))
    assert "active" in problem(kept, 409, "store_has_orders")["detail"]
    assert (await sclient.get(f"/api/shopify/stores/{slug}", headers=auth(key))).status_code == 200
    assert (await sclient.get(f"/api/shopify/{slug}/catalog")).status_code == 200


# -- orders


async def test_orders_are_listed_newest_first_without_claim_tokens(sclient, merchant, connect):
    _, key = merchant
    shop, store = await connect(key)
    slug = store["slug"]
    mug = variants(shop)["Mug/Default Title"].legacy_resource_id
    first = (await checkout(sclient, slug, [{"variantId": mug, "quantity": 1}])).json()
    await pay(sclient, first["invoice"])
    assert (await claim(sclient, slug, first["claimToken"])).status_code == 200
    second = (await checkout(sclient, slug, [{"variantId": mug, "quantity": 2}])).json()
    third = (await checkout(sclient, slug, [{"variantId": mug, "quantity": 3}])).json()
    await pay(sclient, third["invoice"])
    for _ in range(100):  # the settlement is seen by the gateway's poller
        response = await sclient.get(f"/api/shopify/stores/{slug}/orders", headers=auth(key))
        assert response.status_code == 200, response.text
        if response.json()["items"][0]["status"] == "paid":
            break
        await asyncio.sleep(0.05)
    out = response.json()
    assert (out["limit"], out["offset"]) == (50, 0)
    items = out["items"]
    assert [i["orderId"] for i in items] == [third["orderId"], second["orderId"], first["orderId"]]
    assert [i["status"] for i in items] == ["paid", "pending_payment", "ordered"]
    assert items[2]["shopifyOrderNumber"] == shop.orders[0].name and items[2]["email"] == "ada@example.com"
    assert [i["totalUsd"] for i in items] == [41.99, 29.99, 17.99]
    assert all(i["invoiceId"] for i in items)
    for token in (first["claimToken"], second["claimToken"], third["claimToken"]):
        assert token not in response.text
    assert "claimToken" not in response.text and "claim_token" not in response.text
    page = await sclient.get(f"/api/shopify/stores/{slug}/orders?limit=1&offset=1", headers=auth(key))
    assert [i["orderId"] for i in page.json()["items"]] == [second["orderId"]]
    for query in ("limit=0", "limit=201", "offset=-1", "limit=x"):
        problem(
            await sclient.get(f"/api/shopify/stores/{slug}/orders?{query}", headers=auth(key)),
            400,
            "validation_error",
        )


# -- API key


ROUTES = [
    ("POST", "/api/shopify/stores"),
    ("GET", "/api/shopify/stores"),
    ("GET", "/api/shopify/stores/{slug}"),
    ("PUT", "/api/shopify/stores/{slug}"),
    ("DELETE", "/api/shopify/stores/{slug}"),
    ("GET", "/api/shopify/stores/{slug}/orders"),
    ("GET", "/api/stats/shopify"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_merchant_routes_need_an_api_key(sclient, merchant, connect, method, path):
    _, key = merchant
    _, store = await connect(key)
    url = path.format(slug=store["slug"])
    body = {"storeName": "x"} if method in ("POST", "PUT") else None
    problem(await sclient.request(method, url, json=body), 401, "missing_api_key")
    wrong = auth("le_live_" + "x" * 40)
    problem(await sclient.request(method, url, json=body, headers=wrong), 401, "invalid_api_key")
    assert (await sclient.get(f"/api/shopify/stores/{store['slug']}", headers=auth(key))).json() == store
