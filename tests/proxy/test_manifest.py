"""The proxy's discovery documents: the L402 manifest (checked against its schema and against what the
published client reads), the OpenAPI document, and the validator's error reports."""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator

from boltgate.proxy import manifest as m
from boltgate.proxy.manifest import EndpointView, ProxyView

BASE = "https://pay.example.com"

FORECAST = EndpointView(
    "forecast", "/forecast/{city}", "GET", 10, "City forecast", "Hourly, 3 days", ("weather",)
)
HEALTH = EndpointView("health", "/health", "GET", 0)
ANY = EndpointView("v1", "/v1/*", "*", 5, tags=("raw", "v1"))


def view(**changes: Any) -> ProxyView:
    """A weather proxy with a priced, a free and a wildcard endpoint; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "proxy_id": "px_weather",
        "name": "Weather API",
        "description": "internal note",
        "service_description": "Forecasts for agents",
        "categories": ("weather", "data"),
        "default_price_sats": 3,
        "documentation_url": None,
        "endpoints": (FORECAST, HEALTH, ANY),
    }
    fields.update(changes)
    return ProxyView(**fields)


def good_manifest() -> dict[str, Any]:
    return copy.deepcopy(m.build_manifest(view(), BASE))


# --- the manifest ------------------------------------------------------------------------------------


def test_built_manifest_is_exactly_the_documented_shape() -> None:
    doc = m.build_manifest(view(), BASE)
    assert doc == {
        "manifest_version": "1.0",
        "generated_by": "boltgate",
        "service": {
            "name": "Weather API",
            "description": "Forecasts for agents",
            "base_url": "https://pay.example.com/l402/proxy/px_weather",
            "documentation_url": "https://pay.example.com/l402/proxy/px_weather/openapi.json",
            "categories": ["weather", "data"],
        },
        "l402": {
            "default_price_sats": 3,
            "payment_flow": "402-challenge",
            "capabilities": {
                "preimage_in_response": False,
                "supported_currencies": ["BTC"],
                "schemes": ["L402", "Payment"],
            },
        },
        "endpoints": [
            {
                "id": "forecast",
                "path": "/forecast/{city}",
                "method": "GET",
                "summary": "City forecast",
                "description": "Hourly, 3 days",
                "l402_enabled": True,
                "pricing": {"model": "per-request", "base_price_sats": 10},
                "tags": ["weather"],
            },
            {
                "id": "health",
                "path": "/health",
                "method": "GET",
                "l402_enabled": False,
                "pricing": {"model": "per-request", "base_price_sats": 0},
                "tags": [],
            },
            {
                "id": "v1",
                "path": "/v1/*",
                "method": "*",
                "l402_enabled": True,
                "pricing": {"model": "per-request", "base_price_sats": 5},
                "tags": ["raw", "v1"],
            },
        ],
    }
    assert m.validate(doc) == []


@pytest.mark.parametrize(
    "proxy",
    [
        view(),
        view(endpoints=()),
        view(categories=(), description=None, service_description=None),
        view(endpoints=(EndpointView("e", "/", "get", 1),), documentation_url="https://docs.example.com/w"),
        view(default_price_sats=0, endpoints=(HEALTH,)),
        view(endpoints=tuple(EndpointView(f"e{i}", f"/p/{i}", "POST", i) for i in range(500))),
    ],
)
def test_what_a_producer_gets_validates(proxy: ProxyView) -> None:
    assert m.validate(m.build_manifest(proxy, BASE)) == []


def test_every_url_is_absolute_and_the_manifest_sits_under_the_base_url() -> None:
    service = m.build_manifest(view(), BASE + "/")["service"]  # a stray trailing slash changes nothing
    for url in (service["base_url"], service["documentation_url"]):
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("https", "pay.example.com")
        assert "//" not in parts.path
    assert m.proxy_base_url(BASE, "px_1") == "https://pay.example.com/l402/proxy/px_1"
    assert m.manifest_path("px_1") == "/l402/proxy/px_1/.well-known/l402-manifest.json"
    assert m.openapi_path("px_1") == "/l402/proxy/px_1/openapi.json"
    # discover_api(url=<proxy base>) finds the manifest on its first probe
    assert (
        BASE + m.manifest_path("px_1") == m.proxy_base_url(BASE, "px_1") + "/.well-known/l402-manifest.json"
    )


def test_a_proxy_id_cannot_add_path_segments() -> None:
    assert m.proxy_base_url(BASE, "a/b") == "https://pay.example.com/l402/proxy/a%2Fb"
    assert m.manifest_path("../x").startswith("/l402/proxy/..%2Fx/")


def test_service_description_wins_then_description_then_empty() -> None:
    def described(**changes: Any) -> Any:
        return m.build_manifest(view(**changes), BASE)["service"]["description"]

    assert described() == "Forecasts for agents"
    assert described(service_description=None) == "internal note"
    assert described(service_description="", description="internal note") == "internal note"
    assert described(service_description=None, description=None) == ""


def test_documentation_url_set_by_the_producer_is_kept() -> None:
    doc = m.build_manifest(view(documentation_url="https://docs.example.com/weather"), BASE)
    assert doc["service"]["documentation_url"] == "https://docs.example.com/weather"


def test_free_endpoint_is_not_l402_enabled_and_costs_zero() -> None:
    free = m.build_manifest(view(endpoints=(HEALTH,)), BASE)["endpoints"][0]
    assert free["l402_enabled"] is False
    assert free["pricing"] == {"model": "per-request", "base_price_sats": 0}
    assert type(free["pricing"]["base_price_sats"]) is int
    assert "summary" not in free and "description" not in free


def test_methods_are_upper_case_in_the_manifest() -> None:
    endpoint = EndpointView("e", "/x", "post", 2)
    assert m.build_manifest(view(endpoints=(endpoint,)), BASE)["endpoints"][0]["method"] == "POST"


def test_the_published_client_reads_the_prices_and_service() -> None:
    """lightning-enable-mcp's own extractors (a pinned test dependency) see what we mean them to see."""
    level = logging.getLogger().level
    tool = pytest.importorskip("lightning_enable_mcp.tools.discover_api")
    logging.getLogger().setLevel(level)  # the package sets the root logger to INFO on import
    doc = m.build_manifest(view(), BASE)
    assert tool._looks_like_manifest(doc)
    assert tool._extract_service_info(doc)["base_url"] == "https://pay.example.com/l402/proxy/px_weather"
    assert tool._extract_l402_info(doc)["default_price_sats"] == 3
    endpoints = tool._extract_endpoints(doc)
    prices = [tool._parse_price_sats(e["pricing"]["base_price_sats"]) for e in endpoints]
    assert prices == [10, None, 5]  # the client reads 0 as "unknown", never as a price
    assert [e["id"] for e in endpoints] == ["forecast", "health", "v1"]


