"""Units of the checkout page: language choice, catalogues, money formatting, QR contents."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import segno

from boltgate.checkout import i18n, qr
from boltgate.checkout.pages import page_state, remaining_text, with_params
from boltgate.checkout.security import check_origin, page_headers
from boltgate.kit.clock import utcnow

INVOICE = "lnbcrt1u1p4sgnxrpp5tc89h7dg47j6gvp5l6rwt5f8twd68uc2rtzd4ukwg99rva59v2jsdqq"


def test_every_catalogue_has_the_same_keys_and_placeholders():
    catalogues = i18n.catalogues()
    assert {"en", "de", "es", "fr"} <= set(catalogues)
    english = catalogues["en"]
    for lang, catalogue in catalogues.items():
        assert set(catalogue) == set(english), lang
        for key, text in catalogue.items():
            assert text.strip(), (lang, key)
            assert ("{merchant}" in text) == ("{merchant}" in english[key]), (lang, key)


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "en"),
        ("de", None, "de"),
        ("ES", "de", "es"),
        ("fr-CA", None, "fr"),
        ("xx", "de-CH, en;q=0.5", "de"),
        (None, "ja, fr;q=0.3, es;q=0.8", "es"),
        (None, "de;q=0, fr", "fr"),
        (None, "de;q=abc, es;q=0.1", "es"),
        (None, "*", "en"),
        (None, "de," * 2000, "en"),  # an absurd header is not parsed
    ],
)
def test_language_negotiation(query, header, expected):
    assert i18n.negotiate(query, header) == expected


def test_money_is_formatted_for_the_language():
    assert i18n.Translator("en").money("1234.50", "USD") == "$1,234.50"
    assert i18n.Translator("de").money("1234.50", "EUR") == "1.234,50\xa0€"
    assert i18n.Translator("fr").money("1234.50", "EUR") == "1\u202f234,50\xa0€"
    assert i18n.Translator("en").money("0.00012345", "BTC") == "0.00012345 BTC"  # every digit kept
    assert i18n.Translator("de").money("1.5", "BTC") == "1,5 BTC"
    assert i18n.Translator("es").number(13587) == "13.587"


def test_translator_fills_placeholders():
    assert i18n.Translator("de")("cancel", merchant="Café") == "Abbrechen und zu Café zurückkehren"


def _decode(text: str, tmp_path: Path) -> str:
    png = tmp_path / "qr.png"
    segno.make(text, error="m", micro=False).save(str(png), scale=4)
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg (Debian zbar-tools) is needed: `make test` installs it"
    return subprocess.run(
        [zbarimg, "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_lightning_qr_is_upper_case_and_alphanumeric(tmp_path):
    text = qr.payment_uri(INVOICE, 100, None)
    assert text == "LIGHTNING:" + INVOICE.upper()
    assert segno.make(text, error="m", micro=False).mode == "alphanumeric"  # the compact QR mode
    assert _decode(text, tmp_path) == text


def test_unified_bip21_uri_when_an_onchain_address_exists(tmp_path):
    bech32 = qr.payment_uri(INVOICE, 12345, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
    assert bech32 == (
        "BITCOIN:BCRT1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KYGT080?amount=0.00012345&lightning=" + INVOICE.upper()
    )
    base58 = qr.payment_uri(INVOICE, 100_000_000, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy")
    assert base58.startswith("BITCOIN:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy?amount=1&lightning=")  # case kept
    assert _decode(bech32, tmp_path) == bech32


def test_svg_has_a_title_and_no_inline_style():
    svg = qr.svg("LIGHTNING:" + INVOICE.upper(), "QR code")
    assert svg.startswith("<svg") and "<title>QR code</title>" in svg
    assert "style=" not in svg and "<script" not in svg  # nothing the page's CSP would block


def test_success_url_keeps_its_query_and_gains_the_ids():
    assert with_params("https://s.example/ok?a=1&invoiceId=old", invoiceId="inv_1", orderId="o 1") == (
        "https://s.example/ok?a=1&invoiceId=inv_1&orderId=o+1"
    )


def test_page_state_and_countdown():
    now = utcnow()
    assert page_state("unpaid", now + timedelta(seconds=5), now) == "open"
    assert page_state("unpaid", now, now) == "expired"  # the sweeper has not run yet
    assert page_state("expired", now + timedelta(seconds=5), now) == "expired"
    assert page_state("paid", now - timedelta(hours=1), now) == "paid"
    assert page_state("refunded", now, now) == "paid"
    assert remaining_text(now + timedelta(seconds=899.9), now) == "14:59"
    assert remaining_text(now + timedelta(hours=2, seconds=5), now) == "2:00:05"
    assert remaining_text(now - timedelta(seconds=5), now) == "0:00"


@pytest.mark.parametrize(
    "origin",
    ["*", "https://", "ftp://shop.example", "https://shop.example/x", "https://a b", "https://x;y", "'self'"],
)
def test_bad_frame_origins(origin):
    with pytest.raises(ValueError, match="not an origin"):
        check_origin(origin)


def test_headers_without_and_with_frame_ancestors():
    closed = page_headers("n0nce", [])
    assert (
        closed["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in closed["Content-Security-Policy"]
    )
    open_ = page_headers("n0nce", ["https://shop.example"])
    assert "X-Frame-Options" not in open_
    assert "frame-ancestors https://shop.example" in open_["Content-Security-Policy"]
    assert "'nonce-n0nce'" in open_["Content-Security-Policy"]
