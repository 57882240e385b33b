"""Translations of the public pages and the choice of language.

Catalogues are JSON files in ``locales/`` (one per language, the same keys in each: a test checks
it); adding a language is adding a file. The language is ``?lang=`` when it names one we have,
else the best match of ``Accept-Language`` (by q-value, a region falling back to its language),
else English. Numbers and money are formatted for the language with Babel (CLDR data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel.numbers import format_currency, format_decimal

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT = "en"
_MAX_HEADER = 1024  # longer Accept-Language headers are not worth parsing


@cache
def catalogues() -> dict[str, dict[str, str]]:
    found = {}
    for path in sorted(LOCALES_DIR.glob("*.json")):
        found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return found


def languages() -> list[tuple[str, str]]:
    """(code, own name) of every language, for the language switcher."""
    return [(code, catalogue["language_name"]) for code, catalogue in catalogues().items()]


def _quality(part: str) -> tuple[str, float]:
    tag, _, params = part.strip().partition(";")
    q = 1.0
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return tag.strip().lower(), q


def negotiate(query_lang: str | None, accept_language: str | None) -> str:
    """The language to answer in."""
    available = catalogues()
    if query_lang:
        code = query_lang.strip().lower().split("-")[0]
        if code in available:
            return code
    if accept_language and len(accept_language) <= _MAX_HEADER:
        ranked = sorted(
            (_quality(part) for part in accept_language.split(",") if part.strip()),
            key=lambda item: -item[1],  # stable: equal q keeps the header's order
        )
        for tag, q in ranked:
            if q <= 0:
                continue
            code = tag.split("-")[0]
            if code in available:
                return code
    return DEFAULT


@dataclass(frozen=True)
class Translator:
    lang: str

    def __call__(self, key: str, **values: str) -> str:
        text = catalogues()[self.lang].get(key) or catalogues()[DEFAULT][key]
        return text.format(**values) if values else text

    def money(self, amount: str, currency: str) -> str:
        """``25.00`` USD as the language writes it (``$25.00``, ``25,00 $``); BTC keeps every digit."""
        value = Decimal(amount)
        if currency == "BTC":
            return f"{format_decimal(value, format='#,##0.########', locale=self.lang)} BTC"
        return format_currency(value, currency, locale=self.lang)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.lang)
