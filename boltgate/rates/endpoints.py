"""``GET /api/rates``: the exchange rates payments are priced with right now."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from boltgate.kit import money
from boltgate.kit.clock import rfc3339
from boltgate.web import Ctx, ip_rate_limit, json_response, problems

router = APIRouter(tags=["rates"])


class RateOut(BaseModel):
    currency: str
    rate: str
    source: str
    fetchedAt: datetime


class RateList(BaseModel):
    base: str
    items: list[RateOut]
    total: int


@router.get(
    "/api/rates", response_model=RateList, responses=problems(429), dependencies=[Depends(ip_rate_limit)]
)
async def rates(ctx: Ctx) -> Response:
    """Fiat per 1 BTC for each configured currency the providers answer for (cached)."""
    fiat = [code for code in money.SUPPORTED_CURRENCIES if code != "BTC"]
    snapshot = await ctx.rates.snapshot(fiat)
    items = [
        {
            "currency": rate.currency,
            "rate": str(rate.rate),
            "source": rate.source,
            "fetchedAt": rfc3339(datetime.fromtimestamp(rate.fetched_at, UTC)),
        }
        for rate in snapshot
    ]
    return json_response({"base": "BTC", "items": items, "total": len(items)})
