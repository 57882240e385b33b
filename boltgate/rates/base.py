"""What a rate provider is, the one error it may raise, and the HTTP/JSON edge the real ones share.

A provider answers "how many units of each fiat currency is 1 BTC worth". It never raises
anything but :class:`RateProviderError`: transport, HTTP status, JSON and shape errors are each
translated once, where they happen, so :class:`~boltgate.rates.service.RateService` can treat
every failure alike (try the other providers, then serve a stale rate).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any, Protocol

import httpx

DEFAULT_TIMEOUT_SECONDS = 5.0


class RateProviderError(Exception):
    """A provider could not give rates this time (down, rate-limited, or answered nonsense)."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class RateProvider(Protocol):
    """A source of BTC exchange rates."""

    name: str

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        """Fiat units per 1 BTC for those of ``currencies`` (upper-case ISO 4217) this source knows.

        A currency the source does not quote is left out of the result, not an error. Any failure
        raises :class:`RateProviderError`; returned rates are finite and positive.
        """
        ...


def positive_rate(value: object) -> Decimal:
    """A rate from a JSON value (string or exact number), or ValueError/TypeError if unusable.

    Floats are refused: the JSON is parsed with ``parse_float=Decimal`` so they never appear, and
    accepting one would reintroduce binary rounding. ``bool`` is refused although it is an ``int``.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"rate must be a decimal string or number, got {type(value).__name__}")
    rate = Decimal(value)  # a malformed string raises decimal.InvalidOperation
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate must be finite and positive, got {value!r}")
    return rate


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite JSON number {name}")


def loads_exact(text: str) -> Any:
    """Parse JSON keeping every number exact (Decimal) and refusing ``NaN``/``Infinity``."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant)


async def get_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    params: Mapping[str, str],
    timeout_seconds: float,
) -> Any:
    """GET ``url`` and parse its JSON body exactly; any failure becomes :class:`RateProviderError`.

    Only a 2xx answer is parsed: error bodies differ per provider and carry nothing we act on
    beyond "try the others".
    """
    try:
        response = await client.get(
            url, params=params, timeout=timeout_seconds, headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise RateProviderError(provider, f"request failed: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise RateProviderError(provider, f"HTTP {response.status_code} from {response.url.host}")
    try:
        return loads_exact(response.text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise RateProviderError(provider, f"invalid JSON: {exc}") from exc


# What a provider's parser may raise on an unexpected body; translated once, in ``fetch``.
SHAPE_ERRORS: tuple[type[Exception], ...] = (KeyError, IndexError, TypeError, ValueError, ArithmeticError)
