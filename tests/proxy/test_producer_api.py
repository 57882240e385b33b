"""The paid proxy's producer API over real HTTP: proxies, priced endpoints, manifest settings,
retirement, tenant isolation, refused input and the usage and revenue figures.

Every test creates its own merchant (the database is shared by the session), and checks what the
gateway did through the API and through the paid URL ``/l402/proxy/{proxyId}/…`` itself: a 402's
``priceSats`` says which price a path costs, a free path reaches the loopback upstream.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.helpers import auth

PROBLEM = "application/problem+json"
PROXY_ID = re.compile(r"^prx_[0-9A-Za-z]{20}$")
L402_CHALLENGE = re.compile(r'^L402 macaroon="([^"]+)", invoice="([^"]+)"$')
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")

PROXY_FIELDS = {
    "proxyId",
    "name",
    "description",
    "targetBaseUrl",
    "defaultPriceSats",
    "proxyUrl",
    "tokenTtlSeconds",
    "maxCallsPerToken",
    "manifestEnabled",
    "manifestPubliclyListed",
    "serviceDescription",
    "categories",
    "documentationUrl",
    "manifestUrl",
    "openApiUrl",
    "retired",
    "retiredAt",
    "retireReason",
    "endpoints",
    "createdAt",
    "updatedAt",
}
ENDPOINT_FIELDS = {
    "endpointId",
    "path",
    "httpMethod",
    "basePriceSats",
    "summary",
    "description",
    "tags",
    "paidUrl",
    "createdAt",
    "updatedAt",
}
FORECAST = {
    "endpointId": "forecast",
    "path": "/forecast/{city}",
    "httpMethod": "GET",
    "basePriceSats": 7,
    "summary": "City forecast",
}


def problem(response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and stable code (and ``errors`` naming ``field``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert next(iter(body)) == "error"
    assert body["error"] == code, body
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert body["message"] == body["detail"] and body["detail"]
    if field is not None:
        assert field in body["errors"], body
        assert all(isinstance(m, str) and m for m in body["errors"][field])
    return body


async def proxies_of(http, key: str) -> list[dict[str, Any]]:
    listed = await http.get("/api/proxy", headers=auth(key))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"items", "total"} and body["total"] == len(body["items"])
    return body["items"]


async def get_proxy(http, key: str, proxy_id: str) -> dict[str, Any]:
    got = await http.get(f"/api/proxy/{proxy_id}", headers=auth(key))
    assert got.status_code == 200, got.text
    return got.json()


async def endpoints_of(http, key: str, proxy_id: str) -> list[dict[str, Any]]:
    listed = await http.get(f"/api/proxy/{proxy_id}/manifest/endpoints", headers=auth(key))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == len(body["items"])
    return body["items"]


async def price_of(http, path: str, method: str = "GET") -> int:
    """What an unpaid request to the paid URL ``path`` is asked to pay (the 402's ``priceSats``)."""
    response = await http.request(method, path)
    assert response.status_code == 402, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return int(response.json()["priceSats"])


async def unpaid(http, path: str) -> tuple[str, str]:
    """Call the paid URL without credentials: (macaroon, invoice) of its first WWW-Authenticate."""
    response = await http.get(path)
    assert response.status_code == 402, response.text
    found = L402_CHALLENGE.match(response.headers.get_list("www-authenticate")[0])
    assert found, response.headers.get_list("www-authenticate")
    return found.group(1), found.group(2)


async def pay(http, invoice: str) -> str:
    paid = await http.post("/api/dev/pay", json={"invoice": invoice})
    assert paid.status_code == 200 and paid.json()["status"] == "settled", paid.text
    return str(paid.json()["preimage"])


# --- create, list, get -----------------------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_documented_fields(pclient, upstream, merchant):
    _, key = merchant
    body = {
        "name": "Weather API",
        "targetBaseUrl": upstream.base_url + "/v1/",
        "defaultPriceSats": 5,
        "description": "internal note",
    }
    created = await pclient.post("/api/proxy", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    proxy = created.json()
    proxy_id = proxy["proxyId"]
    assert PROXY_ID.match(proxy_id)
    assert created.headers["location"] == f"/api/proxy/{proxy_id}"
    assert set(proxy) == PROXY_FIELDS
    assert proxy["name"] == "Weather API" and proxy["description"] == "internal note"
    assert proxy["targetBaseUrl"] == upstream.base_url + "/v1"  # stored without the trailing slash
    assert proxy["defaultPriceSats"] == 5
    assert proxy["proxyUrl"] == f"/l402/proxy/{proxy_id}"  # relative: clients prepend their base
    assert proxy["manifestUrl"] == f"/l402/proxy/{proxy_id}/.well-known/l402-manifest.json"
    assert proxy["openApiUrl"] == f"/l402/proxy/{proxy_id}/openapi.json"
    assert (proxy["tokenTtlSeconds"], proxy["maxCallsPerToken"]) == (None, None)
    assert (proxy["manifestEnabled"], proxy["manifestPubliclyListed"]) == (True, False)
    assert (proxy["serviceDescription"], proxy["categories"], proxy["documentationUrl"]) == (None, [], None)
    assert proxy["retired"] is False and proxy["endpoints"] == []
    assert (proxy["retiredAt"], proxy["retireReason"]) == (None, None)
    assert RFC3339.match(proxy["createdAt"]) and RFC3339.match(proxy["updatedAt"])

    assert await get_proxy(pclient, key, proxy_id) == proxy
    assert (await pclient.get(created.headers["location"], headers=auth(key))).json() == proxy
    assert await proxies_of(pclient, key) == [proxy]
    # the paid URL is live at once, at the default price
    assert await price_of(pclient, f"/l402/proxy/{proxy_id}/anything") == 5


async def test_list_shows_every_proxy_of_the_merchant_with_its_endpoints(pclient, merchant, make_proxy):
    _, key = merchant
    first = await make_proxy(key, name="One", endpoints=[FORECAST])
    second = await make_proxy(key, name="Two", defaultPriceSats=0)
    items = await proxies_of(pclient, key)
    assert {p["proxyId"] for p in items} == {first["proxyId"], second["proxyId"]}
    by_id = {p["proxyId"]: p for p in items}
    assert [e["endpointId"] for e in by_id[first["proxyId"]]["endpoints"]] == ["forecast"]
    assert by_id[second["proxyId"]]["endpoints"] == [] and by_id[second["proxyId"]]["defaultPriceSats"] == 0
    assert await get_proxy(pclient, key, first["proxyId"]) == by_id[first["proxyId"]]


# --- update ----------------------------------------------------------------------------------------


async def test_put_with_only_a_name_renames_and_changes_nothing_else(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(
        key, description="keep me", tokenTtlSeconds=600, maxCallsPerToken=9, endpoints=[FORECAST]
    )
    before = await get_proxy(pclient, key, proxy["proxyId"])
    renamed = await pclient.put(f"/api/proxy/{proxy['proxyId']}", json={"name": "Renamed"}, headers=auth(key))
    assert renamed.status_code == 200, renamed.text
    after = renamed.json()
    assert after["name"] == "Renamed"
    unchanged = PROXY_FIELDS - {"name", "updatedAt"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert after["updatedAt"] >= before["updatedAt"]
    assert await get_proxy(pclient, key, proxy["proxyId"]) == after
    assert await price_of(pclient, f"/l402/proxy/{proxy['proxyId']}/forecast/paris") == 7


async def test_put_changes_target_prices_token_rules_and_null_clears(pclient, upstream, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, description="to be cleared", tokenTtlSeconds=600, maxCallsPerToken=9)
    proxy_id = proxy["proxyId"]
    assert await price_of(pclient, f"/l402/proxy/{proxy_id}/x") == 5
    changes = {
        "targetBaseUrl": upstream.base_url + "/v2",
        "defaultPriceSats": 9,
        "tokenTtlSeconds": 3600,
        "maxCallsPerToken": 2,
        "description": None,
    }
    updated = await pclient.put(f"/api/proxy/{proxy_id}", json=changes, headers=auth(key))
    assert updated.status_code == 200, updated.text
    after = updated.json()
    assert {k: after[k] for k in changes} == changes
    assert after["name"] == proxy["name"]
    assert await get_proxy(pclient, key, proxy_id) == after
    assert await price_of(pclient, f"/l402/proxy/{proxy_id}/x") == 9  # the paid URL sees it at once

    # null clears the optional token rules; a proxy with a free default forwards to the new target
    cleared = await pclient.put(
        f"/api/proxy/{proxy_id}",
        json={"tokenTtlSeconds": None, "maxCallsPerToken": None, "defaultPriceSats": 0},
        headers=auth(key),
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["tokenTtlSeconds"], cleared.json()["maxCallsPerToken"]) == (None, None)
    echoed = await pclient.get(f"/l402/proxy/{proxy_id}/forecast?days=2")
    assert echoed.status_code == 200, echoed.text
    assert (echoed.json()["path"], echoed.json()["query"]) == ("/v2/forecast", "days=2")


async def test_max_calls_per_token_limits_a_paid_token(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=4)
    put = await pclient.put(f"/api/proxy/{proxy['proxyId']}", json={"maxCallsPerToken": 2}, headers=auth(key))
    assert put.status_code == 200, put.text
    url = f"/l402/proxy/{proxy['proxyId']}/data"
    macaroon, invoice = await unpaid(pclient, url)
    token = {"authorization": f"L402 {macaroon}:{await pay(pclient, invoice)}"}
    assert [(await pclient.get(url, headers=token)).status_code for _ in range(3)] == [200, 200, 402]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"name": None}, "validation_error", "name"),
        ({"name": ""}, "validation_error", "name"),
        ({"targetBaseUrl": None}, "validation_error", "targetBaseUrl"),
        ({"targetBaseUrl": "ftp://x"}, "invalid_target_url", "targetBaseUrl"),
        ({"targetBaseUrl": "https://u:p@example.com"}, "invalid_target_url", "targetBaseUrl"),
        ({"targetBaseUrl": "http://10.0.0.1"}, "target_not_allowed", "targetBaseUrl"),
        ({"defaultPriceSats": None}, "validation_error", "defaultPriceSats"),
        ({"defaultPriceSats": -1}, "validation_error", "defaultPriceSats"),
        ({"defaultPriceSats": "9"}, "validation_error", "defaultPriceSats"),
        ({"tokenTtlSeconds": 59}, "validation_error", "tokenTtlSeconds"),
        ({"maxCallsPerToken": 0}, "validation_error", "maxCallsPerToken"),
    ],
)
async def test_bad_put_is_refused_and_changes_nothing(pclient, merchant, make_proxy, body, code, field):
    _, key = merchant
    proxy = await make_proxy(key, description="kept")
    before = await get_proxy(pclient, key, proxy["proxyId"])
    refused = await pclient.put(
        f"/api/proxy/{proxy['proxyId']}", json={"name": "Not Applied", **body}, headers=auth(key)
    )
    problem(refused, 400, code, field)
    assert await get_proxy(pclient, key, proxy["proxyId"]) == before


