"""The agent marketplace over HTTP: capability listings, service requests, agreements, reviews, and the
export of every signed event (lightning-enable-api.md §5, lightning-enable-clients.md §1 rows 12-17, §4).

Mounted before the identity router, whose ``/api/agents/{pubkey}`` would otherwise take these paths.
Events are stored in the transaction of the change they describe and handed to the relays only after
it commits.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError

from boltgate.agent import deals, market, nostr, reviews
from boltgate.agent.market_schemas import AgreementCreate, CapabilityCreate, RequestCreate, ReviewIn
from boltgate.errors import Conflict, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.web import Ctx, Merchant, ip_rate_limit, json_body, json_response, problems, read_json

router = APIRouter(prefix="/api/agents", tags=["agents"])
PUBLIC = [Depends(ip_rate_limit)]
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {**problems(400)[400], "description": "The signer is not a party to the agreement"}
}
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def _hashtags(text: str | None) -> list[str]:
    tags = {tag.strip().removeprefix("#").casefold() for tag in (text or "").split(",")}
    tags.discard("")
    if len(tags) > 20:
        raise ValidationFailed("hashtags: at most 20", errors={"hashtags": ["at most 20"]})
    return sorted(tags)


@router.post(
    "/capabilities",
    status_code=201,
    responses=problems(400, 401, 409, 429),
    openapi_extra=json_body(CapabilityCreate),
    summary="List a service (kind 38400, signed by the platform); targetUrl gets a new paid proxy",
)
async def publish_capability(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, CapabilityCreate, ctx.settings.max_body_bytes)
    now = ctx.clock()
    async with ctx.db.writing() as session:
        capability, event = await market.publish(session, ctx, merchant.merchant_id, body, now)
    ctx.platform.publish_later([event])
    out = market.capability_out(capability, event.pubkey)
    keep = ("eventId", "l402Endpoint", "proxyId", "serviceId", "dTag", "pubkey", "createdAt")
    return json_response({key: out[key] for key in keep}, 201)


@router.get(
    "/capabilities",
    dependencies=PUBLIC,
    responses=problems(400, 429),
    summary="Search active listings: category (whole), q (every word), hashtags (any of, comma-separated)",
)
async def search_capabilities(
    ctx: Ctx,
    category: Annotated[str | None, Query(max_length=50, pattern=r"^[^\x00-\x1f\x7f,]*$")] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")] = None,
    hashtags: Annotated[str | None, Query(max_length=1100, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    async with ctx.db.reading() as session:
        found, total = await market.search(
            session, category=category, q=q, hashtags=_hashtags(hashtags), limit=limit
        )
    items = [market.capability_out(capability, ctx.platform.pubkey) for capability in found]
    return json_response({"items": items, "total": total})


@router.post(
    "/requests",
    status_code=201,
    responses=problems(400, 401, 404, 410, 429),
    openapi_extra=json_body(RequestCreate),
    summary="Ask for a listed service (kind 38401); a budget below the price is recorded (withinBudget)",
)
async def request_service(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, RequestCreate, ctx.settings.max_body_bytes)
    now = ctx.clock()
    async with ctx.db.writing() as session:
        row, capability, event = await deals.create_request(
            session, ctx.platform, merchant.merchant_id, body, now
        )
    ctx.platform.publish_later([event])
    out = deals.request_out(row, capability, None)
    keep = ("requestEventId", "l402Endpoint", "capabilityEventId", "budgetSats", "priceSats", "withinBudget")
    return json_response({**{key: out[key] for key in keep}, "createdAt": rfc3339(now)}, 201)


@router.get("/requests", responses=problems(400, 401, 429), summary="Requests you made, or received")
async def list_requests(
    ctx: Ctx, merchant: Merchant, role: deals.Role = "requester", limit: Limit = 50, offset: Offset = 0
) -> Response:
    async with ctx.db.reading() as session:
        items, total = await deals.list_requests(session, merchant.merchant_id, role, limit, offset)
    return json_response({"items": items, "total": total})


@router.post(
    "/agreements",
    status_code=201,
    responses=problems(400, 401, 404, 409, 410, 429),
    openapi_extra=json_body(AgreementCreate),
    summary="Answer a request for your listing with an agreement (kind 38402); one per request",
)
async def agree(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, AgreementCreate, ctx.settings.max_body_bytes)
    now = ctx.clock()
    try:
        async with ctx.db.writing() as session:
            agreement, capability, event = await deals.create_agreement(
                session, ctx.platform, merchant.merchant_id, body, now
            )
    except IntegrityError as exc:  # a concurrent answer to the same request won
        raise Conflict("this request already has an agreement", code="agreement_exists") from exc
    ctx.platform.publish_later([event])
    return json_response(deals.agreement_out(agreement, capability), 201)


@router.get("/agreements", responses=problems(400, 401, 429), summary="Agreements as requester or provider")
async def list_agreements(
    ctx: Ctx, merchant: Merchant, role: deals.Role = "requester", limit: Limit = 50, offset: Offset = 0
) -> Response:
    async with ctx.db.reading() as session:
        items, total = await deals.list_agreements(session, merchant.merchant_id, role, limit, offset)
    return json_response({"items": items, "total": total})


@router.post(
    "/attestations",
    status_code=201,
    dependencies=PUBLIC,
    responses={**problems(400, 401, 404, 409, 429), **_FORBIDDEN},
    openapi_extra=json_body(ReviewIn),
    summary="Submit a review (kind 38403) signed by the reviewer's own key; no API key needed",
)
async def submit_review(request: Request, ctx: Ctx) -> Response:
    body = await read_json(request, ReviewIn, ctx.settings.max_body_bytes)
    now = ctx.clock()
    review = reviews.read_review(body.event, now)
    try:
        async with ctx.db.writing() as session:
            attestation = await reviews.record(session, review, now)
    except IntegrityError as exc:  # the same review, submitted twice at once
        raise Conflict(
            "this reviewer has already reviewed this agreement", code="attestation_exists"
        ) from exc
    ctx.platform.publish_later([review.event])
    return json_response(reviews.attestation_out(attestation), 201)


@router.get(
    "/attestations",
    dependencies=PUBLIC,
    responses=problems(400, 429),
    summary="Reviews of an agent (pubkey), newest first, with the average rating of all of them",
)
async def list_reviews(
    ctx: Ctx, pubkey: Annotated[str, Query(max_length=64)], limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> Response:
    try:
        subject = nostr.parse_pubkey(pubkey)
    except nostr.NostrError as exc:
        raise reviews.nostr_problem(exc) from exc
    async with ctx.db.reading() as session:
        rows, total, average = await reviews.reviews_of(session, subject, limit)
    items = [reviews.attestation_out(row) for row in rows]
    return json_response({"items": items, "total": total, "averageRating": average})


def _kinds(text: str | None) -> list[int]:
    try:
        kinds = sorted({int(part) for part in (text or "").split(",") if part.strip()})
    except ValueError:
        kinds = [-1]
    if any(not 0 <= kind <= 65535 for kind in kinds) or len(kinds) > 20:
        message = "a comma-separated list of at most 20 kinds in 0..65535"
        raise ValidationFailed(f"kinds: {message}", errors={"kinds": [message]}, code="invalid_kinds")
    return kinds


@router.get(
    "/events",
    dependencies=PUBLIC,
    responses=problems(400, 429),
    summary="Every signed event, exactly as signed, oldest first from since (inclusive); next: the next page",
)
async def export_events(
    ctx: Ctx,
    since: Annotated[int, Query(ge=0, le=2**32)] = 0,
    after: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    kinds: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    wanted = _kinds(kinds)
    async with ctx.db.reading() as session:
        rows = await reviews.export(session, since, after, wanted, limit)
    following = None
    if len(rows) == limit:
        last_id, last_at, _ = rows[-1]
        following = f"/api/agents/events?since={last_at}&after={last_id}&limit={limit}"
        following += f"&kinds={','.join(map(str, wanted))}" if wanted else ""
    # the stored JSON is spliced in as it is: relays get the very bytes that were signed and stored
    events = b",".join(raw.encode() for _, _, raw in rows)
    return Response(
        b'{"events":[' + events + b'],"next":' + orjson.dumps(following) + b"}", media_type="application/json"
    )
