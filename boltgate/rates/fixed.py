"""A provider that answers from a fixed table: for dev mode, demos and tests, never for money."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

from boltgate.rates.base import positive_rate


class FixedRateProvider:
    """Rates from a mapping given at start-up (``BOLTGATE_FIXED_RATES``); never fails."""

    def __init__(self, rates: Mapping[str, Decimal], *, name: str = "fixed") -> None:
        # Checked here, once: a bad configured rate should stop start-up, not a payment.
        self._rates = {code.strip().upper(): positive_rate(rate) for code, rate in rates.items()}
        self.name = name

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        return {code: self._rates[code] for code in currencies if code in self._rates}
