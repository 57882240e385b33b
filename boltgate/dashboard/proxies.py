"""The merchant's paid proxies with their public URLs and the stats ``proxy/stats.py`` computes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from boltgate.context import Context
from boltgate.dashboard.web import guard, render
from boltgate.proxy import service as proxy_service
from boltgate.proxy.stats import proxy_stats
from boltgate.web import Ctx

router = APIRouter(include_in_schema=False)
MAX_PROXIES_SHOWN = 50
DAYS = 30


async def proxy_rows(ctx: Context, merchant_id: str) -> list[dict[str, Any]]:
    """Each proxy (newest first, at most 50) with its public URL and last-30-day totals."""
    await ctx.usage.flush()
    async with ctx.db.reading() as session:
        proxies = (await proxy_service.list_for(session, merchant_id))[:MAX_PROXIES_SHOWN]
    rows = []
    for proxy in proxies:
        stats = await proxy_stats(ctx, proxy, DAYS)
        rows.append(
            {
                **stats,
                "url": ctx.settings.base_url + proxy_service.proxy_url(proxy.id),
                "target": proxy.target_base_url,
                "price": proxy.default_price_sats,
            }
        )
    return rows


@router.get("/dashboard/proxies")
async def proxies(request: Request, ctx: Ctx) -> Response:
    me = await guard(request, ctx)
    if isinstance(me, Response):
        return me
    return render(ctx, "proxies.html", me=me, rows=await proxy_rows(ctx, me.merchant_id), days=DAYS)
