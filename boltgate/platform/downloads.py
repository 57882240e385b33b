"""``GET /api/stats/downloads``: how many paid downloads this gateway has delivered (public).

No published client reads this route, and boltgate cannot know how often anyone downloaded the
MCP server or other packages from their registries, so it counts only what it truly sees: paid
content (``/api/l402/content/{slug}``) and bundles (``/api/l402/content/bundle``) whose token
was presented after payment — a challenge of a ``content:``/``bundle:`` resource with ``paid_at``
set. A token used several times counts once (it is one purchase); proxy calls and merchant
payments are not downloads (``/api/stats/l402`` shows those to their merchant).
Gateway-wide totals only — no merchant, item or payer is named — kept for a minute per process
(counting scans the challenges).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from boltgate.kit.clock import rfc3339
from boltgate.l402.guard import PUBLIC
from boltgate.l402.models import Challenge, ContentItem
from boltgate.web import Ctx, json_response, problems

router = APIRouter(tags=["platform"])
CACHE_SECONDS = 60.0


async def _count(ctx: Ctx) -> dict[str, Any]:
    # every paid content purchase sold through the gateway (merchants' included: it is a count of
    # sales, not of distinct buyers, and a merchant buying its own content counts too)
    paid = (Challenge.paid_at.is_not(None),)
    async with ctx.db.reading() as session:
        content = await session.scalar(
            select(func.count()).select_from(Challenge).where(Challenge.resource.like("content:%"), *paid)
        )
        bundles = await session.scalar(
            select(func.count()).select_from(Challenge).where(Challenge.resource.like("bundle:%"), *paid)
        )
        items = await session.scalar(
            select(func.count()).select_from(ContentItem).where(ContentItem.active.is_(True))
        )
    return {
        "totalDownloads": int(content or 0) + int(bundles or 0),
        "paidContentDownloads": int(content or 0),
        "paidBundleDownloads": int(bundles or 0),
        "contentItems": int(items or 0),
        "countedAt": rfc3339(ctx.clock()),
    }


@router.get(
    "/api/stats/downloads",
    dependencies=PUBLIC,
    responses=problems(429),
    summary="Paid content downloads delivered by this gateway (totals; updated every minute)",
)
async def downloads(request: Request, ctx: Ctx) -> Response:
    hit: tuple[float, dict[str, Any]] | None = getattr(request.app.state, "download_stats", None)
    if hit is None or hit[0] < time.monotonic():
        hit = (time.monotonic() + CACHE_SECONDS, await _count(ctx))
        request.app.state.download_stats = hit
    return json_response(hit[1])
