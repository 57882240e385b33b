"""How agents discover a paid proxy: its L402 discovery manifest, its OpenAPI document, and a
manifest validator.

The manifest lives at ``{base}/l402/proxy/{id}/.well-known/l402-manifest.json``: the published agent
client (``discover_api``) probes there first when given the proxy's base URL, and its shape is what
that client reads (snake_case keys, prices as JSON numbers, absolute URLs). ``l402-manifest.schema.json``
writes that contract down, so the manifests boltgate builds and the ones producers upload are checked
against the same thing. Pure functions over frozen views: no database, no server.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator, validators  # type: ignore[import-untyped]

SCHEMA_PATH = Path(__file__).with_name("l402-manifest.schema.json")
MANIFEST_VERSION = "1.0"
MAX_ERRORS = 50
MAX_MESSAGE = 300
# What a "*" method stands for in OpenAPI, which has no "any method" operation.
ANY_METHODS = ("get", "post", "put", "patch", "delete")
_PARAM = re.compile(r"\{([^{}/]+)\}")
_PAYMENT_REQUIRED = (
    'Payment required. The response carries `WWW-Authenticate: L402 macaroon="…", invoice="…"` and a '
    "`WWW-Authenticate: Payment` challenge for the same Lightning invoice. Pay the invoice, then retry "
    "with `Authorization: L402 <macaroon>:<preimage>` or the `Payment` credential."
)


@dataclass(frozen=True, slots=True)
class EndpointView:
    """One priced endpoint as the documents need it (no database types)."""

    endpoint_id: str
    path: str  # pattern, e.g. "/forecast/{city}" or "/v1/*"
    method: str  # "GET" … or "*"
    price_sats: int
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProxyView:
    """A proxy and its endpoints as the documents need them (no database types)."""

    proxy_id: str
    name: str
    description: str | None  # the proxy's own description
    service_description: str | None  # manifest setting; wins over description in the manifest
    categories: tuple[str, ...]
    default_price_sats: int
    documentation_url: str | None  # None: the proxy's openapi.json URL is used
    endpoints: tuple[EndpointView, ...]


@functools.cache
def schema() -> dict[str, Any]:
    """The manifest JSON Schema, read once: it ships with the code and never changes at run time."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def proxy_base_url(base_url: str, proxy_id: str) -> str:
    """The absolute URL agents pay and call; endpoint paths are relative to it."""
    return f"{base_url.rstrip('/')}/l402/proxy/{quote(proxy_id, safe='')}"


def manifest_path(proxy_id: str) -> str:
    """Where the manifest is served, relative to the gateway (the client's first probe)."""
    return f"/l402/proxy/{quote(proxy_id, safe='')}/.well-known/l402-manifest.json"


def openapi_path(proxy_id: str) -> str:
    """Where the OpenAPI document is served, relative to the gateway."""
    return f"/l402/proxy/{quote(proxy_id, safe='')}/openapi.json"


def _service_description(view: ProxyView) -> str:
    """The manifest setting wins: producers write it for agents, the proxy's description for themselves."""
    return view.service_description or view.description or ""


def _manifest_endpoint(endpoint: EndpointView) -> dict[str, Any]:
    """One endpoint in the client's shape; absent texts are left out rather than sent as null."""
    method = endpoint.method.upper()
    item: dict[str, Any] = {"id": endpoint.endpoint_id, "path": endpoint.path, "method": method}
    if endpoint.summary is not None:
        item["summary"] = endpoint.summary
    if endpoint.description is not None:
        item["description"] = endpoint.description
    item["l402_enabled"] = endpoint.price_sats > 0
    item["pricing"] = {"model": "per-request", "base_price_sats": endpoint.price_sats}
    item["tags"] = list(endpoint.tags)
    return item


def _payment_terms(view: ProxyView) -> dict[str, Any]:
    """The manifest's ``l402`` object; a paid response never echoes the preimage (nor does its receipt)."""
    schemes = ["L402", "Payment"]
    capabilities = {"preimage_in_response": False, "supported_currencies": ["BTC"], "schemes": schemes}
    terms = {"default_price_sats": view.default_price_sats, "payment_flow": "402-challenge"}
    return {**terms, "capabilities": capabilities}


def build_manifest(view: ProxyView, base_url: str) -> dict[str, Any]:
    """The discovery manifest of ``view``; every URL in it is absolute so agents can call it as is."""
    base = base_url.rstrip("/")
    service: dict[str, Any] = {
        "name": view.name,
        "description": _service_description(view),
        "base_url": proxy_base_url(base, view.proxy_id),
        "documentation_url": view.documentation_url or base + openapi_path(view.proxy_id),
        "categories": list(view.categories),
    }
    return {
        "manifest_version": MANIFEST_VERSION,
        "generated_by": "boltgate",
        "service": service,
        "l402": _payment_terms(view),
        "endpoints": [_manifest_endpoint(endpoint) for endpoint in view.endpoints],
    }