# --- delete ----------------------------------------------------------------------------------------


async def test_delete_answers_204_then_the_proxy_and_its_paid_url_are_404(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    proxy_id = proxy["proxyId"]
    assert await price_of(pclient, f"/l402/proxy/{proxy_id}/forecast/rome") == 7  # now in the cache
    deleted = await pclient.delete(f"/api/proxy/{proxy_id}", headers=auth(key))
    assert deleted.status_code == 204 and deleted.content == b""
    problem(await pclient.get(f"/api/proxy/{proxy_id}", headers=auth(key)), 404, "proxy_not_found")
    problem(await pclient.get(f"/l402/proxy/{proxy_id}/x"), 404, "proxy_not_found")
    problem(await pclient.get(f"/l402/proxy/{proxy_id}/forecast/rome"), 404, "proxy_not_found")
    problem(
        await pclient.get(f"/l402/proxy/{proxy_id}/.well-known/l402-manifest.json"), 404, "proxy_not_found"
    )
    problem(await pclient.delete(f"/api/proxy/{proxy_id}", headers=auth(key)), 404, "proxy_not_found")
    problem(
        await pclient.get(f"/api/proxy/{proxy_id}/manifest/endpoints", headers=auth(key)),
        404,
        "proxy_not_found",
    )
    assert await proxies_of(pclient, key) == []


# --- tenant isolation ------------------------------------------------------------------------------


async def test_another_merchant_cannot_see_or_touch_my_proxy(pclient, merchant, make_merchant, make_proxy):
    _, key = merchant
    _, other = await make_merchant("Intruder")
    mine = await make_proxy(key, endpoints=[FORECAST])
    await make_proxy(other, name="Theirs")
    settings = {"manifestPubliclyListed": True, "serviceDescription": "theirs now"}
    before = await get_proxy(pclient, key, mine["proxyId"])
    base = f"/api/proxy/{mine['proxyId']}"
    attempts = [
        ("GET", base, None),
        ("PUT", base, {"name": "Hijacked", "defaultPriceSats": 0}),
        ("DELETE", base, None),
        ("GET", base + "/manifest/endpoints", None),
        ("POST", base + "/manifest/endpoints", {**FORECAST, "endpointId": "theirs", "path": "/theirs"}),
        ("PUT", base + "/manifest/endpoints/forecast", {"basePriceSats": 0}),
        ("DELETE", base + "/manifest/endpoints/forecast", None),
        ("GET", base + "/manifest/settings", None),
        ("PUT", base + "/manifest/settings", settings),
        ("POST", base + "/unpublish", {"reason": "not yours"}),
        ("GET", base + "/stats", None),
    ]
    for method, url, body in attempts:
        response = await pclient.request(method, url, json=body, headers=auth(other))
        problem(response, 404, "proxy_not_found")
    assert [p["name"] for p in await proxies_of(pclient, other)] == ["Theirs"]
    assert await get_proxy(pclient, key, mine["proxyId"]) == before
    assert [e["basePriceSats"] for e in await endpoints_of(pclient, key, mine["proxyId"])] == [7]
    assert await price_of(pclient, f"/l402/proxy/{mine['proxyId']}/forecast/oslo") == 7


# --- priced endpoints ------------------------------------------------------------------------------


async def test_endpoint_create_is_201_then_idempotent_and_conflicts_are_409(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    url = f"/api/proxy/{proxy['proxyId']}/manifest/endpoints"
    created = await pclient.post(url, json=FORECAST, headers=auth(key))
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert set(endpoint) == ENDPOINT_FIELDS
    assert {k: endpoint[k] for k in FORECAST} == FORECAST
    assert (endpoint["description"], endpoint["tags"]) == (None, [])
    assert endpoint["paidUrl"] == f"/l402/proxy/{proxy['proxyId']}/forecast/{{city}}"
    assert RFC3339.match(endpoint["createdAt"])

    again = await pclient.post(url, json=FORECAST, headers=auth(key))
    assert again.status_code == 200 and again.json() == endpoint  # the same body: a no-op
    # ... and documented as such (tests/fuzz found the 200 missing from /openapi.json)
    operation = (await pclient.get("/openapi.json")).json()["paths"][
        "/api/proxy/{proxy_id}/manifest/endpoints"
    ]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/boltgate__proxy__schemas__EndpointOut"
    }

    changed = await pclient.post(url, json={**FORECAST, "basePriceSats": 8}, headers=auth(key))
    problem(changed, 409, "endpoint_exists")
    clash = {**FORECAST, "endpointId": "forecast2", "path": "/forecast/{town}"}
    problem(await pclient.post(url, json=clash, headers=auth(key)), 409, "endpoint_conflict")
    same_path = {**FORECAST, "endpointId": "forecast3"}
    problem(await pclient.post(url, json=same_path, headers=auth(key)), 409, "endpoint_conflict")
    # another method on the same shape is a different endpoint
    post = {**FORECAST, "endpointId": "forecast-post", "httpMethod": "post", "basePriceSats": 12}
    posted = await pclient.post(url, json=post, headers=auth(key))
    assert posted.status_code == 201 and posted.json()["httpMethod"] == "POST", posted.text

    assert [e["endpointId"] for e in await endpoints_of(pclient, key, proxy["proxyId"])] == [
        "forecast",
        "forecast-post",
    ]
    paid = f"/l402/proxy/{proxy['proxyId']}/forecast/paris"
    assert await price_of(pclient, paid) == 7
    assert await price_of(pclient, paid, "POST") == 12
    assert await price_of(pclient, f"/l402/proxy/{proxy['proxyId']}/forecast") == 5  # no {city}: default


async def test_endpoint_create_with_another_description_is_not_a_repeat(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[{**FORECAST, "description": "first"}])
    url = f"/api/proxy/{proxy['proxyId']}/manifest/endpoints"
    again = await pclient.post(url, json={**FORECAST, "description": "second"}, headers=auth(key))
    problem(again, 409, "endpoint_exists")


async def test_endpoint_put_changes_the_price_and_delete_falls_back_to_the_default(
    pclient, merchant, make_proxy
):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    base = f"/api/proxy/{proxy['proxyId']}/manifest/endpoints/forecast"
    paid = f"/l402/proxy/{proxy['proxyId']}/forecast/paris"
    assert await price_of(pclient, paid) == 7
    updated = await pclient.put(base, json={"basePriceSats": 11}, headers=auth(key))
    assert updated.status_code == 200, updated.text
    assert updated.json()["basePriceSats"] == 11
    assert {k: updated.json()[k] for k in ("path", "httpMethod", "summary")} == {
        "path": "/forecast/{city}",
        "httpMethod": "GET",
        "summary": "City forecast",
    }
    assert [e["basePriceSats"] for e in await endpoints_of(pclient, key, proxy["proxyId"])] == [11]
    assert await price_of(pclient, paid) == 11

    deleted = await pclient.delete(base, headers=auth(key))
    assert deleted.status_code == 204 and deleted.content == b""
    assert await endpoints_of(pclient, key, proxy["proxyId"]) == []
    assert await price_of(pclient, paid) == 5  # the proxy's default price
    problem(await pclient.delete(base, headers=auth(key)), 404, "endpoint_not_found")
    problem(await pclient.put(base, json={"basePriceSats": 1}, headers=auth(key)), 404, "endpoint_not_found")


async def test_endpoint_put_onto_another_endpoints_pattern_is_a_409(pclient, merchant, make_proxy):
    _, key = merchant
    second = {**FORECAST, "endpointId": "news", "path": "/news", "basePriceSats": 2}
    proxy = await make_proxy(key, endpoints=[FORECAST, second])
    base = f"/api/proxy/{proxy['proxyId']}/manifest/endpoints"
    shape = await pclient.put(base + "/news", json={"path": "/forecast/{town}"}, headers=auth(key))
    problem(shape, 409, "endpoint_conflict")
    exact = await pclient.put(base + "/news", json={"path": "/forecast/{city}"}, headers=auth(key))
    problem(exact, 409, "endpoint_conflict")
    assert [e["path"] for e in await endpoints_of(pclient, key, proxy["proxyId"])] == [
        "/forecast/{city}",
        "/news",
    ]
    assert await price_of(pclient, f"/l402/proxy/{proxy['proxyId']}/news") == 2


async def test_a_free_endpoint_passes_through_to_the_upstream(pclient, upstream, merchant, make_proxy):
    _, key = merchant
    free = {"endpointId": "health", "path": "/health/{part}", "httpMethod": "GET", "basePriceSats": 0}
    proxy = await make_proxy(key, endpoints=[free])
    response = await pclient.get(f"/l402/proxy/{proxy['proxyId']}/health/db?verbose=1")
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers
    echo = response.json()
    assert (echo["method"], echo["path"], echo["query"]) == ("GET", "/health/db", "verbose=1")
    headers = {name for name, _ in echo["headers"]}
    assert "x-api-key" not in headers and "authorization" not in headers
    assert await price_of(pclient, f"/l402/proxy/{proxy['proxyId']}/health/db", "POST") == 5  # GET only


# --- manifest settings -----------------------------------------------------------------------------


async def test_manifest_settings_put_and_get(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    proxy_id = proxy["proxyId"]
    url = f"/api/proxy/{proxy_id}/manifest/settings"
    body = {
        "manifestEnabled": True,
        "manifestPubliclyListed": True,
        "serviceDescription": "Forecasts for agents",
        "categories": ["Weather", " data ", "weather"],
    }
    put = await pclient.put(url, json=body, headers=auth(key))
    assert put.status_code == 200, put.text
    expected = {
        "proxyId": proxy_id,
        "manifestEnabled": True,
        "manifestPubliclyListed": True,
        "serviceDescription": "Forecasts for agents",
        "categories": ["Weather", "data"],  # trimmed, duplicates (in any case) dropped
        "documentationUrl": None,
        "manifestUrl": f"/l402/proxy/{proxy_id}/.well-known/l402-manifest.json",  # relative
    }
    assert put.json() == expected
    got = await pclient.get(url, headers=auth(key))
    assert got.status_code == 200 and got.json() == expected
    whole = await get_proxy(pclient, key, proxy_id)
    assert {k: whole[k] for k in expected if k != "proxyId"} == {
        k: v for k, v in expected.items() if k != "proxyId"
    }

    partial = await pclient.put(url, json={"manifestPubliclyListed": False}, headers=auth(key))
    assert partial.status_code == 200
    assert partial.json() == {**expected, "manifestPubliclyListed": False}
    cleared = await pclient.put(
        url,
        json={"serviceDescription": None, "categories": [], "documentationUrl": "https://docs.example.com/w"},
        headers=auth(key),
    )
    assert cleared.json() == {
        **expected,
        "manifestPubliclyListed": False,
        "serviceDescription": None,
        "categories": [],
        "documentationUrl": "https://docs.example.com/w",
    }


# --- unpublish -------------------------------------------------------------------------------------


async def test_unpublish_retires_the_proxy_idempotently(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    proxy_id = proxy["proxyId"]
    settings = f"/api/proxy/{proxy_id}/manifest/settings"
    listed = await pclient.put(settings, json={"manifestPubliclyListed": True}, headers=auth(key))
    assert listed.status_code == 200
    registry = f"/api/manifests/registry?q={proxy_id}"
    assert await price_of(pclient, f"/l402/proxy/{proxy_id}/forecast/paris") == 7

    first = await pclient.post(
        f"/api/proxy/{proxy_id}/unpublish", json={"reason": "moving"}, headers=auth(key)
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"proxyId": proxy_id, "retired": True, "alreadyRetired": False}
    again = await pclient.post(
        f"/api/proxy/{proxy_id}/unpublish", json={"reason": "other"}, headers=auth(key)
    )
    assert again.json() == {"proxyId": proxy_id, "retired": True, "alreadyRetired": True}

    retired = await get_proxy(pclient, key, proxy_id)
    assert retired["retired"] is True and RFC3339.match(retired["retiredAt"])
    assert retired["retireReason"] == "moving"  # the first reason stays
    assert retired["manifestPubliclyListed"] is False

    gone = problem(await pclient.get(f"/l402/proxy/{proxy_id}/forecast/paris"), 410, "proxy_retired")
    assert "moving" in gone["detail"]
    problem(await pclient.post(f"/l402/proxy/{proxy_id}/anything"), 410, "proxy_retired")
    problem(await pclient.get(f"/l402/proxy/{proxy_id}/.well-known/l402-manifest.json"), 410, "proxy_retired")
    problem(await pclient.get(f"/l402/proxy/{proxy_id}/openapi.json"), 410, "proxy_retired")
    assert (await pclient.get(registry)).json()["total"] == 0

    relist = await pclient.put(settings, json={"manifestPubliclyListed": True}, headers=auth(key))
    problem(relist, 410, "proxy_retired")
    assert (await pclient.get(settings, headers=auth(key))).json()["manifestPubliclyListed"] is False
    assert (await pclient.get(registry)).json()["total"] == 0
    # the owner still sees and may delete it
    assert proxy_id in {p["proxyId"] for p in await proxies_of(pclient, key)}
    assert (await pclient.delete(f"/api/proxy/{proxy_id}", headers=auth(key))).status_code == 204


@pytest.mark.parametrize(
    "send",
    [
        {"json": {}},
        {"content": b"", "headers": {"content-type": "application/json"}},
        {},  # no body and no content type at all
    ],
    ids=["empty-object", "empty-body", "no-body"],
)
async def test_unpublish_without_a_reason(pclient, merchant, make_proxy, send):
    _, key = merchant
    proxy = await make_proxy(key)
    headers = {**auth(key), **send.pop("headers", {})}
    response = await pclient.post(f"/api/proxy/{proxy['proxyId']}/unpublish", headers=headers, **send)
    assert response.status_code == 200, response.text
    assert response.json() == {"proxyId": proxy["proxyId"], "retired": True, "alreadyRetired": False}
    after = await get_proxy(pclient, key, proxy["proxyId"])
    assert (after["retired"], after["retireReason"]) == (True, None)
    problem(await pclient.get(f"/l402/proxy/{proxy['proxyId']}/x"), 410, "proxy_retired")


async def test_unpublish_of_an_unknown_proxy_is_404(pclient, merchant):
    _, key = merchant
    response = await pclient.post("/api/proxy/prx_00000000000000000000/unpublish", json={}, headers=auth(key))
    problem(response, 404, "proxy_not_found")


# --- refused input: nothing is stored --------------------------------------------------------------


def _create(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Weather API",
        "targetBaseUrl": "https://api.example.com",
        "defaultPriceSats": 5,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (_create(name=...), "validation_error", "name"),
        (_create(name=""), "validation_error", "name"),
        (_create(name="   "), "validation_error", "name"),
        (_create(name="a\x00b"), "validation_error", "name"),
        (_create(name="x" * 201), "validation_error", "name"),
        (_create(targetBaseUrl=...), "validation_error", "targetBaseUrl"),
        (_create(targetBaseUrl="ftp://x"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="javascript:alert(1)"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="http://"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="api.example.com"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="https://u:p@api.example.com"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="https://user@api.example.com"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="https://api.example.com/v1?key=1"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="https://api.example.com/v1?"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="https://api.example.com/v1#top"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="https://api.example.com:99999"), "invalid_target_url", "targetBaseUrl"),
        (_create(targetBaseUrl="http://10.0.0.1"), "target_not_allowed", "targetBaseUrl"),
        (_create(targetBaseUrl="http://10.0.0.1:8080/api"), "target_not_allowed", "targetBaseUrl"),
        (_create(targetBaseUrl="http://169.254.169.254"), "target_not_allowed", "targetBaseUrl"),
        (_create(targetBaseUrl="http://[::1]:8080"), "target_not_allowed", "targetBaseUrl"),
        (_create(defaultPriceSats=...), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats=-1), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats="5"), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats=5.5), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats=5.0), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats=100_000_001), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats=True), "validation_error", "defaultPriceSats"),
        (_create(defaultPriceSats=None), "validation_error", "defaultPriceSats"),
        (_create(tokenTtlSeconds=59), "validation_error", "tokenTtlSeconds"),
        (_create(tokenTtlSeconds="600"), "validation_error", "tokenTtlSeconds"),
        (_create(maxCallsPerToken=0), "validation_error", "maxCallsPerToken"),
        (_create(description="bad\x00text"), "validation_error", "description"),
    ],
)
async def test_bad_proxy_is_refused_with_a_stable_code_and_nothing_is_stored(
    pclient, merchant, body, code, field
):
    # proxy_gateway allows 127.0.0.1 only: other private addresses stay refused
    _, key = merchant
    problem(await pclient.post("/api/proxy", json=body, headers=auth(key)), 400, code, field)
    assert await proxies_of(pclient, key) == []


