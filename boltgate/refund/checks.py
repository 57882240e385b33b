"""What a refund invoice must be before anything is paid to it (every failure a 400, nothing moves)."""

from __future__ import annotations

from datetime import datetime

from boltgate.errors import ValidationFailed
from boltgate.lightning import bolt11

MIN_SECONDS_LEFT = 60  # an invoice about to expire could expire while the payment is routed


def _bad(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors={field: [message]}, code=code)


def clean(text: str) -> str:
    """The invoice without spaces around it or a ``lightning:`` URI prefix."""
    candidate = text.strip()
    return candidate[10:] if candidate.lower().startswith("lightning:") else candidate


def check_invoice(
    text: str, *, network: str, amount_msat: int, now: datetime, field: str = "lightningInvoice"
) -> bolt11.Bolt11Invoice:
    """The decoded invoice when it can be paid for exactly ``amount_msat`` on our ``network``.

    An amountless invoice is refused (``invoice_amountless``) rather than paid with the refund's
    amount: the customer's wallet then commits to the amount, and an invoice meant for something
    else cannot be drained by a refund."""
    try:
        invoice = bolt11.decode(clean(text), require_payment_secret=False)
    except bolt11.Bolt11Error as exc:
        raise _bad(field, f"not a valid BOLT11 invoice ({exc})", "invalid_invoice") from None
    if invoice.network != network:
        raise _bad(
            field, f"the invoice is for {invoice.network}; this gateway is on {network}", "wrong_network"
        )
    left = invoice.expires_at - int(now.timestamp())
    if left < MIN_SECONDS_LEFT:
        raise _bad(
            field,
            f"the invoice expires in {max(left, 0)} s; it needs at least {MIN_SECONDS_LEFT} s",
            "invoice_expired",
        )
    if invoice.amount_msat is None:
        raise _bad(
            field,
            f"the invoice has no amount; ask for one of exactly {amount_msat // 1000} sats",
            "invoice_amountless",
        )
    if invoice.amount_msat != amount_msat:
        raise _bad(
            field,
            f"the invoice is for {invoice.amount_msat} msat; the refund is {amount_msat} msat",
            "invoice_amount_mismatch",
        )
    return invoice
