"""One exchange rate per currency, agreed by several providers, cached, and kept through outages.

:class:`RateService` is what the rest of boltgate asks for "fiat per BTC". Its rules:

* **Median of providers.** On a cache miss every provider is asked at once, under one shared
  deadline; the rate is the median of those that answered (the mean of the two middle ones for
  an even count). One provider quoting nonsense cannot move the price, and one being down only
  narrows the vote. ``Rate.source`` names who voted: ``"median(coinbase,kraken)"``, or just the
  provider's name when only one answered.
* **TTL cache per currency.** A rate younger than ``ttl_seconds`` is served without a request.
* **Single flight.** Concurrent callers needing the same currency share one in-flight fetch, so a
  burst of checkouts when the cache expires makes one request per provider, not one per checkout.
* **Stale while error.** If every provider fails, the last good rate is still served while it is
  younger than ``stale_max_seconds`` (logged as a warning); after that
  :class:`~boltgate.errors.RateUnavailable` (503) is raised. Quoting an hour-old rate would
  under- or over-charge, so the bound matters.
* **Retry pacing.** After a fetch that found no rate for a currency, the providers are not asked
  about it again for ``retry_after_seconds``; callers get the stale rate or RateUnavailable.
* **BTC is the identity.** ``get_rate("BTC")`` is rate 1, source ``"identity"``, without asking
  anyone, so callers may treat BTC like any other currency.

Unsupported currency codes raise :class:`~boltgate.errors.ValidationFailed` (400).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import httpx
import structlog

from boltgate.errors import RateUnavailable
from boltgate.kit.money import BTC, normalize_currency
from boltgate.rates.base import DEFAULT_TIMEOUT_SECONDS, RateProvider, RateProviderError
from boltgate.rates.coinbase import CoinbaseRateProvider
from boltgate.rates.coingecko import CoinGeckoRateProvider
from boltgate.rates.fixed import FixedRateProvider
from boltgate.rates.kraken import KrakenRateProvider

log = structlog.get_logger(__name__)

IDENTITY_SOURCE = "identity"
PROVIDER_NAMES = ("fixed", "coinbase", "kraken", "coingecko")
DEFAULT_FETCH_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_AFTER_SECONDS = 5.0


@dataclass(frozen=True)
class Rate:
    """The price of 1 BTC in ``currency``, who said so, and when (``clock()`` seconds)."""

    currency: str
    rate: Decimal
    source: str
    fetched_at: float


def median(values: Sequence[Decimal]) -> Decimal:
    """Median of Decimals; for an even count, the mean of the two middle values."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def combine(currency: str, answers: Sequence[tuple[str, Decimal]], fetched_at: float) -> Rate:
    """The :class:`Rate` agreed by ``answers`` (provider name, rate), in provider order."""
    names = [name for name, _ in answers]
    source = names[0] if len(names) == 1 else f"median({','.join(names)})"
    return Rate(currency, median([rate for _, rate in answers]), source, fetched_at)


def _usable(rate: object) -> bool:
    """A provider broke its contract if this is false; the value is ignored rather than trusted."""
    return isinstance(rate, Decimal) and rate.is_finite() and rate > 0


async def _join(task: asyncio.Task[dict[str, Rate]]) -> dict[str, Rate]:
    """Wait for a shared fetch without owning it.

    ``shield``: one caller giving up must not cancel the fetch the others wait on. A fetch
    cancelled under us (at shutdown) counts as a failed one, but our own cancellation propagates.
    """
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not task.cancelled() or (current is not None and current.cancelling()):
            raise
        return {}


