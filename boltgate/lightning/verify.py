"""Never trust a backend's invoice: what it returns is decoded and checked against what was asked.

A backend that answers with an invoice for another amount, another description, another network
or another payment hash than it reports is broken or hostile; taking its word would credit the
wrong amount or wait on a hash that is never paid. Each mismatch is a
:class:`~boltgate.lightning.base.LightningProtocolError` naming the backend.
"""

from __future__ import annotations

import hashlib
import time

from boltgate.lightning import bolt11
from boltgate.lightning.base import LightningProtocolError


def created_invoice(
    backend: str,
    payment_request: str,
    *,
    amount_msat: int,
    description: str | None,
    description_hash: bytes | None,
    network: str | None = None,
    payment_hash: str | None = None,
) -> bolt11.Bolt11Invoice:
    """The decoded invoice, when it is exactly the one asked for."""
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
    return decoded
