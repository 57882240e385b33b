"""Refunds API: create, get, list; and the public LNURL-withdraw routes of claim links."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from boltgate.errors import BoltgateError, NotFound
from boltgate.refund import claims, paying, repository
from boltgate.refund.schemas import RefundCreate, RefundList, RefundOut, refund_out
from boltgate.web import Ctx, Merchant, ip_rate_limit, json_body, json_response, problems, read_json

router = APIRouter(prefix="/api/refunds", tags=["refunds"])
claim_router = APIRouter(prefix="/lnurlw", tags=["refunds"], dependencies=[Depends(ip_rate_limit)])


@router.post(
    "",
    status_code=201,
    response_model=RefundOut,
    responses={
        200: {"description": "The existing refund of this Idempotency-Key", "model": RefundOut},
        **problems(400, 401, 404, 409, 429, 503),
    },
    openapi_extra=json_body(RefundCreate),
    summary="Refund a paid payment (all or part) over Lightning, or make a claim link",
)
async def create_refund(
    request: Request,
    ctx: Ctx,
    merchant: Merchant,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    body = await read_json(request, RefundCreate, ctx.settings.max_body_bytes)
    refund, created = await paying.create_refund(ctx, merchant.merchant_id, body, idempotency_key)
    headers = {"Location": f"/api/refunds/{refund.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return json_response(refund_out(refund, claims.claim_of(ctx, refund)), 201 if created else 200, headers)


@router.get(
    "",
    response_model=RefundList,
    responses=problems(400, 401, 429),
    summary="List your refunds (of one payment with invoiceId), newest first",
)
async def list_refunds(
    ctx: Ctx,
    merchant: Merchant,
    invoice_id: Annotated[str | None, Query(alias="invoiceId", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    async with ctx.db.reading() as session:
        items, total = await repository.list_page(session, merchant.merchant_id, invoice_id, limit, offset)
    return json_response(
        {
            "items": [refund_out(r, claims.claim_of(ctx, r)) for r in items],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@router.get(
    "/{refund_id}",
    response_model=RefundOut,
    responses=problems(401, 404, 429),
    summary="Get a refund and its current status",
)
async def get_refund(ctx: Ctx, merchant: Merchant, refund_id: str) -> Response:
    async with ctx.db.reading() as session:
        refund = await repository.get(session, merchant.merchant_id, refund_id)
    if refund is None:
        raise NotFound(f"refund {refund_id} not found", code="refund_not_found")
    return json_response(refund_out(refund, claims.claim_of(ctx, refund)))


# -- claim links: LNURL-withdraw (LUD-03), answered the way wallets read them


def _lnurl_error(error: BoltgateError) -> Response:
    """LUD-03's error shape (``status: ERROR`` with a ``reason``), with our HTTP status and code."""
    body: dict[str, Any] = {"status": "ERROR", "reason": error.detail, "error": error.code}
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json")


_LNURL_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        **spec,
        "description": spec["description"] + "; LNURL wallets get `{status: ERROR, reason, error}` as JSON",
        "content": {**spec["content"], "application/json": {"schema": {"type": "object"}}},
    }
    for status, spec in problems(400, 404, 410, 429).items()
}


@claim_router.get(
    "/{refund_id}/{tag}",
    responses=_LNURL_ERRORS,
    summary="A claim link's withdraw request (LUD-03), for the customer's wallet",
)
async def withdraw_request(ctx: Ctx, refund_id: str, tag: str) -> Response:
    try:
        return json_response(await claims.withdraw_request(ctx, refund_id, tag))
    except BoltgateError as exc:
        return _lnurl_error(exc)


@claim_router.get(
    "/{refund_id}/{tag}/callback",
    responses=_LNURL_ERRORS,
    summary="A claim link's callback (LUD-03): the wallet submits its invoice, the refund is paid to it",
)
async def withdraw_callback(
    ctx: Ctx,
    refund_id: str,
    tag: str,
    k1: Annotated[str | None, Query(max_length=128)] = None,
    pr: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    try:
        await claims.withdraw(ctx, refund_id, tag, k1, pr)
    except BoltgateError as exc:
        return _lnurl_error(exc)
    return json_response({"status": "OK"})