async def test_the_largest_price_and_the_allowed_loopback_are_accepted(pclient, upstream, merchant):
    _, key = merchant
    for target in (upstream.base_url, f"http://localhost:{upstream.port}"):
        body = _create(targetBaseUrl=target, defaultPriceSats=100_000_000)
        created = await pclient.post("/api/proxy", json=body, headers=auth(key))
        assert created.status_code == 201, created.text
        assert created.json()["defaultPriceSats"] == 100_000_000
    assert len(await proxies_of(pclient, key)) == 2


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:1",
        "http://127.0.0.1",
        "http://10.0.0.1",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080",
        "http://api.localhost",
        "http://192.168.1.1",
        "http://[::1]",
        "http://[::ffff:127.0.0.1]",
    ],
)
async def test_the_default_gateway_refuses_private_targets(client, merchant, target):
    _, key = merchant
    response = await client.post("/api/proxy", json=_create(targetBaseUrl=target), headers=auth(key))
    problem(response, 400, "target_not_allowed", "targetBaseUrl")
    assert await proxies_of(client, key) == []


async def test_a_private_target_is_refused_on_update_too(client, merchant):
    _, key = merchant
    created = await client.post("/api/proxy", json=_create(), headers=auth(key))
    assert created.status_code == 201, created.text
    proxy_id = created.json()["proxyId"]
    refused = await client.put(
        f"/api/proxy/{proxy_id}", json={"targetBaseUrl": "http://127.0.0.1:8080"}, headers=auth(key)
    )
    problem(refused, 400, "target_not_allowed", "targetBaseUrl")
    assert (await get_proxy(client, key, proxy_id))["targetBaseUrl"] == "https://api.example.com"


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "localhost", "app.localhost"])
async def test_numeric_and_local_forms_of_loopback_are_refused_when_saved(client, upstream, merchant, host):
    # short and numeric IPv4 forms are addresses too (resolvers accept them); the connect-time
    # guard would refuse them anyway, but the producer hears it at once
    _, key = merchant
    body = _create(targetBaseUrl=f"http://{host}:{upstream.port}", defaultPriceSats=0)
    problem(
        await client.post("/api/proxy", json=body, headers=auth(key)),
        400,
        "target_not_allowed",
        "targetBaseUrl",
    )


