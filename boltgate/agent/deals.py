"""Service requests (kind 38401) and agreements (kind 38402) between a requester and a listing's provider.

The platform signs both on the parties' behalf, as the hosted API does; a party is named by its merchant's
verified agent key where it has one, else by the platform key (events need a ``p`` tag), while the rows
keep ``None`` there: only a real agent key may later review the agreement (kind 38403).

A request's budget below the listing's price is recorded all the same (answered ``withinBudget: false``):
the MCP checks the budget only on its side, and the provider may still answer with an agreement at
another price, which is what the agreement's own ``price`` is for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.agent import events, nostr
from boltgate.agent.events import Platform
from boltgate.agent.market import agent_of, is_live
from boltgate.agent.market_schemas import AgreementCreate, RequestCreate
from boltgate.agent.models import Agreement, Capability, ServiceRequest
from boltgate.errors import Conflict, Gone, NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339

KIND_REQUEST = 38401
KIND_AGREEMENT = 38402
Role = Literal["requester", "provider"]


def _parameters(text: str | None) -> dict[str, Any]:
    """The parameters' top-level keys (none unless an object); 400 when the text is not JSON."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        message = f"is not valid JSON text: {exc.msg}"
        raise ValidationFailed(
            f"parameters: {message}", errors={"parameters": [message]}, code="invalid_parameters"
        ) from exc
    return value if isinstance(value, dict) else {}


async def _live_capability(session: AsyncSession, event_id: str) -> Capability:
    capability = await session.get(Capability, event_id.lower())
    if capability is None:
        raise NotFound(f"capability {event_id} not found", code="capability_not_found")
    if not await is_live(session, capability):
        raise Gone(f"capability {event_id} was unpublished", code="capability_removed")
    return capability


async def create_request(
    session: AsyncSession, platform: Platform, merchant_id: str, body: RequestCreate, now: datetime
) -> tuple[ServiceRequest, Capability, nostr.Event]:
    capability = await _live_capability(session, body.capabilityEventId)
    parameters = body.parameters or None
    tags = [
        ["e", capability.event_id],
        ["p", capability.agent_pubkey or platform.pubkey],
        ["budget", str(body.budgetSats)],
        *(["param", key, orjson.dumps(value).decode()] for key, value in _parameters(parameters).items()),
    ]
    event = platform.sign(KIND_REQUEST, tags, parameters or "", now)
    request = ServiceRequest(
        event_id=event.id,
        capability_event_id=capability.event_id,
        requester_merchant_id=merchant_id,
        requester_pubkey=await agent_of(session, merchant_id),
        budget_sats=body.budgetSats,
        parameters=parameters,
        created_at=now,
    )
    session.add(request)
    events.store(session, event, now)
    return request, capability, event


async def create_agreement(
    session: AsyncSession, platform: Platform, merchant_id: str, body: AgreementCreate, now: datetime
) -> tuple[Agreement, Capability, nostr.Event]:
    """Only the listing's merchant may answer; another merchant's request is answered as missing."""
    request = await session.get(ServiceRequest, body.requestEventId.lower())
    capability = None if request is None else await session.get(Capability, request.capability_event_id)
    if request is None or capability is None or capability.merchant_id != merchant_id:
        raise NotFound(f"request {body.requestEventId} not found", code="request_not_found")
    if not await is_live(session, capability):
        raise Gone(f"capability {capability.event_id} was unpublished", code="capability_removed")
    taken = select(Agreement.event_id).where(Agreement.request_event_id == request.event_id)
    if await session.scalar(taken) is not None:
        raise Conflict(f"request {request.event_id} already has an agreement", code="agreement_exists")
    provider = capability.agent_pubkey or await agent_of(session, merchant_id)
    requester = request.requester_pubkey or await agent_of(session, request.requester_merchant_id)
    expires = None if body.expiresInSeconds is None else now + timedelta(seconds=body.expiresInSeconds)
    tags = [
        ["e", request.event_id, "", "request"],
        ["e", capability.event_id, "", "capability"],
        ["p", provider or platform.pubkey, "", "provider"],
        ["p", requester or platform.pubkey, "", "requester"],
        ["price", str(body.priceSats)],
    ]
    if capability.l402_endpoint:
        tags.append(["l402", capability.l402_endpoint])
    if body.terms:
        tags.append(["terms", body.terms])
    if expires is not None:
        tags.append(["expiration", str(int(expires.timestamp()))])
    event = platform.sign(KIND_AGREEMENT, tags, "", now)
    agreement = Agreement(
        event_id=event.id,
        request_event_id=request.event_id,
        capability_event_id=capability.event_id,
        provider_pubkey=provider,
        requester_pubkey=requester,
        price_sats=body.priceSats,
        terms=body.terms,
        expires_at=expires,
        created_at=now,
    )
    session.add(agreement)
    events.store(session, event, now)
    return agreement, capability, event


