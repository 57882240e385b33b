"""The agent directory over HTTP: register, prove a key (challenge, verify), list, look up, figures.

Mounted after the marketplace router, so its fixed paths (``/api/agents/capabilities``, …) win over
``/api/agents/{pubkey}``. Every route is public and limited per client address; ``register`` also takes
an optional ``X-API-Key`` (the agent then belongs to that merchant), and the challenge route has its own,
tighter limit per pubkey and per address (``BOLTGATE_AGENT_CHALLENGE_RATE_LIMIT``). The protocol and the
choices behind its answers are in :mod:`boltgate.agent.identity`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from limits import RateLimitItem, parse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.convertors import StringConvertor, register_url_convertor

from boltgate.agent import identity, nostr
from boltgate.agent.models import Agent
from boltgate.context import Context
from boltgate.kit.clock import rfc3339
from boltgate.merchant.auth import Principal
from boltgate.payment.schemas import multiline, printable
from boltgate.web import (
    Ctx,
    client_address,
    ip_rate_limit,
    json_body,
    json_response,
    merchant_auth,
    problems,
    read_json,
)

router = APIRouter(prefix="/api/agents", tags=["agents"], dependencies=[Depends(ip_rate_limit)])


class _AgentSegment(StringConvertor):
    """``{pubkey}`` of ``/api/agents/{pubkey}``: any segment but the POST-only routes' names.

    Otherwise ``GET /api/agents/verify`` would reach the lookup (400 ``invalid_pubkey``) and a 405's
    ``Allow`` would list GET there. Malformed keys still reach the route, to be told 400. The
    marketplace's fixed paths all have a GET route of their own, mounted first."""

    regex = r"(?!(?:register|verify)(?:/|$))[^/]+"


register_url_convertor("agent", _AgentSegment())

# documented, not enforced by the schema: the service answers its own stable codes (invalid_pubkey, …)
_HEX64: dict[str, Any] = {"pattern": "^[0-9a-fA-F]{64}$"}
_PUBKEY = "BIP-340 x-only public key (64 hex)"
PubkeyParam = Annotated[str, Path(description=_PUBKEY, json_schema_extra=_HEX64)]
PubkeyQuery = Annotated[str, Query(description=_PUBKEY, json_schema_extra=_HEX64)]


class Register(BaseModel):
    """Body of ``POST /api/agents/register``."""

    model_config = ConfigDict(extra="ignore")

    pubkey: str = Field(description=_PUBKEY, json_schema_extra=_HEX64)
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return printable(value, 200)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return multiline(value)


class Verify(BaseModel):
    """Body of ``POST /api/agents/verify``: the challenge and exactly one proof."""

    model_config = ConfigDict(extra="ignore")

    pubkey: str = Field(
        description="the agent's BIP-340 x-only public key (64 hex)", json_schema_extra=_HEX64
    )
    challenge: str = Field(description="from GET /api/agents/challenge (64 hex)", json_schema_extra=_HEX64)
    signature: str | None = Field(
        None,
        description="BIP-340 signature of the challenge's message (128 hex)",
        json_schema_extra={"pattern": "^[0-9a-fA-F]{128}$"},
    )
    event: dict[str, Any] | None = Field(None, description="or: a signed kind-22242 event with the challenge")

    @model_validator(mode="after")
    def _one_proof(self) -> Verify:
        if (self.signature is None) == (self.event is None):
            raise ValueError("send either signature (128 hex) or event (a signed kind-22242 event)")
        return self


class AgentOut(BaseModel):
    id: str
    pubkey: str
    name: str | None
    description: str | None
    isActive: bool
    isVerified: bool
    verifiedAt: datetime | None
    createdAt: datetime
    updatedAt: datetime
    totalRequests: int
    totalRevenueSats: int
    activeAgreements: int


class AgentList(BaseModel):
    agents: list[AgentOut]
    total: int
    limit: int
    offset: int


class ChallengeOut(BaseModel):
    challenge: str
    pubkey: str
    expiresInSeconds: int
    expiresAt: datetime
    message: str
    tag: str


class VerifyOut(BaseModel):
    pubkey: str
    isVerified: bool
    verifiedAt: datetime
    message: str


class StatsOut(BaseModel):
    pubkey: str
    name: str | None
    totalRequests: int
    totalRevenueSats: int
    activeAgreements: int
    averageRevenuePerRequest: float
    isActive: bool
    registeredAt: datetime
    lastUpdated: datetime


async def optional_merchant(request: Request) -> Principal | None:
    """The merchant of ``X-API-Key`` when the header is sent (it must then be valid: 401), else None."""
    if "x-api-key" not in request.headers:
        return None
    return await merchant_auth(request)


OptionalMerchant = Annotated[Principal | None, Depends(optional_merchant)]


@functools.lru_cache(maxsize=8)
def _rate(text: str) -> RateLimitItem:
    return parse(text)


