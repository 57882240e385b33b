"""Money helpers: minor units, exact quantizing, and sat conversions that never short the merchant."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boltgate.errors import ValidationFailed
from boltgate.kit.money import (
    SUPPORTED_CURRENCIES,
    btc_to_sats,
    fiat_to_sats,
    format_amount,
    minor_units,
    normalize_currency,
    quantize,
    sats_to_msat,
)


@pytest.mark.parametrize(
    ("currency", "units"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BTC", 8), ("usd", 2)]
)
def test_minor_units(currency: str, units: int) -> None:
    assert minor_units(currency) == units


def test_supported_currencies_include_btc_and_major_fiat() -> None:
    assert {"BTC", "USD", "EUR", "GBP", "CAD", "CHF", "JPY", "AUD"} <= set(SUPPORTED_CURRENCIES)
    assert "SAT" not in SUPPORTED_CURRENCIES


@pytest.mark.parametrize("code", ["XYZ", "", "SATS", "US D"])
def test_unsupported_currency_is_a_validation_error(code: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        minor_units(code)
    assert info.value.status == 400
    assert info.value.errors is not None
    assert "currency" in info.value.errors


def test_normalize_currency_upper_cases() -> None:
    assert normalize_currency(" eur ") == "EUR"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("25", "USD", "25.00"),
        ("25.5", "USD", "25.50"),
        ("25.000", "USD", "25.00"),  # trailing zeros are not extra precision
        ("1500", "JPY", "1500"),
        ("1500.00", "JPY", "1500"),
        ("1E+2", "USD", "100.00"),
        ("0.0001", "BTC", "0.00010000"),
        ("-0", "USD", "0.00"),
        ("12345678901234567.12", "USD", "12345678901234567.12"),  # > 28 digits of context: exact
    ],
)
def test_quantize_pads_without_rounding(amount: str, currency: str, expected: str) -> None:
    result = quantize(Decimal(amount), currency)
    assert str(result) == expected
    assert result == Decimal(amount)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("25.001", "USD"),
        ("1500.5", "JPY"),
        ("0.000000001", "BTC"),
        ("0.1234567890123456789012345678901", "EUR"),
    ],
)
def test_quantize_rejects_more_decimals_than_the_currency_has(amount: str, currency: str) -> None:
    with pytest.raises(ValueError, match="decimal places"):
        quantize(Decimal(amount), currency)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN", "1E+1000000"])
def test_quantize_rejects_non_finite_and_absurd_amounts(amount: str) -> None:
    with pytest.raises(ValueError, match=r"finite|too large"):
        quantize(Decimal(amount), "USD")


def test_fiat_to_sats_rounds_up() -> None:
    # 25.00 * 1e8 / 97123.45 = 25740.436...: the merchant gets 25741 sats, never 25740
    assert fiat_to_sats(Decimal("25.00"), Decimal("97123.45")) == 25741


def test_fiat_to_sats_exact_division_is_not_bumped() -> None:
    assert fiat_to_sats(Decimal("1.00"), Decimal("100000")) == 1000
    assert fiat_to_sats(Decimal("0"), Decimal("100000")) == 0


def test_fiat_to_sats_jpy() -> None:
    assert fiat_to_sats(Decimal("1500"), Decimal("15000000")) == 10_000
    assert fiat_to_sats(Decimal("1"), Decimal("15000000")) == 7  # 6.67 sats, rounded up


def test_fiat_to_sats_tiny_amount_is_at_least_one_sat() -> None:
    assert fiat_to_sats(Decimal("0.01"), Decimal("10000000")) == 1


@pytest.mark.parametrize(
    ("amount", "rate", "message"),
    [
        ("-1", "100000", "negative"),
        ("1", "0", "rate must be"),
        ("1", "-5", "rate must be"),
        ("1", "NaN", "rate must be"),
        ("1", "Infinity", "rate must be"),
        ("NaN", "100000", "finite"),
    ],
)
def test_fiat_to_sats_rejects_bad_inputs(amount: str, rate: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fiat_to_sats(Decimal(amount), Decimal(rate))


@pytest.mark.parametrize(
    ("amount", "sats"),
    [("1", 100_000_000), ("0.0001", 10_000), ("0.00000001", 1), ("21000000", 2_100_000_000_000_000)],
)
def test_btc_to_sats_is_exact(amount: str, sats: int) -> None:
    assert btc_to_sats(Decimal(amount)) == sats


@pytest.mark.parametrize(
    ("amount", "message"), [("0.000000001", "decimal places"), ("-0.1", "negative"), ("NaN", "finite")]
)
def test_btc_to_sats_rejects(amount: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        btc_to_sats(Decimal(amount))


def test_sats_to_msat() -> None:
    assert sats_to_msat(25_741) == 25_741_000
    with pytest.raises(ValueError, match="negative"):
        sats_to_msat(-1)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("25", "USD", "25.00"),
        ("0.0001", "BTC", "0.00010000"),
        ("1500", "JPY", "1500"),
        ("1E+3", "EUR", "1000.00"),
    ],
)
def test_format_amount(amount: str, currency: str, text: str) -> None:
    assert format_amount(Decimal(amount), currency) == text


def test_format_amount_rejects_like_quantize() -> None:
    with pytest.raises(ValueError, match="decimal places"):
        format_amount(Decimal("0.001"), "USD")


cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000000"), places=2)
rates = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000000000"), places=8)


@given(amount=cents, rate=rates)
def test_fiat_to_sats_is_the_smallest_sufficient_whole_sat(amount: Decimal, rate: Decimal) -> None:
    sats = fiat_to_sats(amount, rate)
    # checked in exact fractions: Decimal arithmetic here would itself round
    worth = Fraction(sats) * Fraction(rate) / 10**8
    assert worth >= Fraction(amount)
    assert (Fraction(sats) - 1) * Fraction(rate) / 10**8 < Fraction(amount)


@given(amount=st.decimals(min_value=0, max_value=Decimal("1E17"), places=0), rate=rates)
def test_fiat_to_sats_property_for_zero_decimal_currencies(amount: Decimal, rate: Decimal) -> None:
    sats = fiat_to_sats(quantize(amount, "JPY"), rate)
    assert Fraction(sats) * Fraction(rate) / 10**8 >= Fraction(amount)
    assert (Fraction(sats) - 1) * Fraction(rate) / 10**8 < Fraction(amount)


@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**15), max_value=10**15)
)
def test_format_amount_round_trips(amount: Decimal) -> None:
    text = format_amount(amount, "USD")
    assert Decimal(text) == amount
    assert "E" not in text
    assert len(text.partition(".")[2]) == 2
