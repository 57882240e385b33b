"""The per-process context: everything the app builds once at start-up and hands down."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import httpx
from fastapi import Request

from boltgate.agent.events import Platform
from boltgate.config import Settings
from boltgate.db.engine import Database
from boltgate.kit.clock import Clock, utcnow
from boltgate.kit.crypto import SecretBox
from boltgate.kit.netguard import Network
from boltgate.l402.store import Keys
from boltgate.lightning.base import LightningBackend
from boltgate.merchant.auth import KeyCache
from boltgate.merchant.backends import BackendPool
from boltgate.ops.ratelimit import RateLimiter
from boltgate.proxy.directory import Directory
from boltgate.proxy.usage import Usage
from boltgate.rates.service import RateService
from boltgate.shopify.stores import Channel
from boltgate.webhook.feed import EventFeed
from boltgate.webhook.sse import StreamSlots
from boltgate.worker.leases import Leases


@dataclass
class Context:
    settings: Settings
    db: Database
    backend: LightningBackend  # the gateway's own (with its failover partner)
    backends: BackendPool  # the gateway's and the merchants' own, by payments.backend_ref
    rates: RateService
    limiter: RateLimiter
    http: httpx.AsyncClient
    webhook_http: httpx.AsyncClient
    secrets: SecretBox
    feed: EventFeed
    wake: asyncio.Event  # set when events commit: the webhook worker looks for work
    l402: Keys  # challenge-id key and root-key store of L402 / the Payment scheme
    proxies: Directory  # the paid proxy's settings, cached
    usage: Usage  # the paid proxy's request counters
    proxy_http: aiohttp.ClientSession  # to upstreams (address-guarded)
    proxy_networks: tuple[Network, ...]  # private networks upstreams may be in (operator's allow-list)
    platform: Platform  # the Nostr key the marketplace signs with, and its relays
    shopify: Channel  # the Shopify Admin client, and the keys of the Shopify channel
    leases: Leases  # one run of a periodic job at a time across replicas
    proxy_in_flight: dict[str, int] = field(default_factory=dict)  # requests being relayed, per proxy
    keys: KeyCache = field(default_factory=KeyCache)
    streams: StreamSlots = field(default_factory=StreamSlots)  # open event streams per owner
    clock: Clock = utcnow


async def get_context(request: Request) -> Context:
    """An ``async`` dependency on purpose: FastAPI runs plain ``def`` dependencies in a thread pool."""
    ctx: Context = request.app.state.ctx
    return ctx