@pytest.mark.parametrize("target", ["{upstream}/a\\b", "http://api.example.com\\x"])
async def test_a_target_the_forwarder_cannot_use_is_refused_when_saved(pclient, upstream, merchant, target):
    _, key = merchant
    body = _create(targetBaseUrl=target.format(upstream=upstream.base_url), defaultPriceSats=0)
    response = await pclient.post("/api/proxy", json=body, headers=auth(key))
    if response.status_code == 201:  # what happens today: a proxy that can never forward
        forwarded = await pclient.get(f"/l402/proxy/{response.json()['proxyId']}/x")
        problem(forwarded, 502, "invalid_target")
    problem(response, 400, "invalid_target_url", "targetBaseUrl")
    assert await proxies_of(pclient, key) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"path": "forecast"}, "path"),
        ({"path": "/a{b}"}, "path"),
        ({"path": "/*/x"}, "path"),
        ({"path": "/{1x}"}, "path"),
        ({"path": "/a//b"}, "path"),
        ({"path": "/a/../b"}, "path"),
        ({"path": "/{x}/{x}"}, "path"),
        ({"path": ""}, "path"),
        ({"httpMethod": "FETCH"}, "httpMethod"),
        ({"httpMethod": ""}, "httpMethod"),
        ({"endpointId": "has space"}, "endpointId"),
        ({"endpointId": "x" * 65}, "endpointId"),
        ({"endpointId": "-leading"}, "endpointId"),
        ({"endpointId": ""}, "endpointId"),
        ({"basePriceSats": -1}, "basePriceSats"),
        ({"basePriceSats": "5"}, "basePriceSats"),
        ({"basePriceSats": 1.5}, "basePriceSats"),
        ({"basePriceSats": False}, "basePriceSats"),
        ({"basePriceSats": 100_000_001}, "basePriceSats"),
        ({"summary": "line\nbreak"}, "summary"),
        ({"tags": ["ok", ""]}, "tags"),
    ],
)
async def test_bad_endpoint_is_refused_and_nothing_is_stored(pclient, merchant, make_proxy, changes, field):
    _, key = merchant
    proxy = await make_proxy(key)
    response = await pclient.post(
        f"/api/proxy/{proxy['proxyId']}/manifest/endpoints", json={**FORECAST, **changes}, headers=auth(key)
    )
    problem(response, 400, "validation_error", field)
    assert await endpoints_of(pclient, key, proxy["proxyId"]) == []


