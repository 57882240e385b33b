"""LNURL, both ways: paying a customer's Lightning address (LUD-16 / LUD-06 payRequest) and the
claim link a customer opens in a wallet (LUD-03 withdrawRequest, encoded per LUD-01 / LUD-17).

The Lightning-address server is the customer's (any URL): it is reached through the gateway's
address-guarded client (:mod:`boltgate.kit.netguard`, the webhook client: no private addresses
outside dev mode, no redirects), every answer is size-capped, and the invoice it returns is checked
like any other (amount, network, expiry) plus its description hash against the metadata (LUD-06).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson

from boltgate.errors import ValidationFailed
from boltgate.kit import bech32
from boltgate.kit.clock import rfc3339
from boltgate.lightning import bolt11
from boltgate.refund.checks import check_invoice, clean

MAX_ANSWER_BYTES = 64 * 1024
FIELD = "lightningAddress"


def _bad(message: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"{FIELD}: {message}", errors={FIELD: [message]}, code=code)


def _plain_http_ok(host: str, dev: bool) -> bool:
    """Plain http only in dev mode, for a loopback name or an IP literal (a local test server)."""
    if not dev:
        return False
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def address_url(address: str, *, dev: bool) -> str:
    user, domain = address.split("@", 1)
    scheme = "http" if _plain_http_ok(domain.rsplit(":", 1)[0], dev) else "https"
    return f"{scheme}://{domain}/.well-known/lnurlp/{user}"


async def _get_json(http: httpx.AsyncClient, url: str, seconds: float) -> Any:
    try:
        async with asyncio.timeout(seconds):  # the whole exchange, not each read: no trickling
            async with http.stream(
                "GET", url, timeout=seconds, headers={"Accept": "application/json"}
            ) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise _bad(
                            "the Lightning address server answered too much", "lightning_address_invalid"
                        )
                status = response.status_code
    except (httpx.InvalidURL, ValueError):  # a host or URL httpx cannot use (e.g. 999.1.1.1)
        raise _bad(
            "the Lightning address or its callback is not a usable URL", "lightning_address_invalid"
        ) from None
    except (httpx.HTTPError, TimeoutError) as exc:
        raise _bad(
            f"the Lightning address server cannot be reached ({type(exc).__name__})",
            "lightning_address_unreachable",
        ) from None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and str(data.get("status", "")).upper() == "ERROR":
        reason = str(data.get("reason", ""))[:200]
        raise _bad(f"the Lightning address server refused: {reason}", "lightning_address_refused")
    if status != 200:
        raise _bad(f"the Lightning address server answered HTTP {status}", "lightning_address_unreachable")
    if not isinstance(data, dict):
        raise _bad(
            "the Lightning address server answered something that is not JSON", "lightning_address_invalid"
        )
    return data


def _int(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(f"the payRequest has no valid {name}", "lightning_address_invalid")
    return value


def _callback(data: dict[str, Any], dev: bool) -> str:
    callback = data.get("callback")
    try:
        parts = urlsplit(callback) if isinstance(callback, str) else None
        _port = parts.port if parts is not None else None
    except ValueError:  # e.g. "https://[::1"
        parts = None
    if parts is None or not parts.hostname or parts.username or parts.password:
        raise _bad("the payRequest has no valid callback", "lightning_address_invalid")
    if parts.scheme != "https" and not (parts.scheme == "http" and _plain_http_ok(parts.hostname, dev)):
        raise _bad("the payRequest callback must be an https URL", "lightning_address_invalid")
    assert isinstance(callback, str)
    return callback


def _with_amount(callback: str, amount_msat: int) -> str:
    parts = urlsplit(callback)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "amount"]
    query.append(("amount", str(amount_msat)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


async def invoice_for(
    http: httpx.AsyncClient,
    address: str,
    amount_msat: int,
    *,
    network: str,
    now: datetime,
    seconds: float,
    dev: bool,
) -> tuple[str, bolt11.Bolt11Invoice]:
    """An invoice of ``address`` for exactly ``amount_msat``, checked (LUD-16, LUD-06): the text
    and its decoded form."""
    pay_request = await _get_json(http, address_url(address, dev=dev), seconds)
    if pay_request.get("tag") != "payRequest":
        raise _bad("the Lightning address is not a payRequest", "lightning_address_invalid")
    callback = _callback(pay_request, dev)
    low, high = _int(pay_request, "minSendable"), _int(pay_request, "maxSendable")
    metadata = pay_request.get("metadata")
    if not isinstance(metadata, str):
        raise _bad("the payRequest has no metadata", "lightning_address_invalid")
    if not low <= amount_msat <= high:
        raise _bad(
            f"the Lightning address accepts {low}-{high} msat; the refund is {amount_msat} msat",
            "lightning_address_amount_out_of_range",
        )
    answer = await _get_json(http, _with_amount(callback, amount_msat), seconds)
    pr = answer.get("pr")
    if not isinstance(pr, str):
        raise _bad("the Lightning address server returned no invoice", "lightning_address_invalid")
    try:
        invoice = check_invoice(pr, network=network, amount_msat=amount_msat, now=now, field=FIELD)
    except ValidationFailed as exc:
        raise _bad(
            f"the invoice it returned is not usable ({exc.detail})", "lightning_address_invalid_invoice"
        ) from None
    if invoice.description_hash != hashlib.sha256(metadata.encode("utf-8")).digest():
        raise _bad(
            "the invoice it returned does not commit to the payRequest metadata",
            "lightning_address_invalid_invoice",
        )
    return clean(pr), invoice


# -- claim links (LNURL-withdraw, served by the gateway)


def claim_tag(key: bytes, refund_id: str) -> str:
    """The secret part of a refund's claim link (only the holder of the link can claim it)."""
    return hmac.new(key, b"claim:" + refund_id.encode(), hashlib.sha256).hexdigest()[:32]


def claim_k1(key: bytes, refund_id: str) -> str:
    return hmac.new(key, b"k1:" + refund_id.encode(), hashlib.sha256).hexdigest()


def claim_url(base_url: str, key: bytes, refund_id: str) -> str:
    return f"{base_url}/lnurlw/{refund_id}/{claim_tag(key, refund_id)}"


def encode_lnurl(url: str) -> str:
    """LUD-01: the URL as bech32 with the ``lnurl`` prefix, upper case (smaller QR codes)."""
    return bech32.encode("lnurl", bech32.bytes_to_chars(url.encode("utf-8"))).upper()


def lnurlw_scheme(url: str) -> str:
    """LUD-17: the same URL with the ``lnurlw://`` scheme."""
    return "lnurlw://" + url.split("://", 1)[1]


def claim_out(base_url: str, key: bytes, refund_id: str, expires_at: datetime | None) -> dict[str, Any]:
    url = claim_url(base_url, key, refund_id)
    return {"lnurl": encode_lnurl(url), "url": lnurlw_scheme(url), "expiresAt": rfc3339(expires_at)}
