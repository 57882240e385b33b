"""The dashboard's managing pages: webhook endpoints (create with the secret shown once, delete,
send a test) and API keys (create shown once, revoke). Each action is a CSRF-checked form that
calls the same service functions as the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from boltgate.context import Context
from boltgate.dashboard.session import Signed
from boltgate.dashboard.web import error_page, guard, guard_form, redirect, render
from boltgate.errors import BoltgateError
from boltgate.merchant import repository as merchant_repository
from boltgate.merchant import service as merchant_service
from boltgate.web import Ctx, field_errors
from boltgate.webhook import events as webhook_events
from boltgate.webhook import schemas as webhook_schemas
from boltgate.webhook import service as webhook_service

router = APIRouter(include_in_schema=False)
EVENT_TYPES = sorted(webhook_events.EVENT_TYPES)


async def _webhooks(ctx: Context, me: Signed, status: int = 200, **values: object) -> Response:
    async with ctx.db.reading() as session:
        endpoints = await webhook_service.list_endpoints(session, me.merchant_id)
    return render(ctx, "webhooks.html", status, me=me, endpoints=endpoints, event_types=EVENT_TYPES, **values)


@router.get("/dashboard/webhooks")
async def webhooks(request: Request, ctx: Ctx) -> Response:
    me = await guard(request, ctx)
    if isinstance(me, Response):
        return me
    return await _webhooks(ctx, me, deleted=request.query_params.get("deleted") == "1")


@router.post("/dashboard/webhooks")
async def create_webhook(request: Request, ctx: Ctx) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        return got
    me, form = got
    chosen = [name for name in EVENT_TYPES if form.get("event:" + name) == "on"]
    try:
        body = webhook_schemas.EndpointCreate.model_validate(
            {"url": form.get("url", ""), "description": form.get("description") or None, "events": chosen}
        )
        async with ctx.db.writing() as session:
            endpoint, secret = await webhook_service.create(
                session, ctx.secrets, ctx.settings, me.merchant_id, body, ctx.clock()
            )
    except ValidationError as exc:
        field, messages = next(iter(field_errors(exc).items()))
        message = f"{field}: {messages[0]}"
        return await _webhooks(ctx, me, 400, error=message, form=form)
    except BoltgateError as exc:
        return await _webhooks(ctx, me, exc.status, error=exc.detail, form=form)
    return await _webhooks(ctx, me, 201, created=endpoint, secret=secret)


@router.post("/dashboard/webhooks/{endpoint_id}/delete")
async def delete_webhook(request: Request, ctx: Ctx, endpoint_id: str) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        return got
    me, _ = got
    try:
        async with ctx.db.writing() as session:
            await webhook_service.remove(session, me.merchant_id, endpoint_id[:64])
    except BoltgateError as exc:
        return error_page(ctx, exc.status, exc.code, exc.detail, me)
    return redirect("/dashboard/webhooks?deleted=1")


@router.post("/dashboard/webhooks/{endpoint_id}/test")
async def test_webhook(request: Request, ctx: Ctx, endpoint_id: str) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        return got
    me, _ = got
    try:
        async with ctx.db.reading() as session:
            endpoint = await webhook_service.get(session, me.merchant_id, endpoint_id[:64])
    except BoltgateError as exc:
        return error_page(ctx, exc.status, exc.code, exc.detail, me)
    outcome = await webhook_service.ping(endpoint, ctx.secrets, ctx.webhook_http, ctx.clock())
    return await _webhooks(ctx, me, tested=endpoint.id, outcome=outcome)


async def _keys(ctx: Context, me: Signed, status: int = 200, **values: object) -> Response:
    async with ctx.db.reading() as session:
        keys = await merchant_repository.list_keys(session, me.merchant_id)
        merchant = await merchant_repository.get_merchant(session, me.merchant_id)
    # the key that set the sign-in address: revoking it takes the address off (say so first)
    address = (merchant.email_key_id, merchant.email) if merchant is not None else (None, None)
    return render(ctx, "keys.html", status, me=me, keys=keys, address=address, **values)


@router.get("/dashboard/keys")
async def keys(request: Request, ctx: Ctx) -> Response:
    me = await guard(request, ctx)
    if isinstance(me, Response):
        return me
    return await _keys(ctx, me, revoked=request.query_params.get("revoked") == "1")


@router.post("/dashboard/keys")
async def create_key(request: Request, ctx: Ctx) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        return got
    me, form = got
    try:
        async with ctx.db.writing() as session:
            issued = await merchant_service.create_key(
                session,
                me.merchant_id,
                form.get("name", "").strip() or "dashboard",
                test=form.get("test_mode") == "on",
                clock=ctx.clock,
            )
    except BoltgateError as exc:
        return await _keys(ctx, me, exc.status, error=exc.detail)
    return await _keys(ctx, me, 201, created=issued.key, secret=issued.secret)


@router.post("/dashboard/keys/{key_id}/revoke")
async def revoke_key(request: Request, ctx: Ctx, key_id: str) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        return got
    me, _ = got
    try:
        async with ctx.db.writing() as session:
            key = await merchant_service.revoke_key(session, me.merchant_id, key_id[:64], clock=ctx.clock)
    except BoltgateError as exc:
        return error_page(ctx, exc.status, exc.code, exc.detail, me)
    ctx.keys.evict_key(key.id)
    return redirect("/dashboard/keys?revoked=1")
