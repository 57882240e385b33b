"""Rate providers against ``httpx.MockTransport`` serving the documented public JSON shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from boltgate.rates import (
    CoinbaseRateProvider,
    CoinGeckoRateProvider,
    FixedRateProvider,
    KrakenRateProvider,
    RateProviderError,
    build_providers,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers with a canned response."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


def json_answer(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def text_answer(text: str, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, text=text, headers={"Content-Type": "application/json"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(json_answer({}))


@pytest.fixture
def client(recorder: Recorder) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(recorder))


COINBASE_BODY = {
    "data": {
        "currency": "BTC",
        "rates": {"USD": "97123.45", "EUR": "89012.3456789", "GBP": "76543.21", "ETH": "30.12"},
    }
}

KRAKEN_BODY = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "a": ["97124.10000", "1", "1.000"],
            "b": ["97123.90000", "2", "2.000"],
            "c": ["97100.00000", "0.00067643"],
            "v": ["4083.67001100", "4412.73601799"],
            "p": ["96706.77771", "96689.13205"],
            "t": [34619, 38907],
            "l": ["95868.30000", "95868.30000"],
            "h": ["97631.00000", "97631.00000"],
            "o": "96502.80000",
        },
        "XBTCHF": {"a": ["86000.5", "1", "1.000"], "b": ["85999.5", "1", "1.000"], "c": ["85000", "0.1"]},
    },
}

# Numbers, not strings, as CoinGecko sends them; the last one has more digits than a float keeps.
COINGECKO_TEXT = '{"bitcoin":{"usd":97123.45,"eur":89012,"jpy":15012345.123456789012345}}'


# --- Coinbase ------------------------------------------------------------------------------------


async def test_coinbase_parses_documented_shape(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = json_answer(COINBASE_BODY)
    rates = await CoinbaseRateProvider(client).fetch(["USD", "EUR"])
    assert rates == {"USD": Decimal("97123.45"), "EUR": Decimal("89012.3456789")}
    (request,) = recorder.requests
    assert request.url.host == "api.coinbase.com"
    assert request.url.path == "/v2/exchange-rates"
    assert request.url.params["currency"] == "BTC"


async def test_coinbase_leaves_out_currencies_it_does_not_quote(
    recorder: Recorder, client: httpx.AsyncClient
) -> None:
    recorder.respond = json_answer(COINBASE_BODY)
    assert await CoinbaseRateProvider(client).fetch(["USD", "KRW"]) == {"USD": Decimal("97123.45")}


async def test_coinbase_asks_nothing_for_nothing(recorder: Recorder, client: httpx.AsyncClient) -> None:
    assert await CoinbaseRateProvider(client).fetch([]) == {}
    assert recorder.requests == []


async def test_coinbase_rejects_rates_for_another_base(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = json_answer({"data": {"currency": "USD", "rates": {"USD": "1"}}})
    with pytest.raises(RateProviderError, match="coinbase"):
        await CoinbaseRateProvider(client).fetch(["USD"])


@pytest.mark.parametrize("value", ["0", "-1", "NaN", "Infinity", "abc", "", None, True, [1]])
async def test_coinbase_rejects_unusable_rates(
    recorder: Recorder, client: httpx.AsyncClient, value: object
) -> None:
    recorder.respond = json_answer({"data": {"currency": "BTC", "rates": {"USD": value}}})
    with pytest.raises(RateProviderError) as info:
        await CoinbaseRateProvider(client).fetch(["USD"])
    assert info.value.provider == "coinbase"
    assert info.value.__cause__ is not None


async def test_coinbase_error_body(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = json_answer({"errors": [{"id": "not_found", "message": "Invalid currency"}]}, 400)
    with pytest.raises(RateProviderError, match="HTTP 400"):
        await CoinbaseRateProvider(client).fetch(["USD"])


# --- Kraken --------------------------------------------------------------------------------------


async def test_kraken_takes_the_bid_ask_midpoint(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = json_answer(KRAKEN_BODY)
    rates = await KrakenRateProvider(client).fetch(["USD", "CHF"])
    # midpoint of a[0]/b[0], not the last trade c[0]; both X/Z-prefixed and plain keys are found
    assert rates == {"USD": Decimal("97124.00000"), "CHF": Decimal("86000.0")}
    (request,) = recorder.requests
    assert request.url.host == "api.kraken.com"
    assert request.url.path == "/0/public/Ticker"
    assert request.url.params["pair"] == "XBTCHF,XBTUSD"


async def test_kraken_only_asks_for_pairs_it_lists(recorder: Recorder, client: httpx.AsyncClient) -> None:
    # one unknown pair would fail the whole Kraken request, so NZD is never sent
    recorder.respond = json_answer(KRAKEN_BODY)
    assert await KrakenRateProvider(client).fetch(["USD", "NZD"]) == {"USD": Decimal("97124.00000")}
    assert recorder.requests[0].url.params["pair"] == "XBTUSD"
    assert await KrakenRateProvider(client).fetch(["NZD", "KRW"]) == {}
    assert len(recorder.requests) == 1


async def test_kraken_leaves_out_pairs_missing_from_the_result(
    recorder: Recorder, client: httpx.AsyncClient
) -> None:
    recorder.respond = json_answer(KRAKEN_BODY)
    assert await KrakenRateProvider(client).fetch(["USD", "EUR"]) == {"USD": Decimal("97124.00000")}


async def test_kraken_error_array_fails_even_with_http_200(
    recorder: Recorder, client: httpx.AsyncClient
) -> None:
    recorder.respond = json_answer({"error": ["EQuery:Unknown asset pair"]})
    with pytest.raises(RateProviderError, match="EQuery:Unknown asset pair") as info:
        await KrakenRateProvider(client).fetch(["USD"])
    assert info.value.provider == "kraken"


async def test_kraken_warnings_are_not_errors(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = json_answer({**KRAKEN_BODY, "error": ["WGeneral:Something to note"]})
    assert await KrakenRateProvider(client).fetch(["USD"]) == {"USD": Decimal("97124.00000")}


@pytest.mark.parametrize(
    "body",
    [
        {"error": [], "result": {"XXBTZUSD": {"a": [], "b": ["1"]}}},
        {"error": [], "result": {"XXBTZUSD": {"a": ["0"], "b": ["0"]}}},
        {"error": [], "result": []},
        {"result": {}},
    ],
)
async def test_kraken_bad_shapes(recorder: Recorder, client: httpx.AsyncClient, body: Any) -> None:
    recorder.respond = json_answer(body)
    with pytest.raises(RateProviderError, match="unexpected response"):
        await KrakenRateProvider(client).fetch(["USD"])


# --- CoinGecko -----------------------------------------------------------------------------------


async def test_coingecko_parses_numbers_exactly(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = text_answer(COINGECKO_TEXT)
    rates = await CoinGeckoRateProvider(client).fetch(["USD", "JPY", "EUR"])
    assert rates == {
        "USD": Decimal("97123.45"),
        "EUR": Decimal("89012"),
        "JPY": Decimal("15012345.123456789012345"),  # a float would have lost the tail
    }
    (request,) = recorder.requests
    assert request.url.host == "api.coingecko.com"
    assert request.url.path == "/api/v3/simple/price"
    assert request.url.params["ids"] == "bitcoin"
    assert request.url.params["vs_currencies"] == "eur,jpy,usd"


async def test_coingecko_missing_currency_is_left_out(recorder: Recorder, client: httpx.AsyncClient) -> None:
    recorder.respond = text_answer(COINGECKO_TEXT)
    assert await CoinGeckoRateProvider(client).fetch(["USD", "CHF"]) == {"USD": Decimal("97123.45")}


@pytest.mark.parametrize(
    "text",
    [
        '{"bitcoin":{"usd":NaN}}',
        '{"bitcoin":{"usd":Infinity}}',
        '{"bitcoin":{"usd":0}}',
        "{}",
        '{"bitcoin":[]}',
    ],
)
async def test_coingecko_bad_values(recorder: Recorder, client: httpx.AsyncClient, text: str) -> None:
    recorder.respond = text_answer(text)
    with pytest.raises(RateProviderError, match="coingecko"):
        await CoinGeckoRateProvider(client).fetch(["USD"])


async def test_coingecko_rate_limited(recorder: Recorder, client: httpx.AsyncClient) -> None:
    body = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}}
    recorder.respond = json_answer(body, 429)
    with pytest.raises(RateProviderError, match="HTTP 429"):
        await CoinGeckoRateProvider(client).fetch(["USD"])


# --- failures every HTTP provider shares ----------------------------------------------------------

HTTP_PROVIDERS = [CoinbaseRateProvider, KrakenRateProvider, CoinGeckoRateProvider]


@pytest.mark.parametrize("provider_class", HTTP_PROVIDERS)
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_http_errors(
    recorder: Recorder, client: httpx.AsyncClient, provider_class: Any, status: int
) -> None:
    recorder.respond = text_answer("<html>oops</html>", status)
    with pytest.raises(RateProviderError, match=f"HTTP {status}"):
        await provider_class(client).fetch(["USD"])


@pytest.mark.parametrize("provider_class", HTTP_PROVIDERS)
@pytest.mark.parametrize("text", ["<html>not json</html>", '{"data": ', ""])
async def test_malformed_json(
    recorder: Recorder, client: httpx.AsyncClient, provider_class: Any, text: str
) -> None:
    recorder.respond = text_answer(text)
    with pytest.raises(RateProviderError, match="invalid JSON") as info:
        await provider_class(client).fetch(["USD"])
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("provider_class", HTTP_PROVIDERS)
@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_transport_errors(
    recorder: Recorder, client: httpx.AsyncClient, provider_class: Any, error: httpx.HTTPError
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    recorder.respond = fail
    with pytest.raises(RateProviderError, match="request failed") as info:
        await provider_class(client).fetch(["USD"])
    assert info.value.__cause__ is error


@pytest.mark.parametrize("provider_class", HTTP_PROVIDERS)
async def test_timeout_is_passed_to_httpx(
    recorder: Recorder, client: httpx.AsyncClient, provider_class: Any
) -> None:
    recorder.respond = json_answer({})
    with pytest.raises(RateProviderError):
        await provider_class(client, timeout=1.5).fetch(["USD"])
    assert recorder.requests[0].extensions["timeout"] == {
        "connect": 1.5,
        "read": 1.5,
        "write": 1.5,
        "pool": 1.5,
    }


# --- fixed and the factory -----------------------------------------------------------------------


async def test_fixed_provider() -> None:
    provider = FixedRateProvider({"usd": Decimal("100000"), "EUR": Decimal("92000")})
    assert provider.name == "fixed"
    assert await provider.fetch(["USD", "GBP"]) == {"USD": Decimal("100000")}


@pytest.mark.parametrize("rate", ["0", "-1", "NaN"])
def test_fixed_provider_rejects_bad_configured_rates(rate: str) -> None:
    with pytest.raises(ValueError, match="finite and positive"):
        FixedRateProvider({"USD": Decimal(rate)})


def test_build_providers(client: httpx.AsyncClient) -> None:
    providers = build_providers(
        ["fixed", "Coinbase", " kraken ", "coingecko"], client, {"USD": Decimal("100000")}
    )
    assert [p.name for p in providers] == ["fixed", "coinbase", "kraken", "coingecko"]
    assert isinstance(providers[1], CoinbaseRateProvider)
    assert build_providers([], client, {}) == []


@pytest.mark.parametrize(
    ("names", "rates", "message"),
    [
        (["bitstamp"], {}, "unknown rate provider"),
        (["kraken", "kraken"], {}, "twice"),
        (["fixed"], {}, "fixed_rates"),
    ],
)
def test_build_providers_rejects(
    client: httpx.AsyncClient, names: list[str], rates: dict[str, Decimal], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_providers(names, client, rates)
