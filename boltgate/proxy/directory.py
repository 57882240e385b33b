"""What the proxy's hot path knows about a proxy, kept in memory for a moment.

Every proxied request needs its proxy's target, prices and token rules; reading two tables per
request would cost more than the rest of the check. A replica keeps each proxy's settings (and
"no such proxy") for ``BOLTGATE_PROXY_CONFIG_CACHE_SECONDS``; a change made through this replica
applies at once (the producer API drops the entry), one made through another replica within that
time. The cache is bounded (least recently loaded entries go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from boltgate.db.engine import Database
from boltgate.kit.search import split_lines
from boltgate.proxy import pricing
from boltgate.proxy.manifest import EndpointView, ProxyView
from boltgate.proxy.models import Proxy, ProxyEndpoint
from boltgate.proxy.service import endpoints_of

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Entry:
    proxy_id: str
    merchant_id: str
    name: str
    target_base_url: str
    default_price_sats: int
    token_ttl_seconds: int | None
    max_calls_per_token: int | None
    manifest_enabled: bool
    retired: bool
    retire_reason: str | None
    table: pricing.PriceTable
    view: ProxyView  # what the manifest and openapi.json show


def _view(proxy: Proxy, endpoints: list[ProxyEndpoint]) -> ProxyView:
    return ProxyView(
        proxy_id=proxy.id,
        name=proxy.name,
        description=proxy.description,
        service_description=proxy.service_description,
        categories=tuple(split_lines(proxy.categories)),
        default_price_sats=proxy.default_price_sats,
        documentation_url=proxy.documentation_url,
        endpoints=tuple(
            EndpointView(
                endpoint_id=e.endpoint_id,
                path=e.path,
                method=e.http_method,
                price_sats=e.price_sats,
                summary=e.summary,
                description=e.description,
                tags=tuple(split_lines(e.tags)),
            )
            for e in endpoints
        ),
    )


def entry_of(proxy: Proxy, endpoints: list[ProxyEndpoint]) -> Entry:
    table = pricing.PriceTable(
        (pricing.PricedEndpoint(e.endpoint_id, e.path, e.http_method, e.price_sats) for e in endpoints),
        proxy.default_price_sats,
    )
    return Entry(
        proxy_id=proxy.id,
        merchant_id=proxy.merchant_id,
        name=proxy.name,
        target_base_url=proxy.target_base_url,
        default_price_sats=proxy.default_price_sats,
        token_ttl_seconds=proxy.token_ttl_seconds,
        max_calls_per_token=proxy.max_calls_per_token,
        manifest_enabled=proxy.manifest_enabled,
        retired=proxy.retired_at is not None,
        retire_reason=proxy.retire_reason,
        table=table,
        view=_view(proxy, endpoints),
    )


class Directory:
    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, Entry | None]] = OrderedDict()

    async def get(self, proxy_id: str) -> Entry | None:
        """The proxy's settings, or None when there is no such proxy."""
        now = time.monotonic()
        cached = self._entries.get(proxy_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        entry = await self._load(proxy_id)
        if self._ttl > 0:
            self._entries[proxy_id] = (now + self._ttl, entry)
            self._entries.move_to_end(proxy_id)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return entry

    async def _load(self, proxy_id: str) -> Entry | None:
        async with self._db.reading() as session:
            proxy = await session.get(Proxy, proxy_id)
            if proxy is None:
                return None
            endpoints = (await endpoints_of(session, [proxy_id])).get(proxy_id, [])
        return entry_of(proxy, endpoints)

    def forget(self, proxy_id: str) -> None:
        self._entries.pop(proxy_id, None)
