"""What the backends share when paying an invoice.

A payment is asked for once. Nothing sent is FAILED (:func:`invoice_to_pay`); an answer that does
not tell what became of a payment that may have left is UNKNOWN (:func:`answer_of`) unless the
backend's own record says more (:func:`settled_or_pending`): never a blind retry, never a
failure on a guess (:mod:`boltgate.lightning.base`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from boltgate.lightning import bolt11
from boltgate.lightning.base import LightningError, PaymentResult, PaymentStatus


def invoice_to_pay(invoice: str, amount_msat: int | None) -> bolt11.Bolt11Invoice | PaymentResult:
    """The decoded invoice (the node checks the rest, a payment secret included), or FAILED when
    it is not an invoice or has no amount and ``amount_msat`` gives none."""
    try:
        decoded = bolt11.decode(invoice.strip(), require_payment_secret=False)
    except bolt11.Bolt11Error as exc:
        return PaymentResult(PaymentStatus.FAILED, "", error=f"invalid invoice: {exc}")
    if decoded.amount_msat is None and amount_msat is None:
        return PaymentResult(
            PaymentStatus.FAILED, decoded.payment_hash.hex(), error="the invoice has no amount"
        )
    return decoded


def answer_of(response: httpx.Response, payment_hash: str) -> dict[str, Any] | PaymentResult:
    """The JSON object of a 2xx answer to a payment request; else UNKNOWN (it may have been paid)."""
    code = response.status_code
    if not 200 <= code < 300:
        return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=f"answered HTTP {code}")
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return PaymentResult(
            PaymentStatus.UNKNOWN, payment_hash, error="answered with a body that is not a JSON object"
        )
    return body


async def settled_or_pending(
    lookup: Callable[[str], Awaitable[PaymentResult]], payment_hash: str, error: str
) -> PaymentResult:
    """What the backend's record (``lookup``: its ``lookup_payment``) says of a payment whose
    answer did not tell, when that is SETTLED or PENDING; UNKNOWN with ``error`` otherwise, a
    look-up that fails included."""
    try:
        looked: PaymentResult | None = await lookup(payment_hash)
    except LightningError:
        looked = None
    if looked is not None and looked.status in (PaymentStatus.SETTLED, PaymentStatus.PENDING):
        return looked
    return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=error)
