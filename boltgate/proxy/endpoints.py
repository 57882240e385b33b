"""The proxy producer API: a merchant's proxies, their priced endpoints, manifest settings, retirement."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from boltgate.agent import market
from boltgate.context import Context
from boltgate.errors import Gone
from boltgate.proxy import schemas, service
from boltgate.proxy.models import Proxy
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(prefix="/api/proxy", tags=["l402 proxy"])


async def _out(ctx: Context, proxy: Proxy) -> dict[str, object]:
    async with ctx.db.reading() as session:
        endpoints = (await service.endpoints_of(session, [proxy.id])).get(proxy.id, [])
    return service.proxy_out(proxy, endpoints)


@router.post(
    "",
    status_code=201,
    response_model=schemas.ProxyOut,
    responses=problems(400, 401, 409, 429),
    openapi_extra=json_body(schemas.ProxyCreate),
    summary="Put an upstream API behind a paid proxy (proxyUrl is relative to this server)",
)
async def create_proxy(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, schemas.ProxyCreate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        proxy = await service.create(session, merchant.merchant_id, body, ctx.clock(), ctx.proxy_networks)
    headers = {"Location": f"/api/proxy/{proxy.id}"}
    return json_response(service.proxy_out(proxy, []), 201, headers)


@router.get("", response_model=schemas.ProxyList, responses=problems(401, 429), summary="Your proxies")
async def list_proxies(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        proxies = await service.list_for(session, merchant.merchant_id)
        endpoints = await service.endpoints_of(session, [p.id for p in proxies])
    items = [service.proxy_out(p, endpoints.get(p.id, [])) for p in proxies]
    return json_response({"items": items, "total": len(items)})


@router.get(
    "/{proxy_id}", response_model=schemas.ProxyOut, responses=problems(401, 404, 429), summary="A proxy"
)
async def get_proxy(ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    async with ctx.db.reading() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id)
    return json_response(await _out(ctx, proxy))


@router.put(
    "/{proxy_id}",
    response_model=schemas.ProxyOut,
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(schemas.ProxyUpdate),
    summary="Change a proxy: only the fields given (name, targetBaseUrl, prices, token rules)",
)
async def update_proxy(request: Request, ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    body = await read_json(request, schemas.ProxyUpdate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        service.update(proxy, body, ctx.clock(), ctx.proxy_networks)
    ctx.proxies.forget(proxy_id)
    return json_response(await _out(ctx, proxy))


@router.delete(
    "/{proxy_id}",
    status_code=204,
    responses=problems(401, 404, 429),
    summary="Delete a proxy and its endpoints (its URLs answer 404 from then on; to keep them "
    "answering 410, unpublish instead)",
)
async def delete_proxy(ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    now = ctx.clock()
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        # its listings leave the marketplace and the relays too
        removals = await market.withdraw(session, ctx.platform, proxy_id, "deleted", now)
        await service.delete_proxy(session, proxy)
    ctx.proxies.forget(proxy_id)
    ctx.platform.publish_later(removals)
    return Response(status_code=204)


@router.post(
    "/{proxy_id}/manifest/endpoints",
    status_code=201,
    response_model=schemas.EndpointOut,
    responses={
        200: {"description": "The same endpoint again: nothing changed", "model": schemas.EndpointOut},
        **problems(400, 401, 404, 409, 429),
    },
    openapi_extra=json_body(schemas.EndpointCreate),
    summary="Price requests by method and path pattern (/forecast/{city}); the same body again is a no-op",
)
async def add_endpoint(request: Request, ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    body = await read_json(request, schemas.EndpointCreate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        endpoint, created = await service.add_endpoint(session, proxy, body, ctx.clock())
    ctx.proxies.forget(proxy_id)
    return json_response(service.endpoint_out(proxy_id, endpoint), 201 if created else 200)


@router.get(
    "/{proxy_id}/manifest/endpoints", responses=problems(401, 404, 429), summary="A proxy's priced endpoints"
)
async def list_endpoints(ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    async with ctx.db.reading() as session:
        await service.get(session, merchant.merchant_id, proxy_id)
        endpoints = (await service.endpoints_of(session, [proxy_id])).get(proxy_id, [])
    items = [service.endpoint_out(proxy_id, e) for e in endpoints]
    return json_response({"items": items, "total": len(items)})


@router.put(
    "/{proxy_id}/manifest/endpoints/{endpoint_id}",
    response_model=schemas.EndpointOut,
    responses=problems(400, 401, 404, 409, 429),
    openapi_extra=json_body(schemas.EndpointUpdate),
    summary="Change a priced endpoint (only the fields given)",
)
async def update_endpoint(
    request: Request, ctx: Ctx, merchant: Merchant, proxy_id: str, endpoint_id: str
) -> Response:
    body = await read_json(request, schemas.EndpointUpdate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        endpoint = await service.get_endpoint(session, proxy, endpoint_id)
        await service.update_endpoint(session, proxy, endpoint, body, ctx.clock())
    ctx.proxies.forget(proxy_id)
    return json_response(service.endpoint_out(proxy_id, endpoint))


@router.delete(
    "/{proxy_id}/manifest/endpoints/{endpoint_id}",
    status_code=204,
    responses=problems(401, 404, 429),
    summary="Remove a priced endpoint (its paths then cost the default price)",
)
async def delete_endpoint(ctx: Ctx, merchant: Merchant, proxy_id: str, endpoint_id: str) -> Response:
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        endpoint = await service.get_endpoint(session, proxy, endpoint_id)
        await service.delete_endpoint(session, proxy, endpoint, ctx.clock())
    ctx.proxies.forget(proxy_id)
    return Response(status_code=204)


@router.get(
    "/{proxy_id}/manifest/settings",
    response_model=schemas.SettingsOut,
    responses=problems(401, 404, 429),
    summary="A proxy's discovery settings",
)
async def get_settings(ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    async with ctx.db.reading() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id)
    return json_response(service.settings_out(proxy))


@router.put(
    "/{proxy_id}/manifest/settings",
    response_model=schemas.SettingsOut,
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(schemas.ManifestSettings),
    summary="Discovery: serve the manifest, list the proxy in the public registry, describe it",
)
async def update_settings(request: Request, ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    body = await read_json(request, schemas.ManifestSettings, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        if proxy.retired_at is not None and body.manifestPubliclyListed:
            raise Gone(f"proxy {proxy_id} is retired and cannot be listed", code="proxy_retired")
        service.update_settings(proxy, body, ctx.clock())
    ctx.proxies.forget(proxy_id)
    return json_response(service.settings_out(proxy))


@router.post(
    "/{proxy_id}/unpublish",
    response_model=schemas.UnpublishOut,
    responses=problems(400, 401, 404, 429),
    summary="Retire a proxy: its URLs answer 410 and it leaves the registry (idempotent)",
)
async def unpublish(request: Request, ctx: Ctx, merchant: Merchant, proxy_id: str) -> Response:
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    body = (
        await read_json(request, schemas.Unpublish, ctx.settings.max_body_bytes)
        if has_body
        else schemas.Unpublish()
    )
    now = ctx.clock()
    async with ctx.db.writing() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id, lock=True)
        already = service.unpublish(proxy, body.reason, now)
        # the listings it backs leave the marketplace in the same transaction (NIP-09 deletion and a
        # status=removed replacement each); a proxy retired before has nothing left to withdraw
        removals = [] if already else await market.withdraw(session, ctx.platform, proxy_id, body.reason, now)
    ctx.proxies.forget(proxy_id)
    ctx.platform.publish_later(removals)
    return json_response({"proxyId": proxy_id, "retired": True, "alreadyRetired": already})
