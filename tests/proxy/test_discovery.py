"""How agents find a paid proxy, over real HTTP: its manifest and OpenAPI document, the public
registry (listing rules, search, paging), the manifest validator, and the published agent client
(``lightning_enable_mcp``'s ``discover_api``) reading all of it.

The database is shared by the whole session, so registry tests search for a random word put in
the names of their own proxies and count only those.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import auth

logging.getLogger().setLevel(logging.WARNING)  # the MCP package sets the root logger to INFO on import
from lightning_enable_mcp.tools._ssrf_guard import is_blocked_ip  # noqa: E402

# the package re-exports the tool function under the module's name: take the module itself
mcp_discover = importlib.import_module("lightning_enable_mcp.tools.discover_api")

PROBLEM = "application/problem+json"
FORECAST = {
    "endpointId": "forecast",
    "path": "/forecast/{city}",
    "httpMethod": "GET",
    "basePriceSats": 10,
    "summary": "City forecast",
}
HEALTH = {
    "endpointId": "health",
    "path": "/health",
    "httpMethod": "GET",
    "basePriceSats": 0,
    "summary": "Up?",
}
RAW = {"endpointId": "raw", "path": "/v1/*", "httpMethod": "*", "basePriceSats": 4}
REGISTRY_ITEM = {
    "name",
    "description",
    "manifestUrl",
    "proxyBaseUrl",
    "documentationUrl",
    "parsedCategories",
    "endpointCount",
    "defaultPriceSats",
    "proxyId",
}


def problem(response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status (and this stable code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert next(iter(body)) == "error" and body["status"] == status
    assert body["message"] == body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body


def word() -> str:
    """A word no other test's proxy has (letters only, so that it is one search word)."""
    return "zq" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxy") for _ in range(10))


async def settings(http, key: str, proxy_id: str, **values: Any) -> dict[str, Any]:
    response = await http.put(f"/api/proxy/{proxy_id}/manifest/settings", json=values, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def published(http, make_proxy, key: str, *, listed: bool = True, settings_: Any = None, **fields: Any):
    """A proxy with the manifest enabled and (by default) publicly listed."""
    proxy = await make_proxy(key, **fields)
    await settings(
        http, key, proxy["proxyId"], manifestEnabled=True, manifestPubliclyListed=listed, **(settings_ or {})
    )
    return proxy


async def registry(http, **query: Any) -> dict[str, Any]:
    response = await http.get("/api/manifests/registry", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "total", "page", "pageSize"}
    return body


async def found(http, **query: Any) -> list[str]:
    """The proxy ids the registry answers (one page of up to 100)."""
    body = await registry(http, pageSize=100, **query)
    assert body["total"] == len(body["items"])
    return [item["proxyId"] for item in body["items"]]


async def validate(http, document: Any) -> dict[str, Any]:
    response = await http.post("/api/manifests/validate", json=document)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"valid", "errors"}
    return body


@pytest.fixture
def mcp_to_loopback(monkeypatch, proxy_gateway):
    """Let the published client reach the gateway on 127.0.0.1 (its SSRF guards refuse loopback);
    private ranges stay refused. The registry it searches is this gateway."""
    original = mcp_discover.validate_url_allowed

    async def allow_loopback(url: str, **kwargs: Any) -> None:
        if urlsplit(url).hostname == "127.0.0.1":
            return
        await original(url, **kwargs)

    monkeypatch.setattr(mcp_discover, "validate_url_allowed", allow_loopback)
    monkeypatch.setattr(
        mcp_discover,
        "build_ssrf_safe_async_transport",
        functools.partial(
            mcp_discover.build_ssrf_safe_async_transport,
            is_blocked=lambda ip: False if ip.is_loopback else is_blocked_ip(ip),
        ),
    )
    monkeypatch.setenv("L402_REGISTRY_URL", proxy_gateway.base_url)
    monkeypatch.delenv("LIGHTNING_ENABLE_API_URL", raising=False)


# --- the manifest and the OpenAPI document ---------------------------------------------------------


