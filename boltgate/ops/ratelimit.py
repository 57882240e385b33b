"""Request rate limits with the ``limits`` library: in memory by default, Redis when configured.

A sliding-window counter per client (API key hash, or IP for unauthenticated routes) keeps
memory small and is fair at window edges. When Redis is unreachable the limiter fails open
(the request is served and a warning logged): an outage of the limiter must not stop payments.
"""

from __future__ import annotations

import math
import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from boltgate.errors import RateLimited

log = structlog.get_logger(__name__)


class RateLimiter:
    def __init__(self, rate: str, redis_url: str | None = None) -> None:
        self.item: RateLimitItem = parse(rate)
        self.storage: Storage = (
            RedisStorage(redis_url, implementation="redispy", wrap_exceptions=True)
            if redis_url
            else MemoryStorage()
        )
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)

    async def check(self, client: str, rate: RateLimitItem | None = None) -> None:
        """Count one request for ``client`` (against ``rate``, default the configured limit); raise
        :class:`RateLimited` with ``Retry-After`` when over."""
        item = rate or self.item
        try:
            allowed = await self._limiter.hit(item, client)
            if allowed:
                return
            stats = await self._limiter.get_window_stats(item, client)
        except Exception as exc:  # the limiter's store is down: fail open
            log.warning("rate_limiter_unavailable", error=type(exc).__name__)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Rate limit of {item} exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
