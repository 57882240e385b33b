"""Amounts for backends that count in whole satoshis (phoenixd, LNbits, the custodial APIs).

Such a backend would round a finer amount, so an amount that is not a whole number of satoshis
is never asked for: it is :class:`~boltgate.lightning.base.LightningUnsupported`, before anything
is sent.
"""

from __future__ import annotations

from boltgate.lightning.base import LightningUnsupported

MSAT_PER_SAT = 1000


def whole_sats(kind: str, amount_msat: int, what: str = "an amount") -> int:
    """``amount_msat`` in satoshis, or :class:`LightningUnsupported` (naming the backend ``kind``
    and ``what`` the amount is) when it is not a positive whole number of them."""
    if isinstance(amount_msat, bool) or not isinstance(amount_msat, int) or amount_msat <= 0:
        raise LightningUnsupported(
            f"{what} must be a positive whole number of sats, not {amount_msat!r} msat", backend=kind
        )
    if amount_msat % MSAT_PER_SAT:
        raise LightningUnsupported(
            f"counts in whole satoshis: {what} of {amount_msat} msat is not a whole number of sats",
            backend=kind,
        )
    return amount_msat // MSAT_PER_SAT
