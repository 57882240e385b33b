"""Property: whatever a producer may store through the API (anything the request models accept),
the discovery manifest built from it validates against the manifest schema, and the OpenAPI
document declares every path parameter it uses. Inputs go through the same Pydantic models as
``POST /api/proxy``, ``…/manifest/endpoints`` and ``…/manifest/settings``."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from boltgate.proxy import manifest as m
from boltgate.proxy.manifest import EndpointView, ProxyView
from boltgate.proxy.schemas import EndpointCreate, ManifestSettings, ProxyCreate

BASE = "https://pay.example.com"
PRINTABLE = st.characters(categories=["L", "N", "P", "S", "Zs"])
TEXT = st.text(PRINTABLE, max_size=60)
SEGMENT = st.one_of(
    st.text(
        alphabet=st.characters(categories=["L", "N", "P", "S"], exclude_characters="/{}*?#%"),
        min_size=1,
        max_size=12,
    ),
    st.text(alphabet="abcxyz_", min_size=1, max_size=8).map(lambda name: "{" + name + "}"),
)
PATHS = st.one_of(
    st.lists(SEGMENT, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.lists(SEGMENT, max_size=3).map(lambda parts: "/" + "/".join([*parts, "*"])),
    TEXT,
)


def _accepted(model: Any, body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError:
        assume(False)


@st.composite
def endpoints(draw: st.DrawFn, index: int) -> EndpointView:
    body = {
        "endpointId": f"e{index}-" + draw(st.from_regex(r"[a-z0-9._-]{0,10}", fullmatch=True)),
        "path": draw(PATHS),
        "httpMethod": draw(st.sampled_from(["GET", "post", "*", "ANY", "HEAD", "OPTIONS", "PATCH"])),
        "basePriceSats": draw(st.integers(0, 10**6)),
        "summary": draw(st.one_of(st.none(), TEXT)),
        "description": draw(st.one_of(st.none(), st.text(max_size=200))),
        "tags": draw(st.one_of(st.none(), st.lists(TEXT, max_size=4))),
    }
    made = _accepted(EndpointCreate, body)
    return EndpointView(
        made.endpointId,
        made.path,
        made.httpMethod,
        made.basePriceSats,
        made.summary,
        made.description,
        tuple(made.tags or ()),
    )


@st.composite
def proxies(draw: st.DrawFn) -> ProxyView:
    created = _accepted(
        ProxyCreate,
        {
            "name": draw(st.text(PRINTABLE, min_size=1, max_size=80)),
            "targetBaseUrl": "https://upstream.example",
            "defaultPriceSats": draw(st.integers(0, 10**6)),
            "description": draw(st.one_of(st.none(), st.text(max_size=200))),
        },
    )
    chosen = _accepted(
        ManifestSettings,
        {
            "serviceDescription": draw(st.one_of(st.none(), st.text(max_size=200))),
            "categories": draw(st.one_of(st.none(), st.lists(TEXT, max_size=5))),
            "documentationUrl": draw(st.one_of(st.none(), st.just("https://docs.example.com/api"))),
        },
    )
    count = draw(st.integers(0, 6))
    views = [draw(endpoints(i)) for i in range(count)]
    return ProxyView(
        proxy_id=draw(st.from_regex(r"prx_[A-Za-z0-9]{20}", fullmatch=True)),
        name=created.name,
        description=created.description,
        service_description=chosen.serviceDescription,
        categories=tuple(chosen.categories or ()),
        default_price_sats=created.defaultPriceSats,
        documentation_url=chosen.documentationUrl,
        endpoints=tuple(views),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(proxies())
def test_what_the_api_accepts_gives_a_valid_manifest(view: ProxyView) -> None:
    document = m.build_manifest(view, BASE)
    assert m.validate(document) == [], document
    assert len(document["endpoints"]) == len(view.endpoints)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(proxies())
def test_every_openapi_path_parameter_is_declared(view: ProxyView) -> None:
    document = m.build_openapi(view, BASE)
    for path, operations in document["paths"].items():
        used = set(re.findall(r"\{([^{}/]+)\}", path))
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
            assert declared == used, (path, operation)
