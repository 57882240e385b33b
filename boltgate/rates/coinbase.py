"""Coinbase's public exchange-rate endpoint (no API key).

``GET https://api.coinbase.com/v2/exchange-rates?currency=BTC`` answers
``{"data": {"currency": "BTC", "rates": {"USD": "97123.45", "EUR": "...", ...}}}``: the price of
1 BTC in every currency Coinbase knows (several hundred), as decimal strings. One request serves
every currency, so we ask once and keep only the ones wanted.
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Any

import httpx

from boltgate.rates.base import (
    DEFAULT_TIMEOUT_SECONDS,
    SHAPE_ERRORS,
    RateProviderError,
    get_json,
    positive_rate,
)

COINBASE_URL = "https://api.coinbase.com/v2/exchange-rates"


def parse_coinbase(payload: Any, currencies: Collection[str]) -> dict[str, Decimal]:
    """The wanted rates from a Coinbase body; raises KeyError/TypeError/ValueError on a bad shape."""
    data = payload["data"]
    if data["currency"] != "BTC":
        raise ValueError(f"rates are for base {data['currency']!r}, not BTC")
    rates = data["rates"]
    if not isinstance(rates, dict):
        raise TypeError(f"'rates' is a {type(rates).__name__}, not an object")
    return {code: positive_rate(rates[code]) for code in currencies if code in rates}


class CoinbaseRateProvider:
    name = "coinbase"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        url: str = COINBASE_URL,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._url = url

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        if not currencies:
            return {}
        payload = await get_json(
            self._client, self.name, self._url, params={"currency": "BTC"}, timeout_seconds=self._timeout
        )
        try:
            return parse_coinbase(payload, currencies)
        except SHAPE_ERRORS as exc:
            raise RateProviderError(self.name, f"unexpected response: {exc!r}") from exc