async def test_the_manifest_describes_the_proxy_and_validates(pclient, proxy_gateway, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, name="Weather API", defaultPriceSats=3, endpoints=[FORECAST, HEALTH, RAW])
    proxy_id = proxy["proxyId"]
    await settings(
        pclient,
        key,
        proxy_id,
        manifestEnabled=True,
        serviceDescription="Forecasts for agents",
        categories=["weather", "data"],
    )
    response = await pclient.get(f"{proxy['proxyUrl']}/.well-known/l402-manifest.json")  # no API key
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    doc = response.json()
    base = proxy_gateway.base_url + proxy["proxyUrl"]
    assert doc["service"] == {
        "name": "Weather API",
        "description": "Forecasts for agents",
        "base_url": base,  # absolute: agents call it as is
        "documentation_url": base + "/openapi.json",
        "categories": ["weather", "data"],
    }
    assert doc["l402"]["default_price_sats"] == 3
    assert doc["l402"]["payment_flow"] == "402-challenge"
    assert doc["l402"]["capabilities"]["preimage_in_response"] is False
    endpoints = {e["id"]: e for e in doc["endpoints"]}
    assert set(endpoints) == {"forecast", "health", "raw"}
    for sent in (FORECAST, HEALTH, RAW):
        got = endpoints[sent["endpointId"]]
        assert (got["path"], got["method"], got.get("summary")) == (
            sent["path"],
            sent["httpMethod"],
            sent.get("summary"),
        )
        assert got["pricing"] == {"model": "per-request", "base_price_sats": sent["basePriceSats"]}
        assert got["l402_enabled"] is (sent["basePriceSats"] > 0)
    assert await validate(pclient, doc) == {"valid": True, "errors": []}

    # what the manifest says is what the paid URL charges
    charged = await pclient.get(urlsplit(base).path + "/forecast/oslo")
    assert charged.status_code == 402 and charged.json()["priceSats"] == 10


async def test_the_manifest_follows_changes_at_once(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, name="Old Name", description="the proxy's own description")
    url = f"{proxy['proxyUrl']}/.well-known/l402-manifest.json"
    doc = (await pclient.get(url)).json()
    assert (doc["service"]["name"], doc["service"]["description"], doc["endpoints"]) == (
        "Old Name",
        "the proxy's own description",  # no serviceDescription: the description stands in
        [],
    )
    renamed = await pclient.put(
        f"/api/proxy/{proxy['proxyId']}", json={"name": "New Name"}, headers=auth(key)
    )
    assert renamed.status_code == 200
    added = await pclient.post(
        f"/api/proxy/{proxy['proxyId']}/manifest/endpoints", json=FORECAST, headers=auth(key)
    )
    assert added.status_code == 201
    await settings(pclient, key, proxy["proxyId"], documentationUrl="https://docs.example.com/weather")
    doc = (await pclient.get(url)).json()
    assert doc["service"]["name"] == "New Name"
    assert doc["service"]["documentation_url"] == "https://docs.example.com/weather"
    assert [(e["id"], e["pricing"]["base_price_sats"]) for e in doc["endpoints"]] == [("forecast", 10)]