def _openapi_path(pattern: str) -> str:
    """OpenAPI has no wildcard: a final ``*`` segment becomes the ``{rest}`` parameter."""
    if pattern == "*" or pattern.endswith("/*"):
        return pattern[:-1] + "{rest}"
    return pattern


def _path_parameters(path: str) -> list[dict[str, Any]]:
    """Every ``{name}`` of the path, declared as OpenAPI requires (path parameters are always required)."""
    parameters: list[dict[str, Any]] = []
    for name in dict.fromkeys(_PARAM.findall(path)):
        param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        if name == "rest" and path.endswith("/{rest}"):
            param["description"] = "the rest of the path"
        parameters.append(param)
    return parameters


def _operation(endpoint: EndpointView, path: str, operation_id: str, method: str) -> dict[str, Any]:
    """One operation; only a priced one carries the 402 response and the security requirement."""
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": endpoint.summary or f"{method.upper()} {endpoint.path}",
    }
    if endpoint.description is not None:
        operation["description"] = endpoint.description
    if endpoint.tags:
        operation["tags"] = list(endpoint.tags)
    if parameters := _path_parameters(path):
        operation["parameters"] = parameters
    operation["responses"] = {"200": {"description": "The upstream service's response, passed through."}}
    if endpoint.price_sats > 0:
        operation["responses"]["402"] = {"description": _PAYMENT_REQUIRED}
        operation["security"] = [{"L402": []}, {"Payment": []}]
    operation["x-l402"] = {"price_sats": endpoint.price_sats, "model": "per-request"}
    return operation


def _add_operations(paths: dict[str, dict[str, Any]], endpoint: EndpointView) -> None:
    """Add ``endpoint``'s operations; an operation already there (an explicit method) is kept."""
    path = _openapi_path(endpoint.path)
    item = paths.setdefault(path, {})
    if endpoint.method == "*":
        for method in ANY_METHODS:
            operation_id = f"{endpoint.endpoint_id}_{method}"
            item.setdefault(method, _operation(endpoint, path, operation_id, method))
    else:
        method = endpoint.method.lower()
        item.setdefault(method, _operation(endpoint, path, endpoint.endpoint_id, method))


def build_openapi(view: ProxyView, base_url: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the proxy, for tools that read OpenAPI rather than the manifest."""
    paths: dict[str, dict[str, Any]] = {}
    # Explicit methods first, so that they win over a "*" endpoint on the same path.
    for endpoint in sorted(view.endpoints, key=lambda e: e.method == "*"):
        _add_operations(paths, endpoint)
    schemes = {
        "L402": {"type": "http", "scheme": "L402", "description": "L402 <macaroon>:<preimage>"},
        "Payment": {"type": "http", "scheme": "Payment", "description": "Payment <credential>"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": view.name, "description": _service_description(view), "version": "1.0.0"},
        "servers": [{"url": proxy_base_url(base_url, view.proxy_id)}],
        "paths": paths,
        "components": {"securitySchemes": schemes},
        "x-l402-default-price-sats": view.default_price_sats,
    }


def _finite_number(checker: Any, instance: Any) -> bool:
    """JSON has no NaN or Infinity, but Python's json module reads them: they are not prices."""
    if not Draft202012Validator.TYPE_CHECKER.is_type(instance, "number"):
        return False
    return not isinstance(instance, float) or math.isfinite(instance)


@functools.cache
def _validator() -> Any:
    """Built once: compiling the schema's references costs more than a validation."""
    checker = Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number)
    return validators.extend(Draft202012Validator, type_checker=checker)(schema())


def _pointer(parts: Any) -> str:
    """RFC 6901 JSON Pointer of an error's location; the document itself is "/"."""
    tokens = [str(part).replace("~", "~0").replace("/", "~1") for part in parts]
    return "/" + "/".join(tokens)


def _sort_key(error: Any) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """By location (indexes numerically, names alphabetically), then message: a stable order."""
    path = tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path)
    return path, str(error.message)


def _shorten(message: str) -> str:
    """At most 300 characters, cut in the middle: jsonschema puts the value first and the reason last."""
    if len(message) <= MAX_MESSAGE:
        return message
    half = (MAX_MESSAGE - 1) // 2
    return message[:half] + "…" + message[-(MAX_MESSAGE - 1 - half) :]


def validate(document: Any) -> list[dict[str, str]]:
    """The manifest's problems as ``{"path", "message"}`` (at most 50); ``[]`` when it is valid.

    Meant for untrusted input (uploaded manifests): any JSON value is accepted without raising.
    """
    errors = sorted(_validator().iter_errors(document), key=_sort_key)
    return [
        {"path": _pointer(error.absolute_path), "message": _shorten(str(error.message))}
        for error in errors[:MAX_ERRORS]
    ]
