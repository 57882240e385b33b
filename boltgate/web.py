"""Shared HTTP plumbing of the endpoints: JSON in, JSON out, auth and rate-limit dependencies,
and the documented error responses each route lists in ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import annotated_types
import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from limits import RateLimitItem
from limits import parse as parse_limit
from pydantic import BaseModel, ValidationError
from starlette.routing import BaseRoute

from boltgate.context import Context, get_context
from boltgate.errors import (
    MalformedRequest,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from boltgate.merchant.auth import Principal, authenticate

M = TypeVar("M", bound=BaseModel)
Ctx = Annotated[Context, Depends(get_context)]

_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["error", "type", "title", "status", "detail", "message"],
    "properties": {
        "error": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"},
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}
_DESCRIPTIONS = {
    400: "Invalid input (problem details; `errors` per field)",
    401: "Missing or invalid API key",
    403: "Not allowed for this caller (e.g. not a party to the agreement)",
    402: "Payment required: pay the invoice of a WWW-Authenticate challenge (L402 or Payment), then retry",
    404: "Not found (or another merchant's object)",
    409: "Conflict with an existing object",
    410: "Gone: retired (unpublished) or expired",
    413: "The request body is too large",
    431: "Request headers too large",
    429: "Rate limited (see Retry-After)",
    502: "The upstream could not be reached (or its address is not allowed)",
    503: "A dependency (exchange rates, Lightning backend) is unavailable, or too busy",
    504: "The upstream did not answer in time",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given problem statuses."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the endpoint parses itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    }


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for item in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        errors.setdefault(loc, []).append(message)
    return errors


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """Parse and validate a JSON body: 400 with a stable code for every way it can be wrong."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            "Send the body as JSON with Content-Type: application/json", code="unsupported_media_type"
        )
    body = await request.body()
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The body must be at most {max_bytes} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc.msg}", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise MalformedRequest("The body must be a JSON object", code="malformed_json")
    _check_raw_lengths(model, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from exc


def invalid(errors: dict[str, list[str]]) -> ValidationFailed:
    """The 400 of a body's field errors; its detail names the first."""
    field, messages = next(iter(errors.items()))
    return ValidationFailed(f"{field}: {messages[0]}", errors=errors)


@lru_cache(maxsize=256)
def _max_lengths(model: type[BaseModel]) -> tuple[tuple[str, int], ...]:
    """(JSON name, maxLength) of the model's top-level text fields."""
    limits = []
    for name, info in model.model_fields.items():
        limit = next((m.max_length for m in info.metadata if isinstance(m, annotated_types.MaxLen)), None)
        if limit is not None:
            limits.append((info.alias or name, limit))
    return tuple(limits)


def _check_raw_lengths(model: type[BaseModel], data: dict[str, Any]) -> None:
    """``maxLength`` as documented, on the value as sent: the models strip blanks first, which let
    a 201-character value with surrounding blanks pass a documented 200 (found by bench/fuzz.py)."""
    errors = {
        name: [f"String should have at most {limit} characters"]
        for name, limit in _max_lengths(model)
        if isinstance(value := data.get(name), str) and len(value) > limit
    }
    if errors:
        raise invalid(errors)


API_KEY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-API-Key",
    "description": "your API key (le_live_…); the header name is case-insensitive",
}


async def merchant_auth(request: Request) -> Principal:
    """The merchant of the ``X-API-Key`` header, rate limited per key.

    One flat dependency on purpose: nested FastAPI dependencies (context, security scheme) cost
    ~120 µs per request here (measured); ``/openapi.json`` still documents the scheme
    (:mod:`boltgate.ops.openapi` marks every route that depends on this function).
    """
    ctx: Context = request.app.state.ctx
    try:
        principal = await authenticate(ctx.db, ctx.keys, request.headers.get("x-api-key"))
    except Unauthorized:
        await count_auth_failure(request, ctx)
        raise
    await ctx.limiter.check("key:" + principal.key_id)
    return principal


def client_address(request: Request) -> str:
    """The client's address as uvicorn sees it (the proxy's ``X-Forwarded-For`` when trusted)."""
    return request.client.host if request.client else "unknown"


async def count_auth_failure(request: Request, ctx: Context) -> None:
    """Count a missing or wrong key (API or admin) against the client address; 429 past
    ``BOLTGATE_AUTH_FAILURE_RATE_LIMIT``: each costs a look-up, and guessing should be slow."""
    limit = _auth_failures(ctx.settings.auth_failure_rate_limit)
    await ctx.limiter.check("auth-failure:" + client_address(request), limit)


@lru_cache(maxsize=4)
def _auth_failures(rate: str) -> RateLimitItem:
    return parse_limit(rate)


async def ip_rate_limit(request: Request, ctx: Ctx) -> None:
    await ctx.limiter.check("ip:" + client_address(request))


Merchant = Annotated[Principal, Depends(merchant_auth)]


def iter_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, including those of included routers (FastAPI keeps those nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from iter_routes(nested.routes)
        else:
            yield route