async def _one(ctx: Context, pubkey: str) -> tuple[Agent, identity.Totals, datetime]:
    """An agent, its figures and when they were computed (pending proxy counts flushed first)."""
    await ctx.usage.flush()
    now = ctx.clock()
    async with ctx.db.reading() as session:
        agent = await identity.get_agent(session, identity.parse_key(pubkey))
        figures = (await identity.totals(session, [agent.pubkey], now))[agent.pubkey]
    return agent, figures, now


@router.post(
    "/register",
    status_code=201,
    response_model=AgentOut,
    responses={
        **problems(400, 401, 409, 429),
        200: {"model": AgentOut, "description": "Already registered (name and description updated)"},
    },
    openapi_extra=json_body(Register) | {"security": [{}, {"ApiKeyAuth": []}]},
    summary="Register an agent's public key (with an API key, the agent is that merchant's)",
)
async def register(request: Request, ctx: Ctx, merchant: OptionalMerchant) -> Response:
    body = await read_json(request, Register, ctx.settings.max_body_bytes)
    now = ctx.clock()
    async with ctx.db.writing() as session:
        owner = merchant.merchant_id if merchant else None
        profile = {"name": body.name, "description": body.description}
        agent, created = await identity.register(session, body.pubkey, profile, owner, now)
        figures = (await identity.totals(session, [agent.pubkey], now))[agent.pubkey]
    headers = {"Location": f"/api/agents/{agent.pubkey}"}
    return json_response(identity.agent_out(agent, figures), 201 if created else 200, headers)


@router.get(
    "/challenge",
    response_model=ChallengeOut,
    responses=problems(400, 404, 429),
    summary="A single-use challenge for a registered agent to sign (message: the 32 bytes to sign, hex)",
)
async def challenge(request: Request, ctx: Ctx, pubkey: PubkeyQuery) -> Response:
    rate = _rate(ctx.settings.agent_challenge_rate_limit)
    await ctx.limiter.check("agent-challenge:ip:" + client_address(request), rate)
    key = identity.parse_key(pubkey)
    await ctx.limiter.check("agent-challenge:pk:" + key, rate)
    seconds = ctx.settings.agent_challenge_seconds
    async with ctx.db.writing() as session:
        row = await identity.issue_challenge(session, key, ctx.clock(), seconds)
    return json_response(
        {
            "challenge": row.challenge,
            "pubkey": key,
            "expiresInSeconds": seconds,
            "expiresAt": rfc3339(row.expires_at),
            "message": nostr.challenge_message(row.challenge, key).hex(),
            "tag": nostr.CHALLENGE_TAG,
        }
    )


@router.post(
    "/verify",
    response_model=VerifyOut,
    responses=problems(400, 401, 404, 409, 429),
    openapi_extra=json_body(Verify),
    summary="Prove an agent's key: a BIP-340 signature of the challenge, or a signed kind-22242 event",
)
async def verify(request: Request, ctx: Ctx) -> Response:
    body = await read_json(request, Verify, ctx.settings.max_body_bytes)
    now = ctx.clock()
    pubkey, challenge_hex = identity.check_proof(body.pubkey, body.challenge, body.signature, body.event, now)
    async with ctx.db.writing() as session:
        agent = await identity.verify(session, pubkey, challenge_hex, now)
    return json_response(
        {
            "pubkey": agent.pubkey,
            "isVerified": True,
            "verifiedAt": rfc3339(agent.verified_at),
            "message": "Identity verified: the agent holds the key of this pubkey",
        }
    )


@router.get("", response_model=AgentList, responses=problems(400, 429), summary="Active agents, newest first")
async def list_agents(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    verified: bool | None = None,
) -> Response:
    await ctx.usage.flush()
    now = ctx.clock()
    async with ctx.db.reading() as session:
        agents, total = await identity.list_agents(session, verified, limit, offset)
        figures = await identity.totals(session, [a.pubkey for a in agents], now)
    items = [identity.agent_out(a, figures[a.pubkey]) for a in agents]
    return json_response({"agents": items, "total": total, "limit": limit, "offset": offset})


@router.get("/{pubkey:agent}", response_model=AgentOut, responses=problems(400, 404, 429), summary="An agent")
async def get_agent(ctx: Ctx, pubkey: PubkeyParam) -> Response:
    agent, figures, _ = await _one(ctx, pubkey)
    return json_response(identity.agent_out(agent, figures))


@router.get(
    "/{pubkey:agent}/stats",
    response_model=StatsOut,
    responses=problems(400, 404, 429),
    summary="An agent's requests, revenue and active agreements, from real proxy usage and paid invoices",
)
async def agent_stats(ctx: Ctx, pubkey: PubkeyParam) -> Response:
    agent, figures, now = await _one(ctx, pubkey)
    return json_response(identity.stats_out(agent, figures, now))
