"""CoinGecko's public simple-price endpoint (keyless tier, IP rate-limited).

``GET https://api.coingecko.com/api/v3/simple/price?ids=bitcoin&vs_currencies=usd,eur`` answers
``{"bitcoin": {"usd": 97123.45, "eur": 89000.1}}``: JSON *numbers* keyed by lower-case codes. The
body is parsed with ``parse_float=Decimal`` so a price is never routed through a binary float.
A currency CoinGecko does not quote is simply absent from the answer.
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

COINGECKO_URL = "https://api.coingecko.com/api/v3/simple/price"


def parse_coingecko(payload: Any, currencies: Collection[str]) -> dict[str, Decimal]:
    """The wanted rates from a CoinGecko body; raises KeyError/TypeError/ValueError on a bad shape."""
    prices = payload["bitcoin"]
    if not isinstance(prices, dict):
        raise TypeError(f"'bitcoin' is a {type(prices).__name__}, not an object")
    return {code: positive_rate(prices[code.lower()]) for code in currencies if code.lower() in prices}


class CoinGeckoRateProvider:
    name = "coingecko"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        url: str = COINGECKO_URL,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._url = url

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        if not currencies:
            return {}
        params = {"ids": "bitcoin", "vs_currencies": ",".join(sorted(code.lower() for code in currencies))}
        payload = await get_json(
            self._client, self.name, self._url, params=params, timeout_seconds=self._timeout
        )
        try:
            return parse_coingecko(payload, currencies)
        except SHAPE_ERRORS as exc:
            raise RateProviderError(self.name, f"unexpected response: {exc!r}") from exc