def _mine(role: Role, merchant_id: str) -> Any:
    if role == "requester":
        return ServiceRequest.requester_merchant_id == merchant_id
    return Capability.merchant_id == merchant_id


async def list_requests(
    session: AsyncSession, merchant_id: str, role: Role, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    base = (
        select(ServiceRequest, Capability, Agreement.event_id)
        .join(Capability, Capability.event_id == ServiceRequest.capability_event_id)
        .outerjoin(Agreement, Agreement.request_event_id == ServiceRequest.event_id)
        .where(_mine(role, merchant_id))
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    stmt = (
        base.order_by(ServiceRequest.created_at.desc(), ServiceRequest.event_id).limit(limit).offset(offset)
    )
    items = [request_out(r, c, a) for r, c, a in (await session.execute(stmt)).all()]
    return items, total or 0


async def list_agreements(
    session: AsyncSession, merchant_id: str, role: Role, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    base = (
        select(Agreement, Capability)
        .join(ServiceRequest, ServiceRequest.event_id == Agreement.request_event_id)
        .join(Capability, Capability.event_id == Agreement.capability_event_id)
        .where(_mine(role, merchant_id))
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    stmt = base.order_by(Agreement.created_at.desc(), Agreement.event_id).limit(limit).offset(offset)
    items = [agreement_out(a, c) for a, c in (await session.execute(stmt)).all()]
    return items, total or 0


def request_out(request: ServiceRequest, capability: Capability, agreement_id: str | None) -> dict[str, Any]:
    return {
        "requestEventId": request.event_id,
        "eventId": request.event_id,
        "capabilityEventId": capability.event_id,
        "serviceId": capability.service_id.rsplit(":", 1)[0],
        "requesterPubkey": request.requester_pubkey,
        "providerPubkey": capability.agent_pubkey,
        "budgetSats": request.budget_sats,
        "priceSats": capability.price_sats,
        "withinBudget": request.budget_sats >= capability.price_sats,
        "parameters": request.parameters,
        "l402Endpoint": capability.l402_endpoint,
        "agreementEventId": agreement_id,
        "createdAt": rfc3339(request.created_at),
    }


def agreement_out(agreement: Agreement, capability: Capability) -> dict[str, Any]:
    return {
        "agreementEventId": agreement.event_id,
        "eventId": agreement.event_id,
        "requestEventId": agreement.request_event_id,
        "capabilityEventId": agreement.capability_event_id,
        "serviceId": capability.service_id.rsplit(":", 1)[0],
        "providerPubkey": agreement.provider_pubkey,
        "requesterPubkey": agreement.requester_pubkey,
        "priceSats": agreement.price_sats,
        "terms": agreement.terms,
        "l402Endpoint": capability.l402_endpoint,
        "expiresAt": rfc3339(agreement.expires_at),
        "createdAt": rfc3339(agreement.created_at),
    }
