"""Dev-mode helpers over HTTP: pay (settle) an invoice of the dev node. Not mounted outside dev mode."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.lightning.base import PaymentResult
from boltgate.lightning.devnode import DevNode
from boltgate.payment import repository
from boltgate.web import Ctx, json_body, json_response, problems, read_json

router = APIRouter(prefix="/api/dev", tags=["dev"])
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


class DevPay(BaseModel):
    model_config = ConfigDict(extra="ignore")
    invoice: str | None = Field(None, max_length=8000, description="a BOLT11 invoice of the dev node")
    paymentHash: str | None = Field(None, description="or its payment hash (64 hex)")

    @model_validator(mode="after")
    def _one(self) -> DevPay:
        if (self.invoice is None) == (self.paymentHash is None):
            raise ValueError("give exactly one of invoice or paymentHash")
        if self.paymentHash is not None and not _HASH.match(self.paymentHash):
            raise ValueError("paymentHash must be 64 hex characters")
        return self


class DevPayResult(BaseModel):
    status: str
    paymentHash: str
    preimage: str | None
    error: str | None


def _node(ctx: Ctx) -> DevNode:
    assert isinstance(ctx.backend, DevNode)
    return ctx.backend


@router.post(
    "/pay", response_model=DevPayResult, responses=problems(400, 409), openapi_extra=json_body(DevPay)
)
async def pay(request: Request, ctx: Ctx) -> Response:
    """Pay an invoice from the dev node's own wallet: settles it and returns the preimage."""
    body = await read_json(request, DevPay, ctx.settings.max_body_bytes)
    node = _node(ctx)
    if body.paymentHash is not None:
        result = await node.pay_payment_hash(body.paymentHash)
    else:
        result = await node.pay_invoice(body.invoice or "")
    return _paid(result)


@router.post("/payments/{invoice_id}/settle", response_model=DevPayResult, responses=problems(404, 409))
async def settle_payment(ctx: Ctx, invoice_id: str) -> Response:
    """Pay the invoice of a payment by its invoice id (what a customer's wallet would do)."""
    async with ctx.db.reading() as session:
        payment_hash = await repository.hash_of(session, invoice_id)
    if payment_hash is None:
        raise NotFound(f"payment {invoice_id} not found", code="payment_not_found")
    return _paid(await _node(ctx).pay_payment_hash(payment_hash))


def _paid(result: PaymentResult) -> Response:
    if result.preimage is None:
        error = result.error or "payment failed"
        if error.startswith("invalid invoice"):
            raise ValidationFailed(error, errors={"invoice": [error]}, code="invalid_invoice")
        raise Conflict(error, code="payment_failed")
    return json_response(
        {
            "status": result.status.value,
            "paymentHash": result.payment_hash,
            "preimage": result.preimage,
            "error": None,
        }
    )
