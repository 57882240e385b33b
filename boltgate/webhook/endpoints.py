"""Webhooks API: endpoints, secret rotation, the delivery log, redelivery and a test ping."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json
from boltgate.webhook import schemas, service

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=201,
    response_model=schemas.EndpointOut,
    responses=problems(400, 401, 409, 429),
    openapi_extra=json_body(schemas.EndpointCreate),
    summary="Register a webhook endpoint (its signing secret is shown in this answer only)",
)
async def create_endpoint(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, schemas.EndpointCreate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        endpoint, secret = await service.create(
            session, ctx.secrets, ctx.settings, merchant.merchant_id, body, ctx.clock()
        )
    headers = {"Location": f"/api/webhooks/{endpoint.id}"}
    return json_response(schemas.endpoint_out(endpoint, secret), 201, headers)


@router.get(
    "", response_model=schemas.EndpointList, responses=problems(401, 429), summary="List your endpoints"
)
async def list_endpoints(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        items = await service.list_endpoints(session, merchant.merchant_id)
    return json_response({"items": [schemas.endpoint_out(e) for e in items], "total": len(items)})


@router.get(
    "/{endpoint_id}",
    response_model=schemas.EndpointOut,
    responses=problems(401, 404, 429),
    summary="Get an endpoint",
)
async def get_endpoint(ctx: Ctx, merchant: Merchant, endpoint_id: str) -> Response:
    async with ctx.db.reading() as session:
        endpoint = await service.get(session, merchant.merchant_id, endpoint_id)
    return json_response(schemas.endpoint_out(endpoint))


@router.put(
    "/{endpoint_id}",
    response_model=schemas.EndpointOut,
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(schemas.EndpointUpdate),
    summary="Change an endpoint (url, description, events, enabled); re-enabling resets its failures",
)
async def update_endpoint(request: Request, ctx: Ctx, merchant: Merchant, endpoint_id: str) -> Response:
    body = await read_json(request, schemas.EndpointUpdate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        endpoint = await service.update(
            session, ctx.settings, merchant.merchant_id, endpoint_id, body, ctx.clock()
        )
    ctx.wake.set()  # re-enabled: its held deliveries may go now
    return json_response(schemas.endpoint_out(endpoint))


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    responses=problems(401, 404, 429),
    summary="Delete an endpoint and its pending deliveries",
)
async def delete_endpoint(ctx: Ctx, merchant: Merchant, endpoint_id: str) -> Response:
    async with ctx.db.writing() as session:
        await service.remove(session, merchant.merchant_id, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=schemas.EndpointOut,
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(schemas.RotateSecret),
    summary="New signing secret (shown once); the previous one also signs for overlapSeconds",
)
async def rotate_secret(request: Request, ctx: Ctx, merchant: Merchant, endpoint_id: str) -> Response:
    body = schemas.RotateSecret()
    if await request.body():
        body = await read_json(request, schemas.RotateSecret, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        endpoint, secret = await service.rotate(
            session, ctx.secrets, merchant.merchant_id, endpoint_id, body.overlapSeconds, ctx.clock()
        )
    return json_response(schemas.endpoint_out(endpoint, secret))


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=schemas.DeliveryList,
    responses=problems(400, 401, 404, 429),
    summary="The endpoint's deliveries, newest first, each with every attempt",
)
async def list_deliveries(
    ctx: Ctx,
    merchant: Merchant,
    endpoint_id: str,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    async with ctx.db.reading() as session:
        items, total = await service.deliveries(
            session, merchant.merchant_id, endpoint_id, status, limit, offset
        )
    return json_response({"items": items, "total": total, "limit": limit, "offset": offset})


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=schemas.DeliveryOut,
    responses=problems(401, 404, 429),
    summary="Send a delivery's event again (same event id and body), after the endpoint's queue",
)
async def redeliver(ctx: Ctx, merchant: Merchant, delivery_id: str) -> Response:
    async with ctx.db.writing() as session:
        copy = await service.redeliver(session, merchant.merchant_id, delivery_id, ctx.clock())
    ctx.wake.set()
    return json_response(copy, 202)


@router.post(
    "/{endpoint_id}/test",
    response_model=schemas.PingOut,
    responses=problems(401, 404, 429),
    summary="Send a signed webhook.test event now and report the receiver's answer",
)
async def test_endpoint(ctx: Ctx, merchant: Merchant, endpoint_id: str) -> Response:
    async with ctx.db.reading() as session:
        endpoint = await service.get(session, merchant.merchant_id, endpoint_id)
    return json_response(await service.ping(endpoint, ctx.secrets, ctx.webhook_http, ctx.clock()))
