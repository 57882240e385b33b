"""Where a merchant's invoices are made: its NWC wallet (the Lightning Enable route) or another
connection of its own, and the switch between them and the gateway's backend.

``PUT /api/merchant/nwc-connection`` ``{"nwcConnectionString": "nostr+walletconnect://…"}``
``DELETE /api/merchant/nwc-connection``
``PUT /api/merchant/payment-provider`` ``{"provider": "nwc" | "gateway" | <kind>, "connectionUrl"?: …}``
``GET /api/merchant/payment-provider``

A connection is checked with the wallet before it is saved; nothing is saved when the check
fails (400 with the reason). Secrets are never echoed: connections are shown masked.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from boltgate.errors import NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.merchant import backends
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(tags=["merchant"])


class NwcConnection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    nwcConnectionString: str = Field(
        min_length=1,
        max_length=4096,
        description="nostr+walletconnect://<wallet pubkey>?relay=wss://…&secret=<hex>: a live credential, "
        "stored encrypted and never shown again",
    )


class ProviderChoice(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    provider: str = Field(min_length=1, max_length=32, description="gateway, nwc, lnbits, strike, opennode…")
    connectionUrl: str | None = Field(
        None,
        max_length=8192,
        description="a connection URL of the provider's kind, checked and saved before switching",
    )


def _shown(described: dict[str, object]) -> dict[str, object]:
    connections = described["connections"]
    assert isinstance(connections, list)
    for item in connections:
        item["createdAt"] = rfc3339(item["createdAt"])
    return described


@router.put(
    "/api/merchant/nwc-connection",
    responses=problems(400, 401, 429),
    openapi_extra=json_body(NwcConnection),
    summary="Save the NWC wallet your invoices can be made on (checked with the wallet first)",
)
async def put_nwc(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, NwcConnection, ctx.settings.max_body_bytes)
    url = body.nwcConnectionString.strip()
    scheme = url.partition("://")[0].lower()
    if scheme not in ("nostr+walletconnect", "nwc"):
        message = "must be a nostr+walletconnect:// connection string"
        raise ValidationFailed(
            message, errors={"nwcConnectionString": [message]}, code="invalid_connection_url"
        )
    kind, shown = await backends.check(
        url, ctx.backends.env, "nwcConnectionString", cleartext_ok=ctx.settings.is_dev
    )
    async with ctx.db.writing() as session:
        row = await backends.save(
            session, ctx.backends.box, merchant.merchant_id, kind, url, shown, ctx.clock()
        )
    ctx.backends.forget(merchant.merchant_id)
    return json_response(
        {"success": True, "hasNwcConnection": True, "connectionId": row.id, "connection": shown}
    )


@router.delete(
    "/api/merchant/nwc-connection",
    status_code=204,
    responses=problems(401, 404, 429),
    summary="Forget your NWC wallet (invoices already made on it are still watched)",
)
async def delete_nwc(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.writing() as session:
        found = await backends.retire(session, merchant.merchant_id, "nwc", ctx.clock())
    ctx.backends.forget(merchant.merchant_id)
    if not found:
        raise NotFound("no NWC connection is saved", code="connection_not_found")
    return Response(status_code=204)


@router.put(
    "/api/merchant/payment-provider",
    responses=problems(400, 401, 409, 429),
    openapi_extra=json_body(ProviderChoice),
    summary="Choose where your invoices are made: the gateway's backend or a connection of yours",
)
async def put_provider(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, ProviderChoice, ctx.settings.max_body_bytes)
    provider = body.provider.lower()
    if provider not in backends.PROVIDERS:
        message = f"must be one of {', '.join(sorted(backends.PROVIDERS))}"
        raise ValidationFailed(message, errors={"provider": [message]})
    checked = None
    if body.connectionUrl is not None:
        if provider == backends.GATEWAY:
            message = "the gateway's backend takes no connectionUrl"
            raise ValidationFailed(message, errors={"connectionUrl": [message]})
        checked = await backends.check(
            body.connectionUrl, ctx.backends.env, "connectionUrl", cleartext_ok=ctx.settings.is_dev
        )
        if checked[0] != provider:
            message = f"the connection is a {checked[0]} one, not {provider}"
            raise ValidationFailed(
                message, errors={"connectionUrl": [message]}, code="invalid_connection_url"
            )
    async with ctx.db.writing() as session:
        if checked is not None and body.connectionUrl is not None:
            await backends.save(
                session,
                ctx.backends.box,
                merchant.merchant_id,
                provider,
                body.connectionUrl.strip(),
                checked[1],
                ctx.clock(),
            )
        await backends.set_provider(session, merchant.merchant_id, provider)
        described = await backends.describe(session, merchant.merchant_id)
    ctx.backends.forget(merchant.merchant_id)
    return json_response({"success": True, **_shown(described)})


@router.get(
    "/api/merchant/payment-provider",
    responses=problems(401, 429),
    summary="Where your invoices are made, and your saved connections (masked)",
)
async def get_provider(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        described = await backends.describe(session, merchant.merchant_id)
    return json_response(_shown(described))
