"""RateService: median of providers, TTL cache, single flight, stale-while-error, retry pacing."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from boltgate.errors import RateUnavailable, ValidationFailed
from boltgate.rates import Rate, RateProviderError, RateService
from boltgate.rates.service import median

TTL = 60.0
STALE_MAX = 900.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProvider:
    """Answers from ``rates`` or raises ``error``; counts calls; can be held at a gate."""

    def __init__(self, name: str, rates: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.rates = {code: Decimal(value) for code, value in (rates or {}).items()}
        self.error: BaseException | None = None
        self.calls: list[tuple[str, ...]] = []
        self.gate: asyncio.Event | None = None
        self.hang = False

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        self.calls.append(tuple(currencies))
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return {code: self.rates[code] for code in currencies if code in self.rates}

    def fail(self) -> None:
        self.error = RateProviderError(self.name, "HTTP 503")


def make_service(*providers: FakeProvider, clock: Clock, **kwargs: float) -> RateService:
    return RateService(providers, ttl_seconds=TTL, stale_max_seconds=STALE_MAX, clock=clock, **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --- median --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["5"], "5"),
        (["1", "3"], "2"),
        (["3", "1", "2"], "2"),
        (["4", "1", "3", "2"], "2.5"),
        (["1", "1.5"], "1.25"),
    ],
)
def test_median(values: list[str], expected: str) -> None:
    assert median([Decimal(v) for v in values]) == Decimal(expected)


def test_median_of_nothing() -> None:
    with pytest.raises(ValueError, match="no values"):
        median([])


# --- combining providers -------------------------------------------------------------------------


async def test_median_of_three(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("kraken", {"USD": "97200"})
    c = FakeProvider("coingecko", {"USD": "97100"})
    rate = await make_service(a, b, c, clock=clock).get_rate("USD")
    assert rate == Rate("USD", Decimal("97100"), "median(coinbase,kraken,coingecko)", clock.now)


async def test_median_of_two_is_the_mean(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("kraken", {"USD": "97201"})
    rate = await make_service(a, b, clock=clock).get_rate("USD")
    assert rate.rate == Decimal("97100.5")
    assert rate.source == "median(coinbase,kraken)"


async def test_single_provider_is_named_plainly(clock: Clock) -> None:
    rate = await make_service(FakeProvider("fixed", {"EUR": "92000"}), clock=clock).get_rate("eur")
    assert (rate.currency, rate.rate, rate.source) == ("EUR", Decimal("92000"), "fixed")


async def test_one_provider_down(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("kraken", {"USD": "99999"})
    c = FakeProvider("coingecko", {"USD": "97100"})
    b.fail()
    with capture_logs() as logs:
        rate = await make_service(a, b, c, clock=clock).get_rate("USD")
    assert rate.rate == Decimal("97050")
    assert rate.source == "median(coinbase,coingecko)"
    assert {"event": "rate_provider_failed", "provider": "kraken", "log_level": "warning"}.items() <= logs[
        0
    ].items()


async def test_provider_not_quoting_the_currency_does_not_vote(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000", "NZD": "160000"})
    b = FakeProvider("kraken", {"USD": "97200"})
    rate = await make_service(a, b, clock=clock).get_rate("NZD")
    assert (rate.rate, rate.source) == (Decimal("160000"), "coinbase")


async def test_crashing_provider_counts_as_down(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("buggy")
    b.error = AttributeError("bug")
    with capture_logs() as logs:
        rate = await make_service(a, b, clock=clock).get_rate("USD")
    assert rate.source == "coinbase"
    assert any(entry["event"] == "rate_provider_crashed" for entry in logs)


async def test_unusable_rates_from_a_provider_are_ignored(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("broken", {"USD": "0"})
    rate = await make_service(a, b, clock=clock).get_rate("USD")
    assert rate.source == "coinbase"


async def test_slow_provider_is_cut_off_by_the_overall_timeout(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("kraken", {"USD": "97200"})
    b.hang = True
    service = make_service(a, b, clock=clock, fetch_timeout_seconds=0.05)
    rate = await asyncio.wait_for(service.get_rate("USD"), 5)
    assert rate.source == "coinbase"


# --- BTC and validation --------------------------------------------------------------------------


async def test_btc_is_the_identity_without_asking_anyone(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    rate = await make_service(provider, clock=clock).get_rate("btc")
    assert rate == Rate("BTC", Decimal(1), "identity", clock.now)
    assert provider.calls == []


async def test_unsupported_currency_is_a_validation_error(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"XYZ": "1"})
    with pytest.raises(ValidationFailed):
        await make_service(provider, clock=clock).get_rate("XYZ")
    assert provider.calls == []


def test_duplicate_provider_names_are_refused(clock: Clock) -> None:
    with pytest.raises(ValueError, match="twice"):
        make_service(FakeProvider("kraken"), FakeProvider("kraken"), clock=clock)


@pytest.mark.parametrize(("ttl", "stale"), [(0, 10), (-1, 10), (10, -1)])
def test_bad_durations_are_refused(ttl: float, stale: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        RateService([], ttl_seconds=ttl, stale_max_seconds=stale)


async def test_no_providers_means_no_fiat_rates(clock: Clock) -> None:
    service = make_service(clock=clock)
    with pytest.raises(RateUnavailable):
        await service.get_rate("USD")
    assert (await service.get_rate("BTC")).rate == 1


# --- cache ---------------------------------------------------------------------------------------


async def test_ttl_hit_and_miss(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    service = make_service(provider, clock=clock)
    first = await service.get_rate("USD")
    clock.advance(TTL - 1)
    assert await service.get_rate("USD") is first
    assert len(provider.calls) == 1
    clock.advance(1)  # exactly TTL old: expired
    provider.rates["USD"] = Decimal("98000")
    refreshed = await service.get_rate("USD")
    assert len(provider.calls) == 2
    assert (refreshed.rate, refreshed.fetched_at) == (Decimal("98000"), clock.now)


async def test_cache_is_per_currency(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000", "EUR": "90000"})
    service = make_service(provider, clock=clock)
    await service.get_rate("USD")
    await service.get_rate("EUR")
    await service.get_rate("USD")
    assert provider.calls == [("USD",), ("EUR",)]


# --- stale while error ---------------------------------------------------------------------------


async def test_all_down_serves_a_fresh_enough_stale_rate(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000"})
    b = FakeProvider("kraken", {"USD": "97200"})
    service = make_service(a, b, clock=clock)
    good = await service.get_rate("USD")
    clock.advance(STALE_MAX - 1)
    a.fail()
    b.fail()
    with capture_logs() as logs:
        assert await service.get_rate("USD") is good
    stale_logs = [entry for entry in logs if entry["event"] == "rate_stale_served"]
    assert stale_logs == [
        {
            "event": "rate_stale_served",
            "log_level": "warning",
            "currency": "USD",
            "age_seconds": STALE_MAX - 1,
            "source": "median(coinbase,kraken)",
        }
    ]
    assert len(a.calls) == 2


async def test_all_down_with_a_too_old_rate_is_unavailable(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    service = make_service(provider, clock=clock)
    await service.get_rate("USD")
    clock.advance(STALE_MAX + 1)
    provider.fail()
    with pytest.raises(RateUnavailable) as info:
        await service.get_rate("USD")
    assert info.value.status == 503
    assert info.value.code == "rate_unavailable"


async def test_all_down_and_never_fetched_is_unavailable(clock: Clock) -> None:
    provider = FakeProvider("coinbase")
    provider.fail()
    with pytest.raises(RateUnavailable):
        await make_service(provider, clock=clock).get_rate("USD")


async def test_failures_are_not_retried_immediately(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    provider.fail()
    service = make_service(provider, clock=clock, retry_after_seconds=5)
    for _ in range(3):
        with pytest.raises(RateUnavailable):
            await service.get_rate("USD")
    assert len(provider.calls) == 1
    clock.advance(5)
    provider.error = None
    assert (await service.get_rate("USD")).rate == Decimal("97000")
    assert len(provider.calls) == 2


async def test_stale_rate_is_served_during_retry_pacing(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    service = make_service(provider, clock=clock, retry_after_seconds=5)
    good = await service.get_rate("USD")
    clock.advance(TTL)
    provider.fail()
    assert await service.get_rate("USD") is good
    assert await service.get_rate("USD") is good
    assert len(provider.calls) == 2


# --- single flight -------------------------------------------------------------------------------


async def test_concurrent_callers_share_one_fetch(clock: Clock) -> None:
    providers = [FakeProvider(name, {"USD": price}) for name, price in [("a", "1"), ("b", "2"), ("c", "3")]]
    gate = asyncio.Event()
    for provider in providers:
        provider.gate = gate
    service = make_service(*providers, clock=clock)
    callers = [asyncio.create_task(service.get_rate("USD")) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    rates = await asyncio.gather(*callers)
    assert {rate.rate for rate in rates} == {Decimal("2")}
    assert [len(provider.calls) for provider in providers] == [1, 1, 1]


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    provider.gate = asyncio.Event()
    service = make_service(provider, clock=clock)
    impatient = asyncio.create_task(service.get_rate("USD"))
    patient = asyncio.create_task(service.get_rate("USD"))
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    provider.gate.set()
    assert (await patient).rate == Decimal("97000")
    assert impatient.cancelled()
    assert len(provider.calls) == 1


async def test_aclose_cancels_in_flight_fetches(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000"})
    provider.gate = asyncio.Event()
    service = make_service(provider, clock=clock)
    waiting = asyncio.create_task(service.get_rate("USD"))
    await asyncio.sleep(0)
    await service.aclose()
    with pytest.raises(RateUnavailable):
        await waiting


# --- snapshot ------------------------------------------------------------------------------------


async def test_snapshot_fetches_misses_together_and_skips_unavailable(clock: Clock) -> None:
    a = FakeProvider("coinbase", {"USD": "97000", "EUR": "90000"})
    b = FakeProvider("kraken", {"USD": "97200"})
    service = make_service(a, b, clock=clock)
    await service.get_rate("EUR")
    rates = await service.snapshot(["usd", "BTC", "EUR", "JPY", "USD"])
    assert [(r.currency, r.rate) for r in rates] == [
        ("USD", Decimal("97100")),
        ("BTC", Decimal(1)),
        ("EUR", Decimal("90000")),
    ]
    # EUR came from the cache; USD and JPY were asked for in one request per provider
    assert sorted(a.calls) == [("EUR",), ("USD", "JPY")]
    assert b.calls == [("EUR",), ("USD", "JPY")]


async def test_snapshot_joins_a_fetch_already_in_flight(clock: Clock) -> None:
    provider = FakeProvider("coinbase", {"USD": "97000", "EUR": "90000"})
    provider.gate = asyncio.Event()
    service = make_service(provider, clock=clock)
    single = asyncio.create_task(service.get_rate("USD"))
    await asyncio.sleep(0)
    snap = asyncio.create_task(service.snapshot(["USD", "EUR"]))
    await asyncio.sleep(0)
    provider.gate.set()
    assert (await single).rate == Decimal("97000")
    assert [r.currency for r in await snap] == ["USD", "EUR"]
    assert provider.calls == [("USD",), ("EUR",)]


async def test_snapshot_with_every_provider_down_is_empty(clock: Clock) -> None:
    provider = FakeProvider("coinbase")
    provider.fail()
    assert await make_service(provider, clock=clock).snapshot(["USD", "EUR"]) == []


async def test_snapshot_rejects_unsupported_codes(clock: Clock) -> None:
    with pytest.raises(ValidationFailed):
        await make_service(FakeProvider("fixed"), clock=clock).snapshot(["USD", "XYZ"])