async def test_endpoint_id_of_64_characters_and_a_wildcard_are_accepted(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    body = {**FORECAST, "endpointId": "x" * 64, "path": "/v1/*", "httpMethod": "any", "basePriceSats": 3}
    created = await pclient.post(
        f"/api/proxy/{proxy['proxyId']}/manifest/endpoints", json=body, headers=auth(key)
    )
    assert created.status_code == 201, created.text
    assert (created.json()["httpMethod"], created.json()["paidUrl"]) == (
        "*",
        f"/l402/proxy/{proxy['proxyId']}/v1/{{rest}}",
    )
    assert await price_of(pclient, f"/l402/proxy/{proxy['proxyId']}/v1/a/b", "DELETE") == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"categories": ["weather", ""]}, "categories"),
        ({"categories": ["a,b"]}, "categories"),
        ({"categories": ["x" * 51]}, "categories"),
        ({"categories": "weather"}, "categories"),
        ({"manifestEnabled": "yes"}, "manifestEnabled"),
        ({"manifestPubliclyListed": 1}, "manifestPubliclyListed"),
        ({"documentationUrl": "ftp://docs"}, "documentationUrl"),
        ({"serviceDescription": "nul\x00"}, "serviceDescription"),
    ],
)
async def test_bad_settings_are_refused_and_nothing_changes(pclient, merchant, make_proxy, body, field):
    _, key = merchant
    proxy = await make_proxy(key)
    url = f"/api/proxy/{proxy['proxyId']}/manifest/settings"
    before = (await pclient.get(url, headers=auth(key))).json()
    refused = await pclient.put(url, json={"serviceDescription": "not applied", **body}, headers=auth(key))
    problem(refused, 400, "validation_error", field)
    assert (await pclient.get(url, headers=auth(key))).json() == before


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        (b'{"name": "Weather API",', "application/json", "malformed_json"),
        (b"not json at all", "application/json", "malformed_json"),
        (b"", "application/json", "malformed_json"),
        (b'[{"name": "Weather API"}]', "application/json", "malformed_json"),
        (b'"Weather API"', "application/json", "malformed_json"),
        (b"null", "application/json", "malformed_json"),
        (
            b'{"name": "Weather API", "targetBaseUrl": "https://a.example", "defaultPriceSats": 5}',
            "text/plain",
            "unsupported_media_type",
        ),
        (b"name=Weather+API", "application/x-www-form-urlencoded", "unsupported_media_type"),
        (
            b'{"name": "W", "targetBaseUrl": "https://a.example", "defaultPriceSats": 5}',
            None,
            "unsupported_media_type",
        ),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused(pclient, merchant, content, content_type, code):
    _, key = merchant
    headers = auth(key) | ({"content-type": content_type} if content_type else {})
    problem(await pclient.post("/api/proxy", content=content, headers=headers), 400, code)
    assert await proxies_of(pclient, key) == []


