"""How agents find paid APIs: each proxy's manifest and OpenAPI document, and the public registry.

The manifest (``/l402/proxy/{id}/.well-known/l402-manifest.json``) follows the schema in
``l402-manifest.schema.json`` (what the published ``discover_api`` client reads). The registry
lists the proxies their producers chose to list (and did not retire), with absolute URLs, searched
with ``q`` (every word must appear in the name, a description or a category, in any case —
folded by Python at write time, so both databases agree beyond ASCII) and ``category`` (a whole
category, in any case). ``POST /api/manifests/validate`` checks any JSON against the manifest schema.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from boltgate.errors import MalformedRequest, NotFound, PayloadTooLarge
from boltgate.kit.search import contains, has_key, split_lines
from boltgate.proxy import manifest
from boltgate.proxy.directory import Entry
from boltgate.proxy.forward import find
from boltgate.proxy.models import Proxy, ProxyEndpoint
from boltgate.web import Ctx, ip_rate_limit, json_response, problems

router = APIRouter(tags=["l402 discovery"], dependencies=[Depends(ip_rate_limit)])
CACHE = {"Cache-Control": "public, max-age=60", "Access-Control-Allow-Origin": "*"}


def _published(entry: Entry) -> Entry:
    if not entry.manifest_enabled:
        raise NotFound(f"proxy {entry.proxy_id} publishes no manifest", code="manifest_not_enabled")
    return entry


@router.get(
    "/l402/proxy/{proxy_id}/.well-known/l402-manifest.json",
    responses=problems(404, 410, 429),
    summary="A proxy's discovery manifest (service, default price, endpoints and their prices)",
)
async def get_manifest(ctx: Ctx, proxy_id: str) -> Response:
    entry = _published(await find(ctx, proxy_id))
    return json_response(manifest.build_manifest(entry.view, ctx.settings.base_url), headers=CACHE)


@router.get(
    "/l402/proxy/{proxy_id}/openapi.json",
    responses=problems(404, 410, 429),
    summary="A proxy's OpenAPI document, with each operation's price (x-l402)",
)
async def get_openapi(ctx: Ctx, proxy_id: str) -> Response:
    entry = _published(await find(ctx, proxy_id))
    return json_response(manifest.build_openapi(entry.view, ctx.settings.base_url), headers=CACHE)


def _listed(q: str | None, category: str | None) -> Any:
    conditions: list[Any] = [
        Proxy.manifest_listed.is_(True),
        Proxy.manifest_enabled.is_(True),
        Proxy.retired_at.is_(None),
    ]
    for word in (q or "").split():
        conditions.append(contains(Proxy.search_text, word))
    if category:
        conditions.append(has_key(Proxy.category_keys, category))
    return conditions


def _item(proxy: Proxy, endpoint_count: int, base_url: str) -> dict[str, Any]:
    base = manifest.proxy_base_url(base_url, proxy.id)
    return {
        "name": proxy.name,
        "description": proxy.service_description or proxy.description or "",
        "manifestUrl": base_url + manifest.manifest_path(proxy.id),
        "proxyBaseUrl": base,
        "documentationUrl": proxy.documentation_url or base_url + manifest.openapi_path(proxy.id),
        "parsedCategories": split_lines(proxy.categories),
        "endpointCount": endpoint_count,
        "defaultPriceSats": proxy.default_price_sats,
        "proxyId": proxy.id,
    }


@router.get(
    "/api/manifests/registry",
    responses=problems(400, 429),
    summary="Public registry of paid APIs: search by words (q) and category; absolute URLs",
)
async def registry(
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")] = None,
    category: Annotated[str | None, Query(max_length=50, pattern=r"^[^\x00-\x1f\x7f,]*$")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    pageSize: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    conditions = _listed(q, category)
    counts = (
        select(ProxyEndpoint.proxy_id, func.count().label("n")).group_by(ProxyEndpoint.proxy_id).subquery()
    )
    stmt = (
        select(Proxy, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.proxy_id == Proxy.id)
        .where(*conditions)
        .order_by(Proxy.created_at.desc(), Proxy.id)
        .limit(pageSize)
        .offset((page - 1) * pageSize)
    )
    async with ctx.db.reading() as session:
        total = await session.scalar(select(func.count()).select_from(Proxy).where(*conditions))
        rows = (await session.execute(stmt)).all()
    items = [_item(proxy, int(n), ctx.settings.base_url) for proxy, n in rows]
    return json_response({"items": items, "total": total or 0, "page": page, "pageSize": pageSize})


@router.post(
    "/api/manifests/validate",
    responses=problems(400, 429),
    summary="Check a manifest (any JSON) against the L402 manifest schema: {valid, errors:[{path, message}]}",
)
async def validate(request: Request, ctx: Ctx) -> Response:
    body = await request.body()
    if len(body) > ctx.settings.max_body_bytes:
        raise PayloadTooLarge(f"The body must be at most {ctx.settings.max_body_bytes} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc.msg}", code="malformed_json") from exc
    errors = manifest.validate(document)
    return json_response({"valid": not errors, "errors": errors})


@router.get("/api/manifests/schema", responses=problems(429), summary="The L402 manifest JSON Schema")
async def schema() -> Response:
    return json_response(manifest.schema(), headers=CACHE)
