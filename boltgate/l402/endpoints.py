"""L402 producer API (mint and verify challenges for your own routes) and the gateway's demo routes."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from boltgate import __version__
from boltgate.kit.clock import rfc3339
from boltgate.l402 import caveats, guard, mpp, service
from boltgate.l402.guard import PAID_RESPONSES, PUBLIC, Paid, paid
from boltgate.l402.models import Challenge
from boltgate.l402.schemas import ChallengeCreate, ChallengeList, ChallengeOut, VerifyIn, VerifyOut
from boltgate.l402.service import Offer
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(tags=["l402"])
PING_PRICE_SATS = 1


def _issued_out(issued: service.Issued) -> dict[str, Any]:
    row = issued.challenge
    return {
        "invoice": row.invoice,
        "macaroon": issued.macaroon,
        "paymentHash": row.payment_hash,
        "expiresAt": rfc3339(row.expires_at),
        "resource": row.resource,
        "priceSats": row.amount_sats,
        "mppChallenge": mpp.format_challenge(issued.mpp_challenge),
    }


@router.post(
    "/api/l402/challenges",
    status_code=201,
    response_model=ChallengeOut,
    responses={
        200: {"description": "The same offer made in the last minute", "model": ChallengeOut},
        **problems(400, 401, 429, 503),
    },
    openapi_extra=json_body(ChallengeCreate),
    summary="Mint an L402 challenge (invoice + macaroon + Payment challenge) for a resource of yours",
)
async def create_challenge(
    request: Request,
    ctx: Ctx,
    merchant: Merchant,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    body = await read_json(request, ChallengeCreate, ctx.settings.max_body_bytes)
    offer = Offer(
        resource=body.resource,
        amount_sats=body.priceSats,
        merchant_id=merchant.merchant_id,
        description=body.description,
    )
    # the same resource and price within the reuse window returns the same invoice (per merchant)
    payer = (
        "key:" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40] if idempotency_key else "merchant"
    )
    issued = await service.mint(ctx, ctx.l402, offer, payer=payer, idempotency_key=idempotency_key)
    return json_response(_issued_out(issued), 200 if issued.reused else 201)


async def _verify(ctx: Ctx, merchant_id: str, body: VerifyIn) -> dict[str, Any]:
    preimage = body.preimage.strip()
    paid_hash = service.preimage_hash(preimage)
    if paid_hash is None:
        return {"valid": False, "error": "the preimage must be 64 hex characters"}
    async with ctx.db.reading() as session:
        row = await session.get(Challenge, paid_hash)
    if body.macaroon:
        need = caveats.Requirement(now=int(ctx.clock().timestamp()), merchant_id=merchant_id)
        verdict = await service.check_l402(ctx.l402, f"{body.macaroon}:{preimage}", need)
        if not verdict.ok:
            return {"valid": False, "paymentHash": paid_hash, "error": verdict.reason}
    if row is None or row.merchant_id != merchant_id:
        return {"valid": False, "paymentHash": paid_hash, "error": "no challenge of yours has this payment"}
    await service.mark_paid(ctx, ctx.l402, paid_hash)
    return {
        "valid": True,
        "resource": row.resource,
        "merchantId": merchant_id,
        "amountSats": row.amount_sats,
        "paymentHash": paid_hash,
    }


@router.post(
    "/api/l402/challenges/verify",
    response_model=VerifyOut,
    responses=problems(400, 401, 429),
    openapi_extra=json_body(VerifyIn),
    summary="Check a token (macaroon + preimage) or, without a macaroon, a preimage alone",
)
async def verify_challenge(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, VerifyIn, ctx.settings.max_body_bytes)
    result: dict[str, Any] = {
        "valid": False,
        "resource": None,
        "merchantId": None,
        "amountSats": None,
        "paymentHash": None,
    }
    result.update(await _verify(ctx, merchant.merchant_id, body))
    if not result["valid"]:
        result["error"] = result.get("error") or "invalid"
    return json_response(result)


@router.get(
    "/api/l402/challenges",
    response_model=ChallengeList,
    responses=problems(400, 401, 429),
    summary="Your challenges, newest first",
)
async def list_challenges(
    ctx: Ctx,
    merchant: Merchant,
    status: Literal["pending", "paid", "expired"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    now = ctx.clock()
    where = [Challenge.merchant_id == merchant.merchant_id]
    if status == "paid":
        where.append(Challenge.paid_at.is_not(None))
    elif status == "pending":
        where += [Challenge.paid_at.is_(None), Challenge.expires_at > now]
    elif status == "expired":
        where += [Challenge.paid_at.is_(None), Challenge.expires_at <= now]
    async with ctx.db.reading() as session:
        total = (
            await session.execute(select(func.count()).select_from(Challenge).where(*where))
        ).scalar_one()
        rows = (
            await session.scalars(
                select(Challenge)
                .where(*where)
                .order_by(Challenge.created_at.desc(), Challenge.payment_hash)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return json_response(
        {
            "challenges": [service.challenge_out(row, now) for row in rows],
            "total": int(total),
            "limit": limit,
            "offset": offset,
        }
    )


# --- the gateway's own demo routes -----------------------------------------------------------


def _paid_routes(ctx: Ctx) -> list[dict[str, Any]]:
    return [
        {"method": "GET", "path": "/api/l402/premium-data", "priceSats": ctx.settings.l402_demo_price_sats},
        {"method": "GET", "path": "/l402/test/ping", "priceSats": PING_PRICE_SATS},
        {
            "method": "GET",
            "path": "/api/l402/content/{slug}",
            "priceSats": "per item (see /api/l402/content)",
        },
    ]


@router.get(
    "/api/l402/demo",
    dependencies=PUBLIC,
    responses=problems(429),
    summary="How to pay for a route of this gateway (free)",
)
async def demo(ctx: Ctx) -> Response:
    base = ctx.settings.base_url
    return json_response(
        {
            "message": "GET a paid route without credentials to receive a 402 challenge; pay its invoice; "
            "send Authorization: L402 <macaroon>:<preimage> (or a Payment credential) with the same request.",
            "paidRoutes": [{**r, "url": base + r["path"]} for r in _paid_routes(ctx)],
            "schemes": ["L402", "Payment"],
            "network": ctx.settings.network,
            "isDemo": ctx.settings.lightning_backend == "dev",
        }
    )


@router.get(
    "/api/l402/pricing",
    dependencies=PUBLIC,
    responses=problems(429),
    summary="Prices of this gateway's paid routes (free)",
)
async def pricing(ctx: Ctx) -> Response:
    return json_response({"currency": "sat", "routes": _paid_routes(ctx)})


@router.get(
    "/api/l402/status", dependencies=PUBLIC, responses=problems(429), summary="L402 availability (free)"
)
async def status(ctx: Ctx) -> Response:
    return json_response(
        {
            "enabled": True,
            "schemes": ["L402", "Payment"],
            "network": ctx.settings.network,
            "backend": ctx.settings.lightning_backend,
            "realm": ctx.l402.realm,
            "version": __version__,
        }
    )


def _premium(ctx: Ctx) -> dict[str, Any]:
    return {"message": "premium content, paid over Lightning", "servedAt": rfc3339(ctx.clock())}


@router.get(
    "/api/l402/premium-data",
    dependencies=PUBLIC,
    responses=PAID_RESPONSES,
    summary="Paid demo data (L402 or Payment)",
)
async def premium_data(request: Request, ctx: Ctx) -> Response:
    # guard.require called directly: the same check as Depends(paid(...)) without FastAPI's
    # dependency resolution, which costs more than the check itself (bench/l402.py)
    offer = Offer(
        resource="GET /api/l402/premium-data",
        amount_sats=ctx.settings.l402_demo_price_sats,
        merchant_id=None,
        description="boltgate premium data",
    )
    payment = await guard.require(ctx, request, offer)
    paid_with = {"paidWith": payment.scheme, "paymentHash": payment.payment_hash}
    return json_response({"data": _premium(ctx), **paid_with})


@router.get(
    "/api/l402/free-data",
    dependencies=PUBLIC,
    responses=problems(429),
    summary="The premium-data response without payment (a baseline)",
)
async def free_data(ctx: Ctx) -> Response:
    return json_response({"data": _premium(ctx), "paidWith": None, "paymentHash": None})


@router.get(
    "/l402/test/ping",
    dependencies=PUBLIC,
    responses=PAID_RESPONSES,
    summary="1 sat ping to test a client end to end",
)
async def test_ping(
    ctx: Ctx,
    payment: Annotated[Paid, Depends(paid(PING_PRICE_SATS, description="boltgate test ping", reuse=True))],
) -> Response:
    return json_response({"pong": True, "paidWith": payment.scheme, "timestamp": rfc3339(ctx.clock())})
