"""Agent identities: registration, proof that an agent holds its key, and the public directory's figures.

**Challenge protocol.** ``GET /api/agents/challenge?pubkey=`` draws 32 random bytes, ``challenge`` (64
lower-case hex), stores them for that pubkey until ``expiresInSeconds`` have passed, and also answers
``message``, the hex of the 32 bytes to sign::

    message = SHA256(T || T || challenge || pubkey)      T = SHA256("boltgate/agent-challenge/v1")

(a BIP-340 tagged hash of the raw challenge and x-only pubkey bytes, :func:`nostr.challenge_message`): the
tag makes the signature worthless in any other protocol, the pubkey binds it to one key. ``POST
/api/agents/verify`` takes ``{pubkey, challenge, signature}`` (BIP-340, 128 hex over ``message``) or, for
Nostr signers that only sign events (NIP-07, NIP-46), ``{pubkey, challenge, event}``: a kind-22242 event
(NIP-42 ``AUTH``) by that pubkey with a ``["challenge", <challenge>]`` tag and ``created_at`` within 10
minutes of the server's clock.

**Decisions.** The proof is checked before the database is touched, so forged or malformed proofs cost no
write transaction and never consume a challenge: were a wrong signature to consume it, anyone who saw a
challenge could burn it, while forging a signature is infeasible and the challenge expires anyway (a bad
proof for an unregistered key is therefore 401, not 404). Then, in one transaction: the agent (404
``agent_not_found``), the challenge — unknown or issued for another key: 401 ``challenge_not_found`` (one
answer for both); used: 409 ``challenge_used``; expired: 401 ``challenge_expired`` — and a conditional
``UPDATE … WHERE used_at IS NULL AND expires_at > now``, so of two verifications racing on any replicas
exactly one wins. ``verifiedAt`` is the latest verification: it says how fresh the proof is. Challenges
stay a day after they expire, so a replay is told 409 rather than "not found".

**Figures** (the same in every agent object and in ``/stats``): requests are the ``proxy_usage`` counts of
the proxies behind the agent's capabilities (any status), revenue the paid challenges of those proxies
(resource ``proxy:<id>:…`` of the capability's merchant), active agreements those naming the agent as
provider that have no expiry or have not expired.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.agent import nostr
from boltgate.agent.models import Agent, AgentChallenge, Agreement, Capability
from boltgate.errors import BoltgateError, Conflict, NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import new_id
from boltgate.l402.models import Challenge
from boltgate.proxy.models import ProxyUsage

_CHALLENGE = re.compile(r"[0-9a-f]{64}")
_LOWER128 = re.compile(r"[0-9a-f]{128}")
_KEEP_EXPIRED = timedelta(days=1)
_EVENT_REFUSALS = frozenset({"challenge_mismatch", "pubkey_mismatch", "event_too_old"})


class NotProven(BoltgateError):
    """401: the proof does not hold, or its challenge cannot be used (``code`` says which)."""

    status = 401
    code = "invalid_signature"
    title = "Identity not proven"


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    revenue_sats: int = 0
    active_agreements: int = 0


def _invalid(field: str, code: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors={field: [detail]}, code=code)


def parse_key(text: str, field: str = "pubkey") -> str:
    """The lower-case pubkey, or 400 ``invalid_pubkey`` (wrong length, not hex, not on the curve)."""
    try:
        return nostr.parse_pubkey(text)
    except nostr.NostrError as exc:
        raise _invalid(field, exc.code, exc.detail) from None


def _check_event(event: dict[str, Any], challenge: str, pubkey: str, now: datetime) -> None:
    """A malformed event is 400; a well-formed one that proves nothing here is 401."""
    try:
        nostr.verify_auth_event(event, challenge=challenge, pubkey=pubkey, now=int(now.timestamp()))
    except nostr.NostrError as exc:
        sig = event.get("sig")
        forged = exc.code == "invalid_signature" and isinstance(sig, str) and _LOWER128.fullmatch(sig)
        if forged or exc.code in _EVENT_REFUSALS:
            raise NotProven(exc.detail, code=exc.code) from None
        raise _invalid("event", exc.code, exc.detail) from None


def check_proof(
    pubkey_hex: str,
    challenge_hex: str,
    signature_hex: str | None,
    event: dict[str, Any] | None,
    now: datetime,
) -> tuple[str, str]:
    """(pubkey, challenge) when the proof (a signature, else the event) holds; pure, so it runs before
    any database work."""
    pubkey = parse_key(pubkey_hex)
    challenge = challenge_hex.lower()
    if not _CHALLENGE.fullmatch(challenge):
        raise _invalid("challenge", "invalid_challenge", "a challenge is 64 hex characters")
    if signature_hex is None and event is not None:
        _check_event(event, challenge, pubkey, now)
        return pubkey, challenge
    try:
        signature = nostr.parse_signature(signature_hex or "")
    except nostr.NostrError as exc:
        raise _invalid("signature", exc.code, exc.detail) from None
    if not nostr.verify(pubkey, nostr.challenge_message(challenge, pubkey), signature):
        raise NotProven("the signature is not this pubkey's signature of this challenge's message")
    return pubkey, challenge


async def get_agent(session: AsyncSession, pubkey: str, *, lock: bool = False) -> Agent:
    """The agent of a parsed pubkey, inactive ones included (their figures stay readable), or 404."""
    stmt = select(Agent).where(Agent.pubkey == pubkey)
    agent = await session.scalar(stmt.with_for_update() if lock else stmt)
    if agent is None:
        raise NotFound(f"no agent is registered with pubkey {pubkey}", code="agent_not_found")
    return agent


async def _insert(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless the pubkey is taken (a concurrent registration may have just taken it)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Agent).values(**values).on_conflict_do_nothing(index_elements=["pubkey"])
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def register(
    session: AsyncSession,
    pubkey_hex: str,
    profile: dict[str, str | None],
    merchant_id: str | None,
    now: datetime,
) -> tuple[Agent, bool]:
    """(agent, created). ``profile``: name and description. Registering again is 200 for the same
    owner (merchant, or none both times; another owner is 409), and changes the profile only when
    the owner's API key proves who asks: registration itself proves nothing about the key holder,
    so an agent registered without a merchant keeps its first profile."""
    pubkey = parse_key(pubkey_hex)
    values = {"id": new_id("agt"), "pubkey": pubkey, "merchant_id": merchant_id, **profile}
    if await _insert(session, {**values, "is_active": True, "created_at": now, "updated_at": now}):
        return Agent(**values, is_active=True, verified_at=None, created_at=now, updated_at=now), True
    agent = await get_agent(session, pubkey, lock=True)
    if agent.merchant_id != merchant_id:
        raise Conflict(f"agent {pubkey} is registered by another account", code="agent_exists")
    for field, value in profile.items():
        if value is not None and merchant_id is not None:
            setattr(agent, field, value)
            agent.updated_at = now
    return agent, False


async def forget_stale_challenges(session: AsyncSession, now: datetime) -> int:
    """Delete challenges that expired more than a day ago (kept that long so a replay is told
    "expired"); run periodically, since keys that never ask again would otherwise keep theirs."""
    result = await session.execute(
        delete(AgentChallenge).where(AgentChallenge.expires_at < now - _KEEP_EXPIRED)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def issue_challenge(session: AsyncSession, pubkey: str, now: datetime, seconds: int) -> AgentChallenge:
    """A fresh challenge for a registered agent (404 first: nothing is stored for unknown keys)."""
    await get_agent(session, pubkey)
    stale = and_(AgentChallenge.pubkey == pubkey, AgentChallenge.expires_at < now - _KEEP_EXPIRED)
    await session.execute(delete(AgentChallenge).where(stale))
    row = AgentChallenge(
        challenge=secrets.token_hex(32),
        pubkey=pubkey,
        created_at=now,
        expires_at=now + timedelta(seconds=seconds),
    )
    session.add(row)
    return row


async def verify(session: AsyncSession, pubkey: str, challenge: str, now: datetime) -> Agent:
    """Consume the challenge (once, atomically) and mark the agent verified; the proof is already checked."""
    agent = await get_agent(session, pubkey)
    row = await session.get(AgentChallenge, challenge)
    if row is None or row.pubkey != pubkey:
        raise NotProven("no such challenge was issued for this pubkey", code="challenge_not_found")
    if row.used_at is not None:
        raise Conflict("this challenge was already used: ask for a new one", code="challenge_used")
    if row.expires_at <= now:
        raise NotProven("this challenge has expired: ask for a new one", code="challenge_expired")
    mine = and_(AgentChallenge.challenge == challenge, AgentChallenge.pubkey == pubkey)
    unused = and_(AgentChallenge.used_at.is_(None), AgentChallenge.expires_at > now)
    consume = update(AgentChallenge).where(mine, unused).values(used_at=now)
    result = await session.execute(consume.execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("this challenge was just used by another request", code="challenge_used")
    agent.verified_at = agent.updated_at = now
    return agent


async def list_agents(
    session: AsyncSession, verified: bool | None, limit: int, offset: int
) -> tuple[list[Agent], int]:
    """Active agents, newest first, and how many there are."""
    where = [Agent.is_active.is_(True)]
    if verified is not None:
        where.append(Agent.verified_at.is_not(None) if verified else Agent.verified_at.is_(None))
    total = await session.scalar(select(func.count()).select_from(Agent).where(*where))
    page = select(Agent).where(*where).order_by(Agent.created_at.desc(), Agent.id.desc())
    return list(await session.scalars(page.limit(limit).offset(offset))), int(total or 0)


def _figure_queries(pubkeys: Sequence[str], now: datetime) -> list[Select[Any, Any]]:
    """(pubkey, figure) rows: requests, revenue, active agreements.

    Each proxy counts once per agent however many of its capabilities name it (``DISTINCT``); a paid
    challenge is the proxy's when its resource starts with ``proxy:<id>:`` (compared with ``substr``:
    ``LIKE`` would read ``_`` as a wildcard, and ignore case on SQLite)."""
    cols = select(Capability.agent_pubkey, Capability.proxy_id, Capability.merchant_id).distinct()
    caps = cols.where(Capability.agent_pubkey.in_(pubkeys), Capability.proxy_id.is_not(None)).subquery()
    usage = select(caps.c.agent_pubkey, func.sum(ProxyUsage.requests)).select_from(caps)
    usage = usage.join(ProxyUsage, ProxyUsage.proxy_id == caps.c.proxy_id)
    prefix = literal("proxy:") + caps.c.proxy_id + literal(":")
    owner = and_(
        Challenge.merchant_id == caps.c.merchant_id,
        func.substr(Challenge.resource, 1, func.length(prefix)) == prefix,
    )
    paid = select(caps.c.agent_pubkey, func.sum(Challenge.amount_sats)).select_from(caps)
    paid = paid.join(Challenge, owner).where(Challenge.paid_at.is_not(None))
    live = or_(Agreement.expires_at.is_(None), Agreement.expires_at > now)
    deals = select(Agreement.provider_pubkey, func.count()).where(
        Agreement.provider_pubkey.in_(pubkeys), live
    )
    return [
        usage.group_by(caps.c.agent_pubkey),
        paid.group_by(caps.c.agent_pubkey),
        deals.group_by(Agreement.provider_pubkey),
    ]


async def totals(session: AsyncSession, pubkeys: Sequence[str], now: datetime) -> dict[str, Totals]:
    """Requests, revenue and active agreements of each agent, from what was really used and paid."""
    if not pubkeys:
        return {}
    found: list[dict[str, int]] = []
    for stmt in _figure_queries(pubkeys, now):
        found.append({pubkey: int(n or 0) for pubkey, n in await session.execute(stmt)})
    requests, revenue, agreements = found
    return {pk: Totals(requests.get(pk, 0), revenue.get(pk, 0), agreements.get(pk, 0)) for pk in pubkeys}


def agent_out(agent: Agent, figures: Totals) -> dict[str, Any]:
    """The public agent object (never its owner: the directory is public)."""
    return {
        "id": agent.id,
        "pubkey": agent.pubkey,
        "name": agent.name,
        "description": agent.description,
        "isActive": agent.is_active,
        "isVerified": agent.verified_at is not None,
        "verifiedAt": rfc3339(agent.verified_at),
        "createdAt": rfc3339(agent.created_at),
        "updatedAt": rfc3339(agent.updated_at),
        "totalRequests": figures.requests,
        "totalRevenueSats": figures.revenue_sats,
        "activeAgreements": figures.active_agreements,
    }


def stats_out(agent: Agent, figures: Totals, now: datetime) -> dict[str, Any]:
    """``lastUpdated`` is when the figures were computed (they are live, not cached); the average is
    sats per request rounded to 4 decimals, 0 before the first request."""
    average = round(figures.revenue_sats / figures.requests, 4) if figures.requests else 0
    return {
        "pubkey": agent.pubkey,
        "name": agent.name,
        "totalRequests": figures.requests,
        "totalRevenueSats": figures.revenue_sats,
        "activeAgreements": figures.active_agreements,
        "averageRevenuePerRequest": average,
        "isActive": agent.is_active,
        "registeredAt": rfc3339(agent.created_at),
        "lastUpdated": rfc3339(now),
    }
