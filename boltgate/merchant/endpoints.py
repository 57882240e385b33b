"""Merchant account and API keys: list, create (shown once), revoke."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from boltgate.dashboard import auth, mail
from boltgate.errors import NotFound, Unauthorized
from boltgate.merchant import account, repository, service
from boltgate.merchant.schemas import (
    IssuedKeyOut,
    KeyCreate,
    KeyList,
    KeyOut,
    MerchantCreate,
    MerchantCreated,
    MerchantMe,
    MerchantUpdate,
    key_out,
)
from boltgate.web import Ctx, Merchant, count_auth_failure, json_body, json_response, problems, read_json

router = APIRouter(tags=["merchant"])


@router.get("/api/merchant/me", response_model=MerchantMe, responses=problems(401, 429))
async def me(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        found = await repository.get_merchant(session, merchant.merchant_id)
        if found is None:  # deleted between auth and now
            raise NotFound("merchant not found", code="merchant_not_found")
        state = await account.state(session, found, ctx.settings)
    return json_response(account.me_out(found, state, ctx.clock()))


@router.patch(
    "/api/merchant/me",
    response_model=MerchantMe,
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(MerchantUpdate),
    summary="Change your name, checkout logo and who may embed your checkout page",
)
async def update_me(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, MerchantUpdate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        found, to_confirm = await service.update_merchant(session, merchant.merchant_id, body)
        token = None
        if to_confirm is not None and mail.configured(ctx.settings):
            token = await auth.issue_confirmation(session, found.id, to_confirm, merchant.key_id, ctx.clock())
        state = await account.state(session, found, ctx.settings)
    if token is not None and to_confirm is not None:
        url = f"{ctx.settings.base_url}/dashboard/email/confirm?token={token}"
        hours = int(auth.CONFIRM_LIFETIME.total_seconds() // 3600)
        mail.send_later(ctx.settings, mail.confirm_message(ctx.settings, to_confirm, found.name, url, hours))
    return json_response(account.me_out(found, state, ctx.clock()))


@router.get("/api/merchant/keys", response_model=KeyList, responses=problems(401, 429))
async def list_keys(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        keys = await repository.list_keys(session, merchant.merchant_id)
    return json_response({"items": [key_out(k) for k in keys], "total": len(keys)})


@router.post(
    "/api/merchant/keys",
    status_code=201,
    response_model=IssuedKeyOut,
    responses=problems(400, 401, 429),
    openapi_extra=json_body(KeyCreate),
)
async def create_key(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, KeyCreate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        issued = await service.create_key(
            session, merchant.merchant_id, body.name, test=body.testMode, clock=ctx.clock
        )
    return json_response(key_out(issued.key, issued.secret), 201)


@router.delete("/api/merchant/keys/{key_id}", response_model=KeyOut, responses=problems(401, 404, 429))
async def revoke_key(ctx: Ctx, merchant: Merchant, key_id: str) -> Response:
    async with ctx.db.writing() as session:
        key = await service.revoke_key(session, merchant.merchant_id, key_id, clock=ctx.clock)
    ctx.keys.evict_key(key.id)
    return json_response(key_out(key))


@router.post(
    "/api/admin/merchants",
    status_code=201,
    response_model=MerchantCreated,
    responses=problems(400, 401, 429),
    openapi_extra=json_body(MerchantCreate),
    summary="Create a merchant (operator only: X-Admin-Key = BOLTGATE_ADMIN_API_KEY)",
)
async def create_merchant(request: Request, ctx: Ctx, x_admin_key: str | None = Header(None)) -> Response:
    expected = ctx.settings.admin_api_key
    if (
        expected is None
        or not x_admin_key
        or not hmac.compare_digest(x_admin_key.encode(), expected.get_secret_value().encode())
    ):
        await count_auth_failure(request, ctx)
        raise Unauthorized("Send the operator's admin key in X-Admin-Key", code="invalid_admin_key")
    body = await read_json(request, MerchantCreate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        merchant, issued = await service.create_merchant(session, body.name, clock=ctx.clock)
    return json_response(
        {"merchantId": merchant.id, "name": merchant.name, "apiKey": issued.secret, "keyId": issued.key.id},
        201,
    )
