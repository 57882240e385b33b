"""Money helpers: currency codes, minor units and the BTC/sat conversions, in exact arithmetic.

Every amount is a :class:`~decimal.Decimal` and every conversion is done on exact integer
ratios, never on floats and never under the 28-digit default decimal context, so no amount is
silently rounded anywhere. The rounding rules, each chosen so the merchant is never short-paid:

* **Amounts are never rounded.** :func:`quantize` only pads an amount to its currency's minor
  units (``25`` USD becomes ``25.00``); an amount finer than the currency allows (``25.001`` USD,
  ``100.5`` JPY, a BTC amount with 9 decimals) raises :class:`ValueError`, which callers turn into
  a 400. Guessing whether the payer meant to round up or down is not ours to do.
* **Fiat to sats rounds up** to the next whole sat (:func:`fiat_to_sats`): the invoice is for the
  smallest whole number of sats worth *at least* the fiat amount at the quoted rate, so the
  merchant never receives less than asked, and over-pays by less than one sat.
* **BTC to sats is exact** (:func:`btc_to_sats`): 1 sat is 0.00000001 BTC, the BTC minor unit,
  so a valid BTC amount is always a whole number of sats.
* **Sats to msat is exact** (:func:`sats_to_msat`): invoices carry millisatoshis.

Currency codes are ISO 4217 (plus ``BTC``) and are matched case-insensitively; an unsupported code
raises :class:`~boltgate.errors.ValidationFailed` because it always comes from a client request.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Final

from boltgate.errors import ValidationFailed

BTC: Final = "BTC"
SATS_PER_BTC: Final = 100_000_000
MSAT_PER_SAT: Final = 1_000

# Minor units (decimal places) per ISO 4217, for the fiat currencies the rate providers quote
# against BTC. JPY and KRW have none; BTC's minor unit is the sat.
SUPPORTED_CURRENCIES: Final = MappingProxyType(
    {
        BTC: 8,
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "CAD": 2,
        "CHF": 2,
        "JPY": 0,
        "AUD": 2,
        "NZD": 2,
        "SEK": 2,
        "NOK": 2,
        "DKK": 2,
        "PLN": 2,
        "CZK": 2,
        "HUF": 2,
        "BRL": 2,
        "MXN": 2,
        "ZAR": 2,
        "INR": 2,
        "SGD": 2,
        "HKD": 2,
        "KRW": 0,
    }
)

FIAT_CURRENCIES: Final = frozenset(SUPPORTED_CURRENCIES) - {BTC}


def normalize_currency(currency: str) -> str:
    """The canonical (upper-case) code of a supported currency; :class:`ValidationFailed` otherwise."""
    code = currency.strip().upper()
    if code not in SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            f"unsupported currency {currency!r}",
            errors={"currency": [f"must be one of {', '.join(sorted(SUPPORTED_CURRENCIES))}"]},
        )
    return code


def minor_units(currency: str) -> int:
    """How many decimal places amounts in ``currency`` may have (2 for USD, 0 for JPY, 8 for BTC)."""
    return SUPPORTED_CURRENCIES[normalize_currency(currency)]


# No real payment has more than 18 integer digits in any currency; the bound keeps an absurd
# client amount such as ``1E+1000000`` from being expanded digit by digit.
MAX_INTEGER_DIGITS: Final = 18


def _require_finite(amount: Decimal) -> None:
    if not amount.is_finite():
        raise ValueError(f"amount must be a finite number, got {amount}")
    if amount and amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"amount {amount} is too large")


def _decimal_places(amount: Decimal) -> int:
    """Significant decimal places of a finite amount: ``1.50`` has 1, ``100`` has 0.

    Counted on the digit tuple rather than with ``normalize()``, which rounds to the context
    precision and would hide excess digits of a very long amount.
    """
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by the caller
    places = -exponent
    index = len(digits) - 1
    while places > 0 and index >= 0 and digits[index] == 0:  # linear: amounts come from clients
        index -= 1
        places -= 1
    return max(places, 0)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """``amount`` with exactly the currency's minor units (``25`` USD -> ``25.00``), never rounded.

    Raises :class:`ValueError` when ``amount`` is not finite or has more significant decimals than
    the currency allows; callers turn that into a 400 rather than rounding the payer's amount.
    """
    units = minor_units(currency)
    _require_finite(amount)
    if _decimal_places(amount) > units:
        raise ValueError(f"{amount} has more than {units} decimal places allowed for {currency.upper()}")
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    # Rebuild from the digit tuple: exact for any length, unlike Decimal.quantize under a context.
    shift = exponent + units
    new_digits = digits + (0,) * shift if shift >= 0 else digits[:shift]
    if not any(new_digits):
        return Decimal((0, (0,), -units))  # no "-0.00"
    return Decimal((sign, new_digits, -units))


def fiat_to_sats(amount: Decimal, rate: Decimal) -> int:
    """Sats for a fiat ``amount`` at ``rate`` fiat units per BTC, **rounded up** to a whole sat.

    The result ``s`` is the smallest integer with ``s * rate / 1e8 >= amount``. Computed on exact
    integer ratios, so no intermediate rounding can make it one sat short.
    """
    _require_finite(amount)
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate must be a positive finite number, got {rate}")
    amount_num, amount_den = amount.as_integer_ratio()
    rate_num, rate_den = rate.as_integer_ratio()
    # sats = amount * 1e8 / rate = (an/ad) * 1e8 * (rd/rn); ceil(p/q) == -(-p // q)
    numerator = amount_num * SATS_PER_BTC * rate_den
    denominator = amount_den * rate_num
    return -(-numerator // denominator)


def btc_to_sats(amount: Decimal) -> int:
    """Exact sats for a BTC ``amount``; more than 8 decimals or a negative amount is a ValueError."""
    exact = quantize(amount, BTC)
    if exact < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    numerator, denominator = exact.as_integer_ratio()
    sats, remainder = divmod(numerator * SATS_PER_BTC, denominator)
    assert remainder == 0  # quantize guaranteed at most 8 decimals
    return sats


def sats_to_msat(sats: int) -> int:
    """Millisatoshis for ``sats`` (what BOLT 11 invoices and Lightning backends count in)."""
    if sats < 0:
        raise ValueError(f"sats must not be negative, got {sats}")
    return sats * MSAT_PER_SAT


def format_amount(amount: Decimal, currency: str) -> str:
    """The canonical decimal string of an amount: ``"25.00"`` USD, ``"1500"`` JPY, ``"0.00010000"`` BTC.

    Raises :class:`ValueError` like :func:`quantize`; the output never uses exponent notation.
    """
    return format(quantize(amount, currency), "f")


__all__ = [
    "BTC",
    "FIAT_CURRENCIES",
    "MSAT_PER_SAT",
    "SATS_PER_BTC",
    "SUPPORTED_CURRENCIES",
    "btc_to_sats",
    "fiat_to_sats",
    "format_amount",
    "minor_units",
    "normalize_currency",
    "quantize",
    "sats_to_msat",
]
