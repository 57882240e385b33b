"""Capability listings (Nostr kind 38400): publishing one in front of a paid proxy, searching them, and
withdrawing them when their proxy is retired.

Every listing is signed by the one platform key, so its ``d`` tag cannot be the bare ``serviceId``: an
addressable event is keyed by kind, pubkey and ``d``, and two merchants (or two publications) using the
same ``serviceId`` would replace each other on every relay, and a NIP-09 ``a`` deletion of one would
delete the other. The ``d`` tag is therefore ``<serviceId>:<proxyId>`` (``:<random id>`` for an external
endpoint): unique per listing, still readable; ``serviceId`` is everything before the last ``:``.

Functions take the session first and never commit; the caller publishes the returned events after its
commit (``Platform.publish_later``), so relays never see an event whose change was rolled back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.agent import events, nostr
from boltgate.agent.events import Platform
from boltgate.agent.market_schemas import CapabilityCreate
from boltgate.agent.models import Agent, Capability
from boltgate.context import Context
from boltgate.errors import ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import new_id
from boltgate.kit.search import contains, folded_keys, folded_text, has_key, join_lines, split_lines
from boltgate.proxy import service as proxy_service
from boltgate.proxy.manifest import proxy_base_url
from boltgate.proxy.models import Proxy
from boltgate.proxy.schemas import ProxyCreate

KIND_CAPABILITY = 38400
KIND_DELETION = 5
_CONTROL = re.compile(r"[\x00-\x1f\x7f\s]")


async def agent_of(session: AsyncSession, merchant_id: str) -> str | None:
    """The pubkey of the merchant's most recently verified active agent, if it has one."""
    stmt = (
        select(Agent.pubkey)
        .where(Agent.merchant_id == merchant_id, Agent.is_active.is_(True), Agent.verified_at.is_not(None))
        .order_by(Agent.verified_at.desc(), Agent.id)
        .limit(1)
    )
    found: str | None = await session.scalar(stmt)
    return found


def _external_endpoint(url: str, dev: bool) -> str:
    """A paid API elsewhere: https (http too in dev mode), a host, no credentials, no spaces."""
    message = "must be an absolute https URL without credentials" + (
        " (http allowed in dev mode)" if dev else ""
    )
    try:
        parts = urlsplit(url)
        ok = parts.scheme in (("https", "http") if dev else ("https",)) and bool(parts.hostname)
        ok = ok and parts.username is None and parts.password is None and not _CONTROL.search(url)
    except ValueError:
        ok = False
    if not ok:
        raise ValidationFailed(
            f"l402Endpoint: {message}", errors={"l402Endpoint": [message]}, code="invalid_l402_endpoint"
        )
    return url


async def _create_proxy(
    session: AsyncSession, ctx: Context, merchant_id: str, body: CapabilityCreate, target: str, now: datetime
) -> Proxy:
    """A new proxy in front of ``target``, through the proxy service (its address checks, its limits)."""
    try:
        spec = ProxyCreate(
            name=body.serviceId,
            targetBaseUrl=target,
            defaultPriceSats=body.priceSats,
            description=body.content,
        )
        proxy = await proxy_service.create(session, merchant_id, spec, now, ctx.proxy_networks)
    except (ValidationFailed, ValidationError) as exc:
        # the proxy service names the field targetBaseUrl; this client sent targetUrl
        detail = str(exc).replace("targetBaseUrl", "targetUrl")
        message = detail.removeprefix("targetUrl: ")
        code = exc.code if isinstance(exc, ValidationFailed) else "invalid_target_url"
        raise ValidationFailed(detail, errors={"targetUrl": [message]}, code=code) from exc
    proxy.categories = join_lines(body.categories)
    proxy_service.index_search(proxy)
    return proxy


def capability_tags(
    d_tag: str, categories: list[str], price_sats: int, endpoint: str, hashtags: list[str], status: str
) -> list[list[str]]:
    """The kind-38400 tags (lightning-enable-clients.md §4.4), plus ``status``; one builder for the
    listing and its removal, so the replacement repeats exactly the original's other tags."""
    return [
        ["d", d_tag],
        *(["s", category] for category in categories),
        ["price", str(price_sats), "sats", "per-request"],
        ["l402", endpoint],
        *(["t", hashtag] for hashtag in hashtags),
        ["status", status],
    ]