async def test_a_disabled_manifest_is_404_but_the_proxy_still_charges(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    await settings(pclient, key, proxy["proxyId"], manifestEnabled=False)
    problem(
        await pclient.get(f"{proxy['proxyUrl']}/.well-known/l402-manifest.json"), 404, "manifest_not_enabled"
    )
    problem(await pclient.get(f"{proxy['proxyUrl']}/openapi.json"), 404, "manifest_not_enabled")
    charged = await pclient.get(f"{proxy['proxyUrl']}/forecast/oslo")
    assert charged.status_code == 402 and charged.json()["priceSats"] == 10
    await settings(pclient, key, proxy["proxyId"], manifestEnabled=True)
    assert (await pclient.get(f"{proxy['proxyUrl']}/.well-known/l402-manifest.json")).status_code == 200


@pytest.mark.parametrize(
    "proxy_id", ["prx_00000000000000000000", "prx_short", "not-a-proxy", "prx_" + "a" * 200]
)
async def test_an_unknown_proxy_has_no_documents(pclient, proxy_id):
    for suffix in ("/.well-known/l402-manifest.json", "/openapi.json"):
        problem(await pclient.get(f"/l402/proxy/{proxy_id}{suffix}"), 404, "proxy_not_found")


async def test_openapi_lists_the_paths_and_their_prices(pclient, proxy_gateway, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, name="Weather API", defaultPriceSats=3, endpoints=[FORECAST, HEALTH, RAW])
    await settings(pclient, key, proxy["proxyId"], serviceDescription="Forecasts for agents")
    response = await pclient.get(f"{proxy['proxyUrl']}/openapi.json")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Weather API" and doc["info"]["description"] == "Forecasts for agents"
    assert doc["servers"] == [{"url": proxy_gateway.base_url + proxy["proxyUrl"]}]
    assert doc["x-l402-default-price-sats"] == 3
    assert set(doc["paths"]) == {"/forecast/{city}", "/health", "/v1/{rest}"}
    forecast = doc["paths"]["/forecast/{city}"]["get"]
    assert forecast["x-l402"] == {"price_sats": 10, "model": "per-request"}
    assert forecast["summary"] == "City forecast" and "402" in forecast["responses"]
    assert forecast["parameters"] == [
        {"name": "city", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    health = doc["paths"]["/health"]["get"]
    assert (
        health["x-l402"]["price_sats"] == 0 and "402" not in health["responses"] and "security" not in health
    )
    raw = doc["paths"]["/v1/{rest}"]
    assert set(raw) == {"get", "post", "put", "patch", "delete"}
    assert {op["x-l402"]["price_sats"] for op in raw.values()} == {4}
    assert set(doc["components"]["securitySchemes"]) == {"L402", "Payment"}


# --- the published agent client ---------------------------------------------------------------------


async def test_the_mcp_client_discovers_the_manifest_and_its_prices(
    pclient, proxy_gateway, merchant, make_proxy, mcp_to_loopback
):
    _, key = merchant
    proxy = await make_proxy(key, name="Weather API", defaultPriceSats=3, endpoints=[FORECAST, HEALTH])
    await settings(pclient, key, proxy["proxyId"], serviceDescription="Forecasts", categories=["weather"])
    base = proxy_gateway.base_url + proxy["proxyUrl"]  # what the producer tools advertise

    result = json.loads(await mcp_discover.discover_api(url=base))
    assert result["success"] is True, result
    assert result["source"] == "manifest"
    assert result["manifest_url"] == base + "/.well-known/l402-manifest.json"  # found on the first probe
    assert result["service"]["name"] == "Weather API"
    assert result["service"]["base_url"] == base
    assert result["service"]["categories"] == ["weather"]
    assert result["l402"]["default_price_sats"] == 3
    assert result["endpoint_count"] == 2
    prices = {e["id"]: e["pricing"]["base_price_sats"] for e in result["endpoints"]}
    assert prices == {"forecast": 10, "health": 0}
    # the client trusts only a positive number as a price ("free" reads as unknown)
    assert mcp_discover._parse_price_sats(prices["forecast"]) == 10
    assert {e["id"]: e["method"] for e in result["endpoints"]} == {"forecast": "GET", "health": "GET"}

    await settings(pclient, key, proxy["proxyId"], manifestEnabled=False)
    missing = json.loads(await mcp_discover.discover_api(url=base))
    assert missing["success"] is False and "tried_urls" in missing


async def test_the_mcp_client_searches_the_registry(
    pclient, proxy_gateway, merchant, make_proxy, mcp_to_loopback
):
    _, key = merchant
    tag = word()
    listed = await published(
        pclient,
        make_proxy,
        key,
        name=f"{tag} Weather",
        defaultPriceSats=3,
        endpoints=[FORECAST],
        settings_={"serviceDescription": "Forecasts for agents", "categories": ["Weather", tag + "cat"]},
    )
    await published(pclient, make_proxy, key, name=f"{tag} Hidden", listed=False)

    result = json.loads(await mcp_discover.discover_api(query=tag))
    assert result["success"] is True and result["source"] == "registry", result
    assert result["total"] == 1
    [item] = result["results"]
    base = proxy_gateway.base_url + listed["proxyUrl"]
    assert item == {
        "name": f"{tag} Weather",
        "description": "Forecasts for agents",
        "manifest_url": base + "/.well-known/l402-manifest.json",
        "proxy_base_url": base,
        "documentation_url": base + "/openapi.json",
        "categories": ["Weather", tag + "cat"],
        "endpoint_count": 1,
        "default_price_sats": 3,
    }
    by_category = json.loads(await mcp_discover.discover_api(category=tag.upper() + "CAT"))
    assert [r["name"] for r in by_category["results"]] == [f"{tag} Weather"]

    # as an agent is told to: follow the manifest URL the registry gave
    manifest = json.loads(await mcp_discover.discover_api(url=item["manifest_url"]))
    assert manifest["success"] is True and manifest["manifest_url"] == item["manifest_url"]
    assert [(e["id"], e["pricing"]["base_price_sats"]) for e in manifest["endpoints"]] == [("forecast", 10)]


# --- the registry ----------------------------------------------------------------------------------


async def test_the_registry_lists_only_listed_enabled_live_proxies(
    pclient, proxy_gateway, merchant, make_proxy
):
    _, key = merchant
    tag = word()
    listed = await published(
        pclient,
        make_proxy,
        key,
        name=f"{tag} Listed",
        description="the proxy's own text",
        defaultPriceSats=3,
        endpoints=[FORECAST, HEALTH],
        settings_={"categories": ["Weather", "Data"]},
    )
    await published(pclient, make_proxy, key, name=f"{tag} Unlisted", listed=False)
    await make_proxy(key, name=f"{tag} Never Configured")
    disabled = await published(pclient, make_proxy, key, name=f"{tag} Disabled")
    await settings(pclient, key, disabled["proxyId"], manifestEnabled=False)
    retired = await published(pclient, make_proxy, key, name=f"{tag} Retired")
    gone = await pclient.post(f"/api/proxy/{retired['proxyId']}/unpublish", json={}, headers=auth(key))
    assert gone.status_code == 200
    deleted = await published(pclient, make_proxy, key, name=f"{tag} Deleted")
    assert (await pclient.delete(f"/api/proxy/{deleted['proxyId']}", headers=auth(key))).status_code == 204

    body = await registry(pclient, q=tag)  # no API key needed
    assert (body["total"], body["page"], body["pageSize"]) == (1, 1, 20)
    [item] = body["items"]
    assert set(item) == REGISTRY_ITEM
    base = proxy_gateway.base_url + listed["proxyUrl"]
    assert item == {
        "name": f"{tag} Listed",
        "description": "the proxy's own text",
        "manifestUrl": base + "/.well-known/l402-manifest.json",  # absolute here
        "proxyBaseUrl": base,
        "documentationUrl": base + "/openapi.json",
        "parsedCategories": ["Weather", "Data"],
        "endpointCount": 2,
        "defaultPriceSats": 3,
        "proxyId": listed["proxyId"],
    }
    for url in (item["manifestUrl"], item["proxyBaseUrl"], item["documentationUrl"]):
        assert (
            urlsplit(url).scheme == "http" and urlsplit(url).netloc == urlsplit(proxy_gateway.base_url).netloc
        )
    assert (await pclient.get(urlsplit(item["manifestUrl"]).path)).status_code == 200

    # unlisting takes it out, listing again brings it back, with the service description
    await settings(pclient, key, listed["proxyId"], manifestPubliclyListed=False)
    assert await found(pclient, q=tag) == []
    await settings(
        pclient, key, listed["proxyId"], manifestPubliclyListed=True, serviceDescription="For agents"
    )
    [again] = (await registry(pclient, q=tag))["items"]
    assert again["description"] == "For agents"


async def test_registry_search_words_and_categories(pclient, merchant, make_proxy):
    _, key = merchant
    tag = word()
    alpha = await published(
        pclient,
        make_proxy,
        key,
        name=f"{tag} Alpha Forecasts",
        settings_={"categories": ["Weather", "Data"]},
    )
    beta = await published(
        pclient,
        make_proxy,
        key,
        name=f"{tag} Beta",
        description="Tide tables",
        settings_={"serviceDescription": "Ocean swells", "categories": ["weatherish"]},
    )
    a, b = alpha["proxyId"], beta["proxyId"]

    assert set(await found(pclient, q=tag)) == {a, b}
    assert set(await found(pclient, q=tag.upper())) == {a, b}  # any case
    assert await found(pclient, q=f"{tag} alpha") == [a]  # every word must match
    assert await found(pclient, q=f"  ALPHA   {tag} ") == [a]
    assert await found(pclient, q=f"{tag} alpha beta") == []
    assert await found(pclient, q=f"{tag} swells") == [b]  # the service description
    assert await found(pclient, q=f"{tag} tide") == [b]  # the proxy's description
    assert await found(pclient, q=f"{tag} DATA") == [a]  # a category
    assert set(await found(pclient, q=f"{tag} weather")) == {a, b}  # words match inside words
    assert await found(pclient, q=f"{tag} weatherish") == [b]

    assert await found(pclient, q=tag, category="weather") == [a]  # a whole category, not a prefix
    assert await found(pclient, q=tag, category="WEATHER") == [a]
    assert await found(pclient, q=tag, category=" Data ") == [a]
    assert await found(pclient, q=tag, category="weatherish") == [b]
    assert await found(pclient, q=tag, category="weath") == []
    assert await found(pclient, q=tag, category="eather") == []
    assert await found(pclient, q=tag, category="Data Weather") == []


async def test_registry_category_with_a_line_break_matches_no_category(pclient, merchant, make_proxy):
    _, key = merchant
    tag = word()
    await published(
        pclient, make_proxy, key, name=f"{tag} Alpha", settings_={"categories": ["Weather", "Data"]}
    )
    response = await pclient.get("/api/manifests/registry", params={"q": tag, "category": "Weather\nData"})
    if response.status_code != 400:
        assert response.status_code == 200 and response.json()["items"] == [], response.text


async def test_registry_search_is_case_insensitive_beyond_ascii(pclient, merchant, make_proxy):
    _, key = merchant
    tag = word()
    proxy = await published(
        pclient, make_proxy, key, name=f"{tag} Über Wetter", settings_={"categories": ["Météo", "ÄPFEL"]}
    )
    for q in (f"{tag} Über", f"{tag} über", f"{tag} ÜBER"):
        assert await found(pclient, q=q) == [proxy["proxyId"]], q
    for category in ("Météo", "MÉTÉO", "ÄPFEL", "äpfel"):
        assert await found(pclient, q=tag, category=category) == [proxy["proxyId"]], category


async def test_registry_search_treats_like_wildcards_literally(pclient, merchant, make_proxy):
    _, key = merchant
    tag = word()
    plain = await published(pclient, make_proxy, key, name=f"{tag} Alpha", settings_={"categories": ["ab"]})
    odd = await published(
        pclient, make_proxy, key, name=f"{tag}_under 100% sure", settings_={"categories": ["a%b", "c_d"]}
    )
    p, o = plain["proxyId"], odd["proxyId"]
    assert set(await found(pclient, q=tag)) == {p, o}
    assert await found(pclient, q=f"{tag}%alpha") == []  # '%' would match " " if it were a wildcard
    assert await found(pclient, q=f"{tag}_alpha") == []  # '_' would match " "
    assert await found(pclient, q=f"{tag}%") == []
    assert await found(pclient, q=f"{tag}_") == [o]
    assert await found(pclient, q=f"{tag} 100%") == [o]
    assert await found(pclient, q=f"{tag} 1_0") == []
    assert await found(pclient, q=f"{tag} %") == [o]
    assert await found(pclient, q=f"{tag} \\") == []
    assert await found(pclient, q=tag, category="a%b") == [o]
    assert await found(pclient, q=tag, category="a_b") == []
    assert await found(pclient, q=tag, category="%") == []
    assert await found(pclient, q=tag, category="c_d") == [o]
    assert await found(pclient, q=tag, category="c%") == []


async def test_registry_pages(pclient, merchant, make_proxy):
    _, key = merchant
    tag = word()
    ids = {(await published(pclient, make_proxy, key, name=f"{tag} {n}"))["proxyId"] for n in range(5)}
    first = await registry(pclient, q=tag, pageSize=2)
    second = await registry(pclient, q=tag, pageSize=2, page=2)
    third = await registry(pclient, q=tag, pageSize=2, page=3)
    beyond = await registry(pclient, q=tag, pageSize=2, page=4)
    assert [
        (b["total"], b["page"], b["pageSize"], len(b["items"])) for b in (first, second, third, beyond)
    ] == [
        (5, 1, 2, 2),
        (5, 2, 2, 2),
        (5, 3, 2, 1),
        (5, 4, 2, 0),
    ]
    pages = [[i["proxyId"] for i in b["items"]] for b in (first, second, third)]
    flat = [i for page in pages for i in page]
    assert len(flat) == len(set(flat)) == 5 and set(flat) == ids  # disjoint pages covering all
    assert flat == await found(pclient, q=tag)  # the same order as one big page
    assert (await registry(pclient, q=tag, pageSize=100))["pageSize"] == 100


@pytest.mark.parametrize(
    "query",
    [
        {"pageSize": 0},
        {"pageSize": 101},
        {"pageSize": -1},
        {"page": 0},
        {"page": -3},
        {"page": "one"},
        {"pageSize": "2.5"},
        {"q": "x" * 201},
        {"category": "x" * 51},
    ],
)
async def test_registry_refuses_bad_paging_and_too_long_searches(pclient, query):
    body = problem(await pclient.get("/api/manifests/registry", params=query), 400)
    assert body["error"] == "validation_error"
    assert body.get("errors"), body


# --- the validator ---------------------------------------------------------------------------------


async def _real_manifest(pclient, key, make_proxy) -> dict[str, Any]:
    proxy = await make_proxy(key, endpoints=[FORECAST, HEALTH])
    return (await pclient.get(f"{proxy['proxyUrl']}/.well-known/l402-manifest.json")).json()


async def test_validate_accepts_a_valid_manifest(pclient, merchant, make_proxy):
    _, key = merchant
    doc = await _real_manifest(pclient, key, make_proxy)
    assert await validate(pclient, doc) == {"valid": True, "errors": []}
    minimal = {"service": {"name": "X"}, "endpoints": []}
    assert await validate(pclient, minimal) == {"valid": True, "errors": []}
    extra = {**minimal, "future_field": {"anything": 1}}
    assert await validate(pclient, extra) == {"valid": True, "errors": []}


@pytest.mark.parametrize(
    ("change", "path", "needle"),
    [
        (lambda d: d.pop("service"), "/", "'service'"),
        (lambda d: d.pop("endpoints"), "/", "'endpoints'"),
        (lambda d: d["service"].pop("name"), "/service", "'name'"),
        (lambda d: d["service"].update(name=""), "/service/name", ""),
        (
            lambda d: d["endpoints"][0]["pricing"].update(base_price_sats="10"),
            "/endpoints/0/pricing/base_price_sats",
            "'10'",
        ),
        (
            lambda d: d["endpoints"][1]["pricing"].update(base_price_sats=-1),
            "/endpoints/1/pricing/base_price_sats",
            "-1",
        ),
        (lambda d: d["endpoints"][0].update(method="FETCH"), "/endpoints/0/method", "'FETCH'"),
        (lambda d: d["endpoints"][0].update(method="get"), "/endpoints/0/method", "'get'"),
        (lambda d: d["endpoints"][0].update(path="forecast"), "/endpoints/0/path", "'forecast'"),
        (lambda d: d["endpoints"][0].pop("pricing"), "/endpoints/0", "'pricing'"),
        (lambda d: d["l402"].update(default_price_sats=True), "/l402/default_price_sats", "True"),
        (lambda d: d.update(endpoints={"id": "x"}), "/endpoints", ""),
    ],
)
async def test_validate_reports_each_problem_with_a_json_pointer(
    pclient, merchant, make_proxy, change, path, needle
):
    _, key = merchant
    doc = await _real_manifest(pclient, key, make_proxy)
    change(doc)
    result = await validate(pclient, doc)
    assert result["valid"] is False
    assert [e["path"] for e in result["errors"]] == [path], result
    [error] = result["errors"]
    assert set(error) == {"path", "message"} and needle in error["message"]


async def test_validate_lists_several_problems_in_document_order(pclient):
    doc = {
        "service": {"name": 7},
        "endpoints": [
            {"path": "/a", "method": "GET", "pricing": {"base_price_sats": "1"}},
            {"path": "b", "method": "FETCH", "pricing": {"base_price_sats": 1}},
        ],
    }
    result = await validate(pclient, doc)
    assert result["valid"] is False
    assert [e["path"] for e in result["errors"]] == [
        "/endpoints/0/pricing/base_price_sats",
        "/endpoints/1/method",
        "/endpoints/1/path",
        "/service/name",
    ]


@pytest.mark.parametrize("document", [[], [{"service": {"name": "X"}}], "a manifest", 42, None, True])
async def test_validate_of_a_json_value_that_is_not_an_object(pclient, document):
    response = await pclient.post(
        "/api/manifests/validate", content=json.dumps(document), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["valid"] is False
    assert result["errors"] and {e["path"] for e in result["errors"]} == {"/"}


@pytest.mark.parametrize("content", [b"{not json", b"", b"{'single': 'quotes'}", b'{"a": NaN}', b"\xff\xfe"])
async def test_validate_of_a_body_that_is_not_json_is_a_400(pclient, content):
    response = await pclient.post(
        "/api/manifests/validate", content=content, headers={"content-type": "application/json"}
    )
    problem(response, 400, "malformed_json")
