"""Public checkout routes by invoice id: the status (polled) and its live stream.

They show only what the payer sees (no metadata, no customer data); an invoice id is an
unguessable capability, as the checkout URL itself is.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from boltgate.context import Context
from boltgate.errors import NotFound
from boltgate.kit.clock import rfc3339
from boltgate.payment import repository
from boltgate.web import Ctx, client_address, ip_rate_limit, json_response, problems
from boltgate.webhook import sse

# public and polled: limited per client address like the other public routes
router = APIRouter(prefix="/checkout", tags=["checkout"], dependencies=[Depends(ip_rate_limit)])


class CheckoutStatus(BaseModel):
    invoiceId: str
    status: str
    amount: float
    currency: str
    lightningInvoice: str
    expiresAt: str
    isDemo: bool
    satsAmount: int


INVOICE_ID = re.compile(r"^inv_[0-9A-Za-z]{1,64}$")


async def status_of(ctx: Context, invoice_id: str) -> dict[str, Any]:
    payment = None
    if INVOICE_ID.match(invoice_id):
        async with ctx.db.read_connection() as conn:
            payment = await repository.fetch_public(conn, invoice_id)
    if payment is None:
        raise NotFound(f"payment {invoice_id} not found", code="payment_not_found")
    return {
        "invoiceId": payment.id,
        "status": payment.status,
        "amount": orjson.Fragment(payment.amount),
        "currency": payment.currency,
        "lightningInvoice": payment.payment_request,
        "expiresAt": rfc3339(payment.expires_at),
        "isDemo": ctx.settings.lightning_backend == "dev",
        "satsAmount": payment.amount_sats,
    }


@router.get(
    "/{invoice_id}/status",
    response_model=CheckoutStatus,
    responses=problems(404, 429),
    summary="A payment's status for its checkout page (cheap; poll at most every 3 s)",
)
async def checkout_status(ctx: Ctx, invoice_id: str) -> Response:
    return json_response(await status_of(ctx, invoice_id), headers={"Cache-Control": "no-store"})


@router.get(
    "/{invoice_id}/events",
    responses={
        200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}},
        **problems(404, 429),
    },
    summary="The checkout status as Server-Sent Events: now, then on every change",
)
async def checkout_events(request: Request, ctx: Ctx, invoice_id: str) -> Response:
    await status_of(ctx, invoice_id)  # 404 before streaming
    limit = ctx.settings.max_streams_per_address
    give_back = ctx.streams.take("ip:" + client_address(request), limit, "This address")

    async def initial() -> bytes:
        return sse.frame("status", await status_of(ctx, invoice_id))

    async def render(event: dict[str, Any]) -> bytes:
        return sse.frame("status", await status_of(ctx, invoice_id), str(event.get("id")))

    return sse.stream(ctx.feed, invoice_id, initial, render, give_back)