class RateService:
    """Cached, median-of-providers exchange rates; see the module docstring for the rules."""

    def __init__(
        self,
        providers: Sequence[RateProvider],
        *,
        ttl_seconds: float,
        stale_max_seconds: float,
        clock: Callable[[], float] = time.time,
        fetch_timeout_seconds: float = DEFAULT_FETCH_TIMEOUT_SECONDS,
        retry_after_seconds: float = DEFAULT_RETRY_AFTER_SECONDS,
    ) -> None:
        if min(ttl_seconds, fetch_timeout_seconds) <= 0 or min(stale_max_seconds, retry_after_seconds) < 0:
            raise ValueError("ttl and fetch timeout must be positive; stale_max and retry_after not negative")
        names = [provider.name for provider in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"rate providers listed twice: {names}")
        self._providers = tuple(providers)
        self._ttl = ttl_seconds
        self._stale_max = stale_max_seconds
        self._clock = clock
        self._fetch_timeout = fetch_timeout_seconds
        self._retry_after = retry_after_seconds
        self._cache: dict[str, Rate] = {}  # last good rate per currency, fresh or not
        self._failed_at: dict[str, float] = {}  # when a fetch last got no rate for the currency
        self._inflight: dict[str, asyncio.Task[dict[str, Rate]]] = {}

    @property
    def provider_names(self) -> list[str]:
        return [provider.name for provider in self._providers]

    async def get_rate(self, currency: str) -> Rate:
        """Fiat per BTC for ``currency``; :class:`RateUnavailable` when none can be had."""
        code = normalize_currency(currency)
        rate = (await self._resolve([code])).get(code)
        if rate is None:
            raise RateUnavailable(
                f"no exchange rate for {code}: every rate provider failed and no recent rate is cached"
            )
        return rate

    async def snapshot(self, currencies: Iterable[str]) -> list[Rate]:
        """Rates for ``currencies`` in the given order, leaving out those unavailable right now.

        The misses are fetched together (one request per provider for all of them).
        """
        codes = list(dict.fromkeys(normalize_currency(currency) for currency in currencies))
        found = await self._resolve(codes)
        return [found[code] for code in codes if code in found]

    async def aclose(self) -> None:
        """Cancel fetches still in flight (at shutdown, before the HTTP client is closed)."""
        tasks = set(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _resolve(self, codes: Sequence[str]) -> dict[str, Rate]:
        """Rates for canonical ``codes``: from cache, a shared in-flight fetch, a new one, or stale."""
        now = self._clock()
        found: dict[str, Rate] = {}
        waiting: dict[str, asyncio.Task[dict[str, Rate]]] = {}
        to_fetch: list[str] = []
        for code in codes:
            cached = self._cache.get(code)
            if code == BTC:
                found[code] = Rate(BTC, Decimal(1), IDENTITY_SOURCE, now)
            elif cached is not None and now - cached.fetched_at < self._ttl:
                found[code] = cached
            elif code in self._inflight:
                waiting[code] = self._inflight[code]
            elif self._recently_failed(code, now):
                self._put_stale(found, code, now)
            else:
                to_fetch.append(code)
        if to_fetch:
            task = self._start_fetch(tuple(to_fetch))
            waiting.update(dict.fromkeys(to_fetch, task))
        for code, task in waiting.items():
            fetched = await _join(task)
            if code in fetched:
                found[code] = fetched[code]
            else:
                self._put_stale(found, code, self._clock())
        return found

    def _recently_failed(self, code: str, now: float) -> bool:
        """Whether a fetch found no rate for ``code`` too recently to ask the providers again.

        Without this, every request during an outage (or for a currency no provider quotes) would
        hit the providers again, and public endpoints rate-limit by IP.
        """
        failed_at = self._failed_at.get(code)
        return failed_at is not None and now - failed_at < self._retry_after

    def _put_stale(self, found: dict[str, Rate], code: str, now: float) -> None:
        stale = self._stale(code, now)
        if stale is not None:
            found[code] = stale

    def _start_fetch(self, codes: tuple[str, ...]) -> asyncio.Task[dict[str, Rate]]:
        task = asyncio.create_task(self._fetch(codes), name=f"rates-fetch:{','.join(codes)}")
        for code in codes:
            self._inflight[code] = task
        # a done-callback, not a ``finally``: it also runs for a task cancelled before it started
        task.add_done_callback(functools.partial(self._forget, codes))
        return task

    def _forget(self, codes: tuple[str, ...], task: asyncio.Task[dict[str, Rate]]) -> None:
        for code in codes:
            if self._inflight.get(code) is task:
                del self._inflight[code]

    async def _fetch(self, codes: tuple[str, ...]) -> dict[str, Rate]:
        """Ask every provider for ``codes``, cache and return the rates that got at least one answer."""
        answers = await self._ask_all(codes)
        fetched_at = self._clock()
        rates: dict[str, Rate] = {}
        for code in codes:
            votes = [(name, quoted[code]) for name, quoted in answers if code in quoted]
            if votes:
                rates[code] = self._cache[code] = combine(code, votes, fetched_at)
                self._failed_at.pop(code, None)
            else:
                self._failed_at[code] = fetched_at
                self._log_stale(code, fetched_at)
        return rates

    async def _ask_all(self, codes: tuple[str, ...]) -> list[tuple[str, dict[str, Decimal]]]:
        """Each answering provider's usable rates, in provider order; failures are logged and dropped."""
        deadline = asyncio.get_running_loop().time() + self._fetch_timeout
        results = await asyncio.gather(
            *(self._ask(provider, codes, deadline) for provider in self._providers), return_exceptions=True
        )
        answers: list[tuple[str, dict[str, Decimal]]] = []
        for provider, result in zip(self._providers, results, strict=True):
            if isinstance(result, BaseException):
                self._log_failure(provider.name, result)
                continue
            answers.append((provider.name, {c: r for c, r in result.items() if c in codes and _usable(r)}))
        return answers

    @staticmethod
    async def _ask(provider: RateProvider, codes: tuple[str, ...], deadline: float) -> dict[str, Decimal]:
        async with asyncio.timeout_at(deadline):
            return await provider.fetch(codes)

    @staticmethod
    def _log_failure(provider: str, error: BaseException) -> None:
        if isinstance(error, RateProviderError | TimeoutError):
            log.warning("rate_provider_failed", provider=provider, error=str(error) or type(error).__name__)
        else:  # a bug in the provider, not an outage: keep the traceback
            log.error("rate_provider_crashed", provider=provider, exc_info=error)

    def _stale(self, code: str, now: float) -> Rate | None:
        """The last good rate if it is still young enough to serve while no provider has one."""
        cached = self._cache.get(code)
        if cached is None or now - cached.fetched_at > self._stale_max:
            return None
        return cached

    def _log_stale(self, code: str, now: float) -> None:
        """Once per failed fetch (not per request served): the stale rate is what callers get now."""
        stale = self._stale(code, now)
        if stale is not None:
            age = round(now - stale.fetched_at, 3)
            log.warning("rate_stale_served", currency=code, age_seconds=age, source=stale.source)


def build_providers(
    names: Sequence[str],
    client: httpx.AsyncClient,
    fixed_rates: Mapping[str, Decimal],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[RateProvider]:
    """Providers for configured ``names`` (see :data:`PROVIDER_NAMES`), in order; ValueError on
    an unknown or repeated name, or on ``fixed`` without rates, so a bad config stops start-up."""
    providers: list[RateProvider] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip().lower()
        if name in seen:
            raise ValueError(f"rate provider {name!r} is listed twice")
        seen.add(name)
        providers.append(_make_provider(name, client, fixed_rates, timeout_seconds))
    return providers


def _make_provider(
    name: str, client: httpx.AsyncClient, fixed_rates: Mapping[str, Decimal], timeout: float
) -> RateProvider:
    match name:
        case "fixed":
            if not fixed_rates:
                raise ValueError("the fixed rate provider needs fixed_rates")
            return FixedRateProvider(fixed_rates)
        case "coinbase":
            return CoinbaseRateProvider(client, timeout=timeout)
        case "kraken":
            return KrakenRateProvider(client, timeout=timeout)
        case "coingecko":
            return CoinGeckoRateProvider(client, timeout=timeout)
    raise ValueError(f"unknown rate provider {name!r}; known: {', '.join(PROVIDER_NAMES)}")
