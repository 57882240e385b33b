"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from boltgate.errors import ServiceUnavailable
from boltgate.lightning.base import LightningError
from boltgate.lightning.failover import FailoverBackend
from boltgate.web import Ctx, json_response, problems

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Failover(BaseModel):
    active: str  # primary | secondary
    primary: str
    secondary: str
    switches: int


class Ready(BaseModel):
    status: str
    database: str
    lightning: str
    nodePubkey: str
    failover: Failover | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is up (liveness)."""
    return json_response({"status": "ok"})


@router.get("/readyz", response_model=Ready, responses=problems(503))
async def readyz(ctx: Ctx) -> Response:
    """The database and the Lightning backend answer (readiness)."""
    try:
        async with asyncio.timeout(5):
            async with ctx.db.reading() as session:
                await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable("the database does not answer", code="database_unavailable") from exc
    try:
        async with asyncio.timeout(5):
            info = await ctx.backend.node_info()
    except (TimeoutError, LightningError) as exc:
        reason = "no answer in 5 s" if isinstance(exc, TimeoutError) else str(exc)
        raise ServiceUnavailable(
            f"the Lightning backend does not answer ({reason})",
            code="lightning_backend_unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    body: dict[str, Any] = {
        "status": "ready",
        "database": ctx.db.dialect,
        "lightning": info.backend,
        "nodePubkey": info.pubkey,
    }
    if isinstance(ctx.backend, FailoverBackend):  # after node_info: the switch it may have made
        body["failover"] = ctx.backend.status()
    return json_response(body)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    """Prometheus exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