# --- the OpenAPI document -----------------------------------------------------------------------------


def test_openapi_document_top_level() -> None:
    doc = m.build_openapi(view(), BASE)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Weather API", "description": "Forecasts for agents", "version": "1.0.0"}
    assert doc["servers"] == [{"url": "https://pay.example.com/l402/proxy/px_weather"}]
    assert doc["x-l402-default-price-sats"] == 3
    assert doc["components"]["securitySchemes"]["L402"]["type"] == "http"
    assert doc["components"]["securitySchemes"]["L402"]["scheme"] == "L402"
    assert doc["components"]["securitySchemes"]["Payment"]["scheme"] == "Payment"
    assert set(doc["paths"]) == {"/forecast/{city}", "/health", "/v1/{rest}"}


def test_priced_operation_has_params_price_402_and_security() -> None:
    op = m.build_openapi(view(), BASE)["paths"]["/forecast/{city}"]["get"]
    assert op["operationId"] == "forecast"
    assert op["summary"] == "City forecast"
    assert op["description"] == "Hourly, 3 days"
    assert op["tags"] == ["weather"]
    assert op["parameters"] == [
        {"name": "city", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert op["x-l402"] == {"price_sats": 10, "model": "per-request"}
    assert set(op["responses"]) == {"200", "402"}
    assert 'L402 macaroon="…", invoice="…"' in op["responses"]["402"]["description"]
    assert "Payment" in op["responses"]["402"]["description"]
    assert op["security"] == [{"L402": []}, {"Payment": []}]


def test_free_operation_has_no_402_and_no_security() -> None:
    item = m.build_openapi(view(), BASE)["paths"]["/health"]
    assert list(item) == ["get"]
    op = item["get"]
    assert set(op["responses"]) == {"200"}
    assert "security" not in op and "parameters" not in op
    assert op["x-l402"] == {"price_sats": 0, "model": "per-request"}
    assert op["summary"] == "GET /health"


def test_several_params_are_each_declared_once() -> None:
    endpoint = EndpointView("pair", "/a/{x}/b/{y}/{x}", "GET", 1)
    op = m.build_openapi(view(endpoints=(endpoint,)), BASE)["paths"]["/a/{x}/b/{y}/{x}"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["x", "y"]
    assert all(p["required"] is True and p["in"] == "path" for p in op["parameters"])


def test_any_method_expands_into_five_operations_with_suffixed_ids() -> None:
    item = m.build_openapi(view(), BASE)["paths"]["/v1/{rest}"]
    assert list(item) == ["get", "post", "put", "patch", "delete"]
    assert [op["operationId"] for op in item.values()] == [
        "v1_get",
        "v1_post",
        "v1_put",
        "v1_patch",
        "v1_delete",
    ]
    assert all(op["x-l402"]["price_sats"] == 5 and "402" in op["responses"] for op in item.values())


def test_trailing_star_becomes_the_rest_parameter() -> None:
    op = m.build_openapi(view(), BASE)["paths"]["/v1/{rest}"]["get"]
    assert op["parameters"] == [
        {
            "name": "rest",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "the rest of the path",
        }
    ]
    only_star = EndpointView("all", "/*", "GET", 1)
    assert list(m.build_openapi(view(endpoints=(only_star,)), BASE)["paths"]) == ["/{rest}"]


def test_an_explicit_method_wins_over_star_on_the_same_path() -> None:
    star = EndpointView("any", "/x", "*", 9)
    post = EndpointView("create", "/x", "POST", 2)
    item = m.build_openapi(view(endpoints=(star, post)), BASE)["paths"]["/x"]
    assert item["post"]["operationId"] == "create"
    assert item["post"]["x-l402"]["price_sats"] == 2
    assert item["get"]["operationId"] == "any_get"


# --- validation ----------------------------------------------------------------------------------------


def _set(doc: dict[str, Any], pointer: str, value: Any) -> None:
    *parents, last = pointer.strip("/").split("/")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last] = value


@pytest.mark.parametrize(
    ("pointer", "value", "expected_path", "expected_text"),
    [
        ("/service/name", 42, "/service/name", "not of type 'string'"),
        ("/service/name", "", "/service/name", "should be non-empty"),
        ("/endpoints/0/path", "forecast", "/endpoints/0/path", "does not match '^/'"),
        (
            "/endpoints/1/pricing/base_price_sats",
            "10",
            "/endpoints/1/pricing/base_price_sats",
            "not of type 'number'",
        ),
        (
            "/endpoints/1/pricing/base_price_sats",
            -1,
            "/endpoints/1/pricing/base_price_sats",
            "less than the minimum",
        ),
        (
            "/endpoints/2/pricing/base_price_sats",
            True,
            "/endpoints/2/pricing/base_price_sats",
            "not of type 'number'",
        ),
        (
            "/endpoints/2/pricing/base_price_sats",
            float("nan"),
            "/endpoints/2/pricing/base_price_sats",
            "not of type 'number'",
        ),
        (
            "/endpoints/2/pricing/base_price_sats",
            float("inf"),
            "/endpoints/2/pricing/base_price_sats",
            "not of type 'number'",
        ),
        (
            "/endpoints/2/pricing/base_price_sats",
            2.2e15,
            "/endpoints/2/pricing/base_price_sats",
            "greater than the maximum",
        ),
        ("/l402/default_price_sats", float("-inf"), "/l402/default_price_sats", "not of type 'number'"),
        ("/endpoints/0/method", "FETCH", "/endpoints/0/method", "'FETCH' is not one of"),
        ("/endpoints", {"forecast": {}}, "/endpoints", "not of type 'array'"),
        ("/service/categories", ["ok", 7], "/service/categories/1", "not of type 'string'"),
        ("/endpoints/0/tags", "weather", "/endpoints/0/tags", "not of type 'array'"),
        ("/endpoints/0/l402_enabled", "yes", "/endpoints/0/l402_enabled", "not of type 'boolean'"),
        ("/l402/default_price_sats", "3", "/l402/default_price_sats", "not of type 'number'"),
        (
            "/l402/capabilities/supported_currencies",
            "BTC",
            "/l402/capabilities/supported_currencies",
            "array",
        ),
        ("/service/documentation_url", None, "/service/documentation_url", "not of type 'string'"),
    ],
)
def test_validate_reports_where_and_what(
    pointer: str, value: Any, expected_path: str, expected_text: str
) -> None:
    doc = good_manifest()
    _set(doc, pointer, value)
    errors = m.validate(doc)
    assert len(errors) == 1, errors
    assert errors[0]["path"] == expected_path
    assert expected_text in errors[0]["message"]


@pytest.mark.parametrize(
    ("remove", "expected_path", "expected_text"),
    [
        ("service", "/", "'service' is a required property"),
        ("endpoints", "/", "'endpoints' is a required property"),
    ],
)
def test_validate_reports_missing_top_level_members(
    remove: str, expected_path: str, expected_text: str
) -> None:
    doc = good_manifest()
    del doc[remove]
    assert m.validate(doc) == [{"path": expected_path, "message": expected_text}]


def test_validate_reports_missing_endpoint_members() -> None:
    errors = m.validate({"service": {"name": "x"}, "endpoints": [{"method": "GET", "pricing": {}}]})
    assert errors == [
        {"path": "/endpoints/0", "message": "'path' is a required property"},
        {"path": "/endpoints/0/pricing", "message": "'base_price_sats' is a required property"},
    ]


@pytest.mark.parametrize("document", [[], ["service"], "x", None, 3, 2.5, True])
def test_a_non_object_document_gives_one_error_at_the_root(document: Any) -> None:
    errors = m.validate(document)
    assert len(errors) == 1
    assert errors[0]["path"] == "/"
    assert "not of type 'object'" in errors[0]["message"]


@pytest.mark.parametrize(
    "document",
    [
        {"service": [], "endpoints": {}},
        {"service": {"name": None}, "endpoints": [None, 1, "x", [], {"pricing": None}]},
        {"service": {"name": "x", "categories": [[[]], {}]}, "endpoints": [{"path": 1, "method": None}]},
        {"service": {"name": "x"}, "endpoints": [], "l402": {"capabilities": []}},
        {
            "service": {"name": "x"},
            "endpoints": [{"path": "/", "method": "GET", "pricing": {"base_price_sats": 10**400}}],
        },
        {"service": {"name": "x"}, "endpoints": [], "extra": {"deep": [[[[[[[[[[]]]]]]]]]]}},
    ],
)
def test_validate_never_raises_and_reports_problems(document: Any) -> None:
    errors = m.validate(document)
    assert all(set(e) == {"path", "message"} and e["path"].startswith("/") for e in errors)
    assert errors or document.get("extra") is not None


def test_errors_are_capped_at_fifty_and_sorted_by_path() -> None:
    bad = [{"path": "nope", "method": "GET", "pricing": {"base_price_sats": 1}} for _ in range(200)]
    errors = m.validate({"service": {"name": "x"}, "endpoints": bad})
    assert len(errors) == 50
    assert [e["path"] for e in errors[:12]] == [f"/endpoints/{i}/path" for i in range(12)]  # 2 before 10


def test_errors_are_sorted_by_location_not_by_schema_order() -> None:
    doc = good_manifest()
    doc["manifest_version"] = 1
    doc["endpoints"].append({"path": "x", "method": "GET", "pricing": {"base_price_sats": 1}})
    doc["endpoints"][2] = {"path": "y", "method": "FETCH", "pricing": {"base_price_sats": -1}}
    paths = [e["path"] for e in m.validate(doc)]
    assert paths == [
        "/endpoints/2/method",
        "/endpoints/2/path",
        "/endpoints/2/pricing/base_price_sats",
        "/endpoints/3/path",
        "/manifest_version",
    ]


def test_too_many_endpoints_is_reported_on_the_array() -> None:
    endpoint = {"path": "/", "method": "GET", "pricing": {"base_price_sats": 1}}
    errors = m.validate({"service": {"name": "x"}, "endpoints": [endpoint] * 501})
    assert [e["path"] for e in errors] == ["/endpoints"]
    assert "is too long" in errors[0]["message"]


def test_messages_are_truncated_to_300_characters() -> None:
    doc = good_manifest()
    doc["service"]["name"] = "x" * 5000
    [error] = m.validate(doc)
    assert error["path"] == "/service/name"
    assert len(error["message"]) == 300
    assert error["message"].startswith("'xxx") and error["message"].endswith("' is too long")


def test_json_pointer_escapes_tilde_and_slash() -> None:
    # no schema property has such a name, so the escaping is checked on the helper itself
    assert m._pointer(["a/b", "c~d", 3]) == "/a~1b/c~0d/3"
    assert m._pointer([]) == "/"


def test_unknown_properties_are_allowed_everywhere() -> None:
    doc = good_manifest()
    doc["x-extra"] = 1
    doc["service"]["logo"] = {"url": "https://example.com/a.png"}
    doc["l402"]["capabilities"]["streaming"] = True
    doc["endpoints"][0]["rate_limit"] = {"per_minute": 60}
    doc["endpoints"][0]["pricing"]["currency"] = "sat"
    assert m.validate(doc) == []


# --- the client-documented shape and the schema itself -------------------------------------------------

CLIENT_EXAMPLE: dict[str, Any] = {
    "service": {
        "name": "Weather API",
        "description": "Forecasts",
        "base_url": "https://api.example.com/l402/proxy/abc",
        "documentation_url": "https://docs.example.com",
        "categories": ["weather", "data"],
    },
    "l402": {
        "default_price_sats": 10,
        "payment_flow": "402-challenge",
        "capabilities": {"preimage_in_response": True, "supported_currencies": ["BTC"]},
    },
    "endpoints": [
        {
            "id": "forecast",
            "path": "/forecast",
            "method": "GET",
            "summary": "Forecast",
            "description": "The forecast",
            "l402_enabled": True,
            "pricing": {"model": "per-request", "base_price_sats": 10},
            "tags": ["weather"],
            "deprecated": True,
        }
    ],
}


@pytest.mark.parametrize(
    "document",
    [
        CLIENT_EXAMPLE,
        {"service": {"name": "Minimal"}, "endpoints": []},
        {**CLIENT_EXAMPLE, "l402": {"default_price_sats": 2.5}},
        {
            "service": {"name": "Any method"},
            "endpoints": [
                {"path": "/v1/*", "method": "*", "pricing": {"base_price_sats": 0.5, "model": "metered"}}
            ],
        },
    ],
)
def test_client_documented_manifests_are_valid(document: dict[str, Any]) -> None:
    assert m.validate(document) == []


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(m.schema())
    assert m.schema()["$id"] == "https://boltgate.dev/schemas/l402-manifest.json"
    assert m.schema() is m.schema()
    assert m.SCHEMA_PATH.name == "l402-manifest.schema.json" and m.SCHEMA_PATH.parent.name == "proxy"


def test_every_schema_property_is_described() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert "description" in sub, f"{where}/{name}"
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")

    walk(m.schema(), "")
