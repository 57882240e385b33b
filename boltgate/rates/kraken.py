"""Kraken's public ticker endpoint (no API key).

``GET https://api.kraken.com/0/public/Ticker?pair=XBTUSD,XBTEUR`` answers
``{"error": [], "result": {"XXBTZUSD": {"a": [ask, ...], "b": [bid, ...], "c": [last, vol], ...}}}``.
Two quirks shape this module:

* The result is keyed by Kraken's *internal* pair name, not the one asked for: older markets carry
  X/Z class prefixes (``XBTUSD`` comes back as ``XXBTZUSD``), newer ones do not (``XBTCHF``).
  Both spellings are accepted for every pair.
* One unknown pair fails the whole request (``{"error": ["EQuery:Unknown asset pair"]}``), so only
  the pairs in :data:`KRAKEN_PAIRS` are ever asked for. Errors come with HTTP 200; the ``error``
  array is what tells. Entries starting with ``W`` are warnings and are ignored.

**Price used: the midpoint of the best ask ``a[0]`` and best bid ``b[0]``**, not the last trade
``c[0]``. The order book is always current, while the last trade on thinner fiat pairs (CHF, AUD,
JPY) can be minutes old; the midpoint favours neither buyer nor seller.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import httpx

from boltgate.rates.base import (
    DEFAULT_TIMEOUT_SECONDS,
    SHAPE_ERRORS,
    RateProviderError,
    get_json,
    positive_rate,
)

KRAKEN_URL = "https://api.kraken.com/0/public/Ticker"

# Fiat currencies Kraken lists a BTC market for, with the pair name we ask for.
KRAKEN_PAIRS: Final[Mapping[str, str]] = MappingProxyType(
    {code: f"XBT{code}" for code in ("USD", "EUR", "GBP", "CAD", "CHF", "JPY", "AUD")}
)


def _result_keys(currency: str) -> tuple[str, str]:
    """Both spellings Kraken may use for the BTC/``currency`` pair in a result."""
    return f"XXBTZ{currency}", f"XBT{currency}"


def kraken_errors(payload: Any) -> list[str]:
    """The error entries of a Kraken body (warnings, which start with ``W``, left out)."""
    messages = payload["error"]
    if not isinstance(messages, list):
        raise TypeError(f"'error' is a {type(messages).__name__}, not an array")
    return [str(message) for message in messages if not str(message).startswith("W")]


def _midpoint(ticker: Any) -> Decimal:
    ask = positive_rate(ticker["a"][0])
    bid = positive_rate(ticker["b"][0])
    return (ask + bid) / 2


def parse_kraken(payload: Any, currencies: Collection[str]) -> dict[str, Decimal]:
    """The wanted mid prices from an error-free Kraken body; KeyError/TypeError/ValueError on a bad shape."""
    result = payload["result"]
    if not isinstance(result, dict):
        raise TypeError(f"'result' is a {type(result).__name__}, not an object")
    rates: dict[str, Decimal] = {}
    for code in currencies:
        key = next((k for k in _result_keys(code) if k in result), None)
        if key is not None:
            rates[code] = _midpoint(result[key])
    return rates


class KrakenRateProvider:
    name = "kraken"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        url: str = KRAKEN_URL,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._url = url

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        wanted = sorted(code for code in set(currencies) if code in KRAKEN_PAIRS)
        if not wanted:
            return {}
        params = {"pair": ",".join(KRAKEN_PAIRS[code] for code in wanted)}
        payload = await get_json(
            self._client, self.name, self._url, params=params, timeout_seconds=self._timeout
        )
        try:
            errors = kraken_errors(payload)
            rates = {} if errors else parse_kraken(payload, wanted)
        except SHAPE_ERRORS as exc:
            raise RateProviderError(self.name, f"unexpected response: {exc!r}") from exc
        if errors:
            raise RateProviderError(self.name, "; ".join(errors))
        return rates
