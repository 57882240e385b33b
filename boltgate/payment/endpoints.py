"""Payments API (the Standalone API): create, get, get by order id, list."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator

from boltgate.errors import ValidationFailed
from boltgate.payment import repository, service
from boltgate.payment.schemas import PaymentCreate, PaymentList, PaymentOut, payment_out
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json
from boltgate.webhook import sse

router = APIRouter(prefix="/api/payments", tags=["payments"])

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")


def _rfc3339_text(value: object) -> object:
    """A time as documented (RFC 3339): pydantic alone would also take a number as a Unix time."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value.strip()):
        raise ValueError("must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339_text)]


@router.post(
    "",
    status_code=201,
    response_model=PaymentOut,
    responses={
        200: {"description": "The existing payment of this orderId / Idempotency-Key", "model": PaymentOut},
        **problems(400, 401, 409, 429, 502, 503),
    },
    openapi_extra=json_body(PaymentCreate),
    summary="Create a payment (a Lightning invoice for an order)",
)
async def create_payment(
    request: Request,
    ctx: Ctx,
    merchant: Merchant,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    body = await read_json(request, PaymentCreate, ctx.settings.max_body_bytes)
    backend, backend_ref = await ctx.backends.for_merchant(merchant.merchant_id)
    payment, created = await service.create_payment(
        ctx.db,
        backend,
        ctx.rates,
        ctx.settings,
        merchant.merchant_id,
        body,
        idempotency_key=idempotency_key,
        clock=ctx.clock,
        backend_ref=backend_ref,
    )
    headers = {"Location": f"/api/payments/{payment.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return json_response(payment_out(payment, ctx.settings.base_url), 201 if created else 200, headers)


@router.get(
    "",
    response_model=PaymentList,
    responses=problems(400, 401, 429),
    summary="List your payments, newest first",
)
async def list_payments(
    ctx: Ctx,
    merchant: Merchant,
    status: Literal["unpaid", "paid", "expired", "refunded"] | None = None,
    order_id: Annotated[str | None, Query(alias="orderId", max_length=200)] = None,
    created_from: Annotated[
        Rfc3339 | None, Query(alias="from", description="createdAt >= (RFC 3339)")
    ] = None,
    created_to: Annotated[Rfc3339 | None, Query(alias="to", description="createdAt < (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    for name, value in (("from", created_from), ("to", created_to)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(
                f"{name} needs a time zone", errors={name: ["must include a time zone (Z)"]}
            )
    async with ctx.db.reading() as session:
        items, total = await repository.list_page(
            session,
            merchant.merchant_id,
            status=status,
            order_id=order_id,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            offset=offset,
        )
    base = ctx.settings.base_url
    return json_response(
        {"items": [payment_out(p, base) for p in items], "total": total, "limit": limit, "offset": offset}
    )


@router.get(
    "/order/{order_id}",
    response_model=PaymentOut,
    responses=problems(401, 404, 429),
    summary="Get a payment by your order id",
)
async def get_payment_by_order(ctx: Ctx, merchant: Merchant, order_id: str) -> Response:
    async with ctx.db.read_connection() as conn:
        payment = await service.get_payment_by_order(conn, merchant.merchant_id, order_id)
    return json_response(payment_out(payment, ctx.settings.base_url))


@router.get(
    "/{invoice_id}",
    response_model=PaymentOut,
    responses=problems(401, 404, 429),
    summary="Get a payment and its current status",
)
async def get_payment(ctx: Ctx, merchant: Merchant, invoice_id: str) -> Response:
    async with ctx.db.read_connection() as conn:
        payment = await service.get_payment(conn, merchant.merchant_id, invoice_id)
    return json_response(payment_out(payment, ctx.settings.base_url))


@router.get(
    "/{invoice_id}/events",
    responses={
        200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}},
        **problems(401, 404, 429),
    },
    summary="Live events of a payment (Server-Sent Events): its current state, then each event",
)
async def payment_events(ctx: Ctx, merchant: Merchant, invoice_id: str) -> Response:
    async with ctx.db.read_connection() as conn:
        await service.get_payment(conn, merchant.merchant_id, invoice_id)  # 404 before streaming
    give_back = ctx.streams.take(
        "merchant:" + merchant.merchant_id, ctx.settings.max_streams_per_merchant, "This merchant"
    )

    async def initial() -> bytes:
        async with ctx.db.read_connection() as conn:
            payment = await service.get_payment(conn, merchant.merchant_id, invoice_id)
        return sse.frame("payment", payment_out(payment, ctx.settings.base_url))

    async def render(event: dict[str, Any]) -> bytes:
        return sse.frame(str(event.get("event")), event, str(event.get("id")))

    return sse.stream(ctx.feed, invoice_id, initial, render, give_back)
