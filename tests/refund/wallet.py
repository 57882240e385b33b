"""A minimal LNURL-withdraw wallet (LUD-01 / LUD-03): decode the link, read the withdraw request,
submit an invoice to the callback."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from boltgate.kit import bech32


def decode_lnurl(lnurl: str) -> str:
    hrp, data = bech32.decode(lnurl.lower())
    assert hrp == "lnurl"
    return bech32.chars_to_bytes(data).decode("utf-8")


async def withdraw_request(lnurl: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(decode_lnurl(lnurl))
    return answer.status_code, answer.json()


async def submit(callback: str, k1: str, invoice: str) -> tuple[int, dict[str, Any]]:
    separator = "&" if "?" in callback else "?"
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(callback + separator + urlencode({"k1": k1, "pr": invoice}))
    return answer.status_code, answer.json()