async def publish(
    session: AsyncSession, ctx: Context, merchant_id: str, body: CapabilityCreate, now: datetime
) -> tuple[Capability, nostr.Event]:
    """A new listing (and, with ``targetUrl``, its new proxy) and its signed event, both stored."""
    proxy_id: str | None = None
    if body.targetUrl is not None:
        proxy = await _create_proxy(session, ctx, merchant_id, body, body.targetUrl, now)
        proxy_id, endpoint = proxy.id, proxy_base_url(ctx.settings.base_url, proxy.id)
    elif body.l402Endpoint is not None:
        endpoint = _external_endpoint(body.l402Endpoint, ctx.settings.is_dev)
    else:
        message = "give targetUrl (a paid proxy is put in front of it) or l402Endpoint (a paid API elsewhere)"
        raise ValidationFailed(message, errors={"targetUrl": [message]}, code="endpoint_required")
    hashtags = body.hashtags or []
    d_tag = f"{body.serviceId}:{proxy_id or new_id('lst', 16)}"
    tags = capability_tags(d_tag, body.categories, body.priceSats, endpoint, hashtags, "active")
    event = ctx.platform.sign(KIND_CAPABILITY, tags, body.content, now)
    capability = Capability(
        event_id=event.id,
        merchant_id=merchant_id,
        agent_pubkey=await agent_of(session, merchant_id),
        service_id=d_tag,
        proxy_id=proxy_id,
        content=body.content,
        categories=join_lines(body.categories),
        hashtags=join_lines(hashtags),
        price_sats=body.priceSats,
        l402_endpoint=endpoint,
        status="active",
        search_text=folded_text([body.serviceId, body.content, *body.categories, *hashtags]),
        category_keys=folded_keys(body.categories),
        hashtag_keys=folded_keys(hashtags),
        created_at=now,
        removed_at=None,
        removal_event_id=None,
    )
    session.add(capability)
    events.store(session, event, now)
    return capability, event


async def is_live(session: AsyncSession, capability: Capability) -> bool:
    """Active, and its proxy (if any) neither retired nor deleted: a deleted proxy withdraws nothing
    from relays, but its listing must not be sold here any more."""
    if capability.status != "active":
        return False
    if capability.proxy_id is None:
        return True
    proxy = await session.get(Proxy, capability.proxy_id)
    return proxy is not None and proxy.retired_at is None


def _conditions(category: str | None, q: str | None, hashtags: list[str]) -> list[Any]:
    """Active listings whose proxy (if any) still exists unretired, matching every given filter."""
    live_proxy = exists().where(Proxy.id == Capability.proxy_id, Proxy.retired_at.is_(None))
    conditions: list[Any] = [Capability.status == "active", or_(Capability.proxy_id.is_(None), live_proxy)]
    for word in (q or "").split():
        conditions.append(contains(Capability.search_text, word))
    if category and category.strip():
        conditions.append(has_key(Capability.category_keys, category))
    if hashtags:
        conditions.append(or_(*(has_key(Capability.hashtag_keys, tag) for tag in hashtags)))
    return conditions


async def search(
    session: AsyncSession, *, category: str | None, q: str | None, hashtags: list[str], limit: int
) -> tuple[list[Capability], int]:
    """Newest first: ``q`` every word, ``category`` a whole category, ``hashtags`` any of them."""
    conditions = _conditions(category, q, hashtags)
    total = await session.scalar(select(func.count()).select_from(Capability).where(*conditions))
    stmt = (
        select(Capability)
        .where(*conditions)
        .order_by(Capability.created_at.desc(), Capability.event_id)
        .limit(limit)
    )
    return list(await session.scalars(stmt)), total or 0


def capability_out(capability: Capability, signer: str) -> dict[str, Any]:
    return {
        "eventId": capability.event_id,
        "id": capability.event_id,
        "serviceId": capability.service_id.rsplit(":", 1)[0],
        "dTag": capability.service_id,
        "pubkey": signer,
        "agentPubkey": capability.agent_pubkey,
        "content": capability.content,
        "categories": split_lines(capability.categories),
        "hashtags": split_lines(capability.hashtags),
        "priceSats": capability.price_sats,
        "l402Endpoint": capability.l402_endpoint,
        "proxyId": capability.proxy_id,
        "status": capability.status,
        "createdAt": rfc3339(capability.created_at),
    }


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def withdraw(
    session: AsyncSession, platform: Platform, proxy_id: str, reason: str | None, now: datetime
) -> list[nostr.Event]:
    """Remove the active listings of a proxy being retired: per listing a NIP-09 deletion and a
    ``status=removed`` replacement, stored; the caller publishes them after its commit.

    The deletion is dated no earlier than the listing and the replacement one second after the deletion:
    relays replace an addressable event only with a strictly newer one, and relays that honour the
    deletion's ``a`` tag delete every version of the address up to the deletion's ``created_at``.
    """
    stmt = (
        select(Capability)
        .where(Capability.proxy_id == proxy_id, Capability.status == "active")
        .order_by(Capability.created_at, Capability.event_id)
        .with_for_update()
    )
    out: list[nostr.Event] = []
    for capability in await session.scalars(stmt):
        deleted_at = max(int(now.timestamp()), int(capability.created_at.timestamp()))
        address = f"{KIND_CAPABILITY}:{platform.pubkey}:{capability.service_id}"
        deletion = platform.sign(
            KIND_DELETION,
            [["e", capability.event_id], ["a", address], ["k", str(KIND_CAPABILITY)]],
            reason or "",
            _at(deleted_at),
        )
        tags = capability_tags(
            capability.service_id,
            split_lines(capability.categories),
            capability.price_sats,
            capability.l402_endpoint or "",
            split_lines(capability.hashtags),
            "removed",
        )
        replacement = platform.sign(KIND_CAPABILITY, tags, capability.content, _at(deleted_at + 1))
        capability.status, capability.removed_at, capability.removal_event_id = "removed", now, deletion.id
        for event in (deletion, replacement):
            events.store(session, event, now)
            out.append(event)
    return out
