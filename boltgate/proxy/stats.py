"""Usage and revenue of a merchant's paid routes: per proxy, per endpoint and per day.

Request counts come from ``proxy_usage`` (flushed from memory first, so a producer sees their own
calls at once); revenue is the sum of the paid challenges, by resource — ``proxy:<id>:<endpoint>``
for the proxy (``*``: the default price), ``content:<slug>`` for paid content, anything else for
challenges minted through the producer API. A challenge counts once, on the day it is first
used. Every figure covers the last ``days`` UTC days.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.context import Context
from boltgate.l402.models import Challenge
from boltgate.proxy import service
from boltgate.proxy.models import Proxy, ProxyUsage
from boltgate.proxy.usage import DEFAULT_KEY, FIELDS
from boltgate.web import Ctx, Merchant, json_response, problems

router = APIRouter(tags=["stats"])
_OUT = ("requests", "paidRequests", "challenged", "upstreamErrors")


def _zero() -> dict[str, int]:
    return {name: 0 for name in (*_OUT, "revenueSats", "paidChallenges")}


async def _revenue(
    session: AsyncSession, merchant_id: str, prefix: str | None, since: datetime
) -> list[tuple[str, str, int, int]]:
    """(resource, UTC day, sats, paid challenges) of the merchant's challenges paid since ``since``."""
    # both engines render a stored time as "YYYY-MM-DD HH:MM:SS…" text: its first 10 characters are the day
    day = func.substr(cast(Challenge.paid_at, String), 1, 10)
    stmt = select(Challenge.resource, day, func.sum(Challenge.amount_sats), func.count()).where(
        Challenge.merchant_id == merchant_id, Challenge.paid_at >= since
    )
    if prefix is not None:
        stmt = stmt.where(Challenge.resource.startswith(prefix, autoescape=True))
    rows = await session.execute(stmt.group_by(Challenge.resource, day))
    return [(resource, str(on), int(sats or 0), int(count)) for resource, on, sats, count in rows]


async def _usage(session: AsyncSession, proxy_ids: list[str], since: str) -> list[Any]:
    if not proxy_ids:
        return []
    stmt = select(ProxyUsage).where(ProxyUsage.proxy_id.in_(proxy_ids), ProxyUsage.day >= since)
    return list(await session.scalars(stmt))


def _window(ctx: Context, days: int) -> tuple[str, datetime]:
    """The first UTC day of the window, as text (usage rows) and as a time (paid challenges)."""
    start = (ctx.clock() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%d"), start


def _add(target: dict[str, int], row: ProxyUsage) -> None:
    for out, field in zip(_OUT, FIELDS, strict=True):
        target[out] += getattr(row, field)


async def proxy_stats(ctx: Context, proxy: Proxy, days: int) -> dict[str, Any]:
    since, start = _window(ctx, days)
    totals = _zero()
    endpoints: defaultdict[str, dict[str, int]] = defaultdict(_zero)
    per_day: defaultdict[str, dict[str, int]] = defaultdict(_zero)
    async with ctx.db.reading() as session:
        for row in await _usage(session, [proxy.id], since):
            for target in (totals, endpoints[row.endpoint_key], per_day[row.day]):
                _add(target, row)
        for resource, day, sats, count in await _revenue(
            session, proxy.merchant_id, f"proxy:{proxy.id}:", start
        ):
            key = resource.rsplit(":", 1)[1]
            for target in (totals, endpoints[key], per_day[day]):
                target["revenueSats"] += sats
                target["paidChallenges"] += count
    return {
        "proxyId": proxy.id,
        "name": proxy.name,
        "retired": proxy.retired_at is not None,
        "since": since,
        **totals,
        "endpoints": [
            {"endpointId": None if key == DEFAULT_KEY else key, **values}
            for key, values in sorted(endpoints.items())
        ],
        "days": [{"day": day, **values} for day, values in sorted(per_day.items())],
    }


Days = Annotated[int, Query(ge=1, le=3660, description="request counts of the last N UTC days")]


@router.get(
    "/api/proxy/{proxy_id}/stats",
    responses=problems(400, 401, 404, 429),
    summary="A proxy's requests, paid requests, 402s, upstream errors and revenue, per endpoint and day",
)
async def get_proxy_stats(ctx: Ctx, merchant: Merchant, proxy_id: str, days: Days = 30) -> Response:
    await ctx.usage.flush()
    async with ctx.db.reading() as session:
        proxy = await service.get(session, merchant.merchant_id, proxy_id)
    return json_response(await proxy_stats(ctx, proxy, days))


@router.get(
    "/api/stats/l402",
    responses=problems(400, 401, 429),
    summary="Your L402 revenue and usage: proxies, paid content and producer-API challenges",
)
async def l402_stats(ctx: Ctx, merchant: Merchant, days: Days = 30) -> Response:
    await ctx.usage.flush()
    since, start = _window(ctx, days)
    async with ctx.db.reading() as session:
        proxies = await service.list_for(session, merchant.merchant_id)
        usage = await _usage(session, [p.id for p in proxies], since)
        revenue = await _revenue(session, merchant.merchant_id, None, start)
        issued = await session.scalar(
            select(func.count())
            .select_from(Challenge)
            .where(Challenge.merchant_id == merchant.merchant_id, Challenge.created_at >= start)
        )
    per_proxy: defaultdict[str, dict[str, int]] = defaultdict(_zero)
    for row in usage:
        _add(per_proxy[row.proxy_id], row)
    kinds = {"proxy": 0, "content": 0, "shopify": 0, "challenges": 0}
    paid = 0
    for resource, _day, sats, count in revenue:
        kind = resource.split(":", 1)[0]
        kind = kind if kind in ("proxy", "content", "shopify") else "challenges"
        kinds[kind] += sats
        paid += count
        if kind == "proxy":
            per_proxy[resource.split(":")[1]]["revenueSats"] += sats
            per_proxy[resource.split(":")[1]]["paidChallenges"] += count
    return json_response(
        {
            "merchantId": merchant.merchant_id,
            "since": since,
            "challengesIssued": issued or 0,
            "challengesPaid": paid,
            "revenueSats": sum(kinds.values()),
            "revenueByKind": {
                "proxySats": kinds["proxy"],
                "contentSats": kinds["content"],
                "shopifySats": kinds["shopify"],
                "challengesSats": kinds["challenges"],
            },
            "proxies": [
                {"proxyId": p.id, "name": p.name, "retired": p.retired_at is not None, **per_proxy[p.id]}
                for p in proxies
            ],
        }
    )
