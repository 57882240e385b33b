"""The per-process context: everything the app builds once at start-up and hands down."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
from fastapi import Request

from boltgate.config import Settings
from boltgate.db.engine import Database
from boltgate.kit.clock import Clock, utcnow
from boltgate.kit.crypto import SecretBox
from boltgate.l402.store import Keys
from boltgate.lightning.base import LightningBackend
from boltgate.merchant.auth import KeyCache
from boltgate.ops.ratelimit import RateLimiter
from boltgate.rates.service import RateService
from boltgate.webhook.feed import EventFeed


@dataclass
class Context:
    settings: Settings
    db: Database
    backend: LightningBackend
    rates: RateService
    limiter: RateLimiter
    http: httpx.AsyncClient
    webhook_http: httpx.AsyncClient
    secrets: SecretBox
    feed: EventFeed
    wake: asyncio.Event  # set when events commit: the webhook worker looks for work
    l402: Keys  # challenge-id key and root-key store of L402 / the Payment scheme
    keys: KeyCache = field(default_factory=KeyCache)
    clock: Clock = utcnow


async def get_context(request: Request) -> Context:
    """An ``async`` dependency on purpose: FastAPI runs plain ``def`` dependencies in a thread pool."""
    ctx: Context = request.app.state.ctx
    return ctx