async def test_malformed_bodies_on_the_other_routes(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    base = f"/api/proxy/{proxy['proxyId']}"
    json_headers = {**auth(key), "content-type": "application/json"}
    for method, url in (
        ("PUT", base),
        ("POST", base + "/manifest/endpoints"),
        ("PUT", base + "/manifest/settings"),
        ("POST", base + "/unpublish"),
    ):
        problem(
            await pclient.request(method, url, content=b"{oops", headers=json_headers), 400, "malformed_json"
        )
        problem(
            await pclient.request(method, url, content=b"[]", headers=json_headers), 400, "malformed_json"
        )
        text = {**auth(key), "content-type": "text/plain"}
        problem(
            await pclient.request(method, url, content=b"{}", headers=text), 400, "unsupported_media_type"
        )
    assert await get_proxy(pclient, key, proxy["proxyId"]) == proxy


async def test_the_producer_api_needs_a_valid_key(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    base = f"/api/proxy/{proxy['proxyId']}"
    for headers, code in (
        ({}, "missing_api_key"),
        ({"X-API-Key": ""}, "missing_api_key"),
        ({"X-API-Key": "le_live_" + "x" * 40}, "invalid_api_key"),
        ({"X-API-Key": key[:-1]}, "invalid_api_key"),
        ({"X-API-Key": "not a key"}, "invalid_api_key"),
    ):
        for method, url, body in (
            ("GET", "/api/proxy", None),
            ("POST", "/api/proxy", _create()),
            ("GET", base, None),
            ("PUT", base, {"name": "Nope"}),
            ("DELETE", base, None),
            ("POST", base + "/manifest/endpoints", FORECAST),
            ("PUT", base + "/manifest/settings", {"manifestPubliclyListed": True}),
            ("POST", base + "/unpublish", {}),
            ("GET", base + "/stats", None),
            ("GET", "/api/stats/l402", None),
        ):
            problem(await pclient.request(method, url, json=body, headers=headers), 401, code)
    assert await proxies_of(pclient, key) == [proxy]


# --- usage and revenue -----------------------------------------------------------------------------


async def test_stats_count_requests_402s_paid_calls_and_revenue_once(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=3, endpoints=[FORECAST])
    proxy_id = proxy["proxyId"]
    paid_url = f"/l402/proxy/{proxy_id}/forecast/paris"

    macaroon, invoice = await unpaid(pclient, paid_url)  # 402 on the priced endpoint
    assert await price_of(pclient, f"/l402/proxy/{proxy_id}/news") == 3  # 402 on the default price
    token = {"authorization": f"L402 {macaroon}:{await pay(pclient, invoice)}"}
    for city in ("paris", "rome", "paris"):
        response = await pclient.get(f"/l402/proxy/{proxy_id}/forecast/{city}", headers=token)
        assert response.status_code == 200, response.text
        assert response.json()["path"] == f"/forecast/{city}"
        assert response.headers["payment-receipt"]

    stats = await pclient.get(f"/api/proxy/{proxy_id}/stats", headers=auth(key))
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert (body["proxyId"], body["name"], body["retired"]) == (proxy_id, proxy["name"], False)
    totals = {k: body[k] for k in ("requests", "challenged", "paidRequests", "upstreamErrors", "revenueSats")}
    assert totals == {
        "requests": 5,
        "challenged": 2,
        "paidRequests": 3,
        "upstreamErrors": 0,
        "revenueSats": 7,
    }
    assert body["paidChallenges"] == 1
    by_endpoint = {e["endpointId"]: e for e in body["endpoints"]}
    assert set(by_endpoint) == {"forecast", None}
    forecast, default = by_endpoint["forecast"], by_endpoint[None]
    assert (
        forecast["requests"],
        forecast["challenged"],
        forecast["paidRequests"],
        forecast["revenueSats"],
    ) == (
        4,
        1,
        3,
        7,
    )
    assert (default["requests"], default["challenged"], default["paidRequests"], default["revenueSats"]) == (
        1,
        1,
        0,
        0,
    )
    assert sum(day["requests"] for day in body["days"]) == 5
    assert sum(day["revenueSats"] for day in body["days"]) == 7

    overall = await pclient.get("/api/stats/l402", headers=auth(key))
    assert overall.status_code == 200, overall.text
    summary = overall.json()
    assert summary["revenueByKind"] == {
        "proxySats": 7,
        "contentSats": 0,
        "shopifySats": 0,
        "challengesSats": 0,
    }
    assert (summary["revenueSats"], summary["challengesPaid"]) == (7, 1)
    assert summary["challengesIssued"] == 2  # one invoice per resource, reused by the same payer
    [listed] = summary["proxies"]
    assert listed["proxyId"] == proxy_id
    figures = ("requests", "challenged", "paidRequests", "upstreamErrors", "revenueSats", "paidChallenges")
    assert {k: listed[k] for k in figures} == {k: body[k] for k in figures}

    # a paid token counts its revenue once, however often it is used; a second payment adds to it
    again = await pclient.get(paid_url, headers=token)
    assert again.status_code == 200
    news_mac, news_invoice = await unpaid(pclient, f"/l402/proxy/{proxy_id}/news")
    news = {"authorization": f"L402 {news_mac}:{await pay(pclient, news_invoice)}"}
    assert (await pclient.get(f"/l402/proxy/{proxy_id}/news", headers=news)).status_code == 200
    later = (await pclient.get(f"/api/proxy/{proxy_id}/stats", headers=auth(key))).json()
    assert (later["requests"], later["challenged"], later["paidRequests"], later["revenueSats"]) == (
        8,
        3,
        5,
        10,
    )
    assert {e["endpointId"]: e["revenueSats"] for e in later["endpoints"]} == {"forecast": 7, None: 3}


async def test_stats_of_a_fresh_proxy_are_zero_and_days_is_bounded(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    url = f"/api/proxy/{proxy['proxyId']}/stats"
    body = (await pclient.get(url, headers=auth(key))).json()
    assert (body["requests"], body["revenueSats"], body["endpoints"], body["days"]) == (0, 0, [], [])
    for days in ("0", "3661", "abc"):
        response = await pclient.get(url, params={"days": days}, headers=auth(key))
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
    problem(
        await pclient.get("/api/proxy/prx_00000000000000000000/stats", headers=auth(key)),
        404,
        "proxy_not_found",
    )


# --- concurrent writes -----------------------------------------------------------------------------
# SQLite serialises writers; on PostgreSQL (READ COMMITTED) these read-then-write checks race. Several
# rounds make the race all but certain to show.

ROUNDS = 8


async def test_concurrent_identical_endpoint_creates_are_idempotent(pclient, merchant, make_proxy):
    _, key = merchant
    for _ in range(ROUNDS):
        proxy = await make_proxy(key)
        url = f"/api/proxy/{proxy['proxyId']}/manifest/endpoints"
        answers = await asyncio.gather(
            *(pclient.post(url, json=FORECAST, headers=auth(key)) for _ in range(6))
        )
        assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 200, 201], [
            a.text for a in answers
        ]
        assert len(await endpoints_of(pclient, key, proxy["proxyId"])) == 1


async def test_concurrent_clashing_endpoints_store_only_one(pclient, merchant, make_proxy):
    _, key = merchant
    for _ in range(ROUNDS):
        proxy = await make_proxy(key)
        url = f"/api/proxy/{proxy['proxyId']}/manifest/endpoints"
        bodies = [{**FORECAST, "endpointId": f"e{i}", "path": f"/x/{{p{i}}}"} for i in range(6)]
        answers = await asyncio.gather(*(pclient.post(url, json=body, headers=auth(key)) for body in bodies))
        assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409, 409]
        assert len(await endpoints_of(pclient, key, proxy["proxyId"])) == 1


async def test_concurrent_unpublish_retires_once(pclient, merchant, make_proxy):
    _, key = merchant
    for _ in range(ROUNDS):
        proxy = await make_proxy(key)
        url = f"/api/proxy/{proxy['proxyId']}/unpublish"
        answers = await asyncio.gather(
            *(pclient.post(url, json={"reason": f"reason {i}"}, headers=auth(key)) for i in range(4))
        )
        assert all(a.status_code == 200 for a in answers)
        first = [i for i, a in enumerate(answers) if a.json()["alreadyRetired"] is False]
        assert len(first) == 1, [a.json() for a in answers]
        assert (await get_proxy(pclient, key, proxy["proxyId"]))["retireReason"] == f"reason {first[0]}"
