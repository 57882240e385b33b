"""Never trust a backend's invoice: what it returns is decoded and checked against what was asked.

A backend that answers with an invoice for another amount, another description, another network
or another payment hash than it reports is broken or hostile; taking its word would credit the
wrong amount or wait on a hash that is never paid. Each mismatch is a
:class:`~boltgate.lightning.base.LightningProtocolError` naming the backend. Likewise a preimage
is taken only when it hashes to the payment's hash (:func:`preimage_of`).
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from typing import TypeGuard

from boltgate.lightning import bolt11
from boltgate.lightning.base import CreatedInvoice, LightningProtocolError

_HASH = re.compile(r"[0-9a-f]{64}")


def is_hash(value: object) -> TypeGuard[str]:
    """Whether ``value`` is 32 bytes in hex (a payment hash or a preimage), in either case."""
    return isinstance(value, str) and _HASH.fullmatch(value.lower()) is not None


def preimage_of(payment_hash: str, value: object) -> str | None:
    """``value`` in lower case when it is the preimage of ``payment_hash`` (hex), else None."""
    if not is_hash(value):
        return None
    preimage = str(value).lower()
    return preimage if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash.lower() else None


def created_invoice(
    backend: str,
    payment_request: str,
    *,
    amount_msat: int,
    description: str | None,
    description_hash: bytes | None,
    network: str | None = None,
    payment_hash: str | None = None,
    backend_invoice_id: str | None = None,
) -> CreatedInvoice:
    """What :meth:`create_invoice` returns for the backend's invoice, when it is exactly the one
    asked for; ``backend_invoice_id`` is the payment hash unless given."""
    try:
        decoded = bolt11.decode(payment_request.strip(), require_payment_secret=False)
    except bolt11.Bolt11Error as exc:
        raise LightningProtocolError(f"returned an invalid BOLT11 invoice ({exc})", backend=backend) from exc
    if decoded.amount_msat != amount_msat:
        raise LightningProtocolError(
            f"returned an invoice for {decoded.amount_msat} msat instead of {amount_msat}", backend=backend
        )
    if payment_hash is not None and decoded.payment_hash.hex() != payment_hash.lower():
        raise LightningProtocolError("reported a payment hash that is not the invoice's", backend=backend)
    if network is not None and decoded.currency != bolt11.NETWORK_PREFIXES.get(network, decoded.currency):
        raise LightningProtocolError(
            f"returned an invoice for another network ({decoded.currency}, expected {network})",
            backend=backend,
        )
    if description_hash is not None:
        if decoded.description_hash != description_hash:
            raise LightningProtocolError(
                "returned an invoice without the requested description hash", backend=backend
            )
    elif (
        description is not None
        and decoded.description != description
        # some backends commit to a long description by its hash: that, and nothing else, is fine
        and decoded.description_hash != hashlib.sha256(description.encode()).digest()
    ):
        raise LightningProtocolError("returned an invoice with another description", backend=backend)
    if decoded.timestamp + decoded.expiry <= time.time():
        raise LightningProtocolError("returned an invoice that has already expired", backend=backend)
    return CreatedInvoice(
        payment_hash=decoded.payment_hash.hex(),
        payment_request=payment_request.strip(),
        backend_invoice_id=backend_invoice_id or decoded.payment_hash.hex(),
        amount_msat=amount_msat,
        expires_at=datetime.fromtimestamp(decoded.expires_at, UTC),
    )
