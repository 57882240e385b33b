"""Event names and payloads (Lightning Enable's names, plus boltgate's own).

The body is ``{"id": "evt_…", "event": "<name>", "timestamp": "<RFC 3339>", "data": {…}}``. It
is serialised once, when the event is written, and those exact bytes are signed and sent on every
attempt. Amounts are JSON numbers in their shortest form (``25`` for 25.00), so a receiver that
re-serialises the parsed body (``JSON.stringify``) gets the same bytes back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from boltgate.kit.clock import rfc3339

PAYMENT_CREATED = "payment.created"
PAYMENT_COMPLETED = "payment.completed"
PAYMENT_EXPIRED = "payment.expired"
PAYMENT_REFUNDED = "payment.refunded"  # ours: refunds completed add up to what was paid
REFUND_COMPLETED = "refund.completed"
REFUND_FAILED = "refund.failed"
ENDPOINT_DISABLED = "webhook.endpoint_disabled"
SHOPIFY_ORDER_CREATED = "shopify.order.created"  # a paid order was created in the merchant's store
SHOPIFY_ORDER_FLAGGED = "shopify.order.flagged"  # … and needs the merchant's eyes (price, stock)

EVENT_TYPES = frozenset(
    {
        PAYMENT_CREATED,
        PAYMENT_COMPLETED,
        PAYMENT_EXPIRED,
        PAYMENT_REFUNDED,
        REFUND_COMPLETED,
        REFUND_FAILED,
        ENDPOINT_DISABLED,
        SHOPIFY_ORDER_CREATED,
        SHOPIFY_ORDER_FLAGGED,
    }
)


def js_number(amount: str | Decimal) -> int | float:
    """The amount as the number ``JSON.stringify`` would print (``25.00`` -> ``25``)."""
    value = Decimal(amount)
    return int(value) if value == value.to_integral_value() else float(value)


def payment_data(event: str, payment: Any) -> dict[str, Any]:
    """``data`` of a payment event, from a payment model or row."""
    data: dict[str, Any] = {
        "invoiceId": payment.id,
        "orderId": payment.order_id,
        "status": payment.status,
        "amount": js_number(payment.amount),
        "currency": payment.currency,
    }
    if event != PAYMENT_EXPIRED:
        data["amountSats"] = payment.amount_sats
    if event == PAYMENT_CREATED:
        data["expiresAt"] = rfc3339(payment.expires_at)
    elif event == PAYMENT_COMPLETED:
        data["paidAt"] = rfc3339(payment.paid_at)
    elif event == PAYMENT_EXPIRED:
        data["expiredAt"] = rfc3339(payment.expired_at)
    elif event == PAYMENT_REFUNDED:
        data["refundedAt"] = rfc3339(payment.updated_at)
    data["metadata"] = payment.metadata_
    return data


def refund_data(event: str, refund: Any) -> dict[str, Any]:
    """``data`` of a refund event (Lightning Enable's fields, plus ``amountSats`` and ``type``)."""
    data: dict[str, Any] = {
        "refundId": refund.id,
        "invoiceId": refund.payment_id,
        "status": refund.status,
        "amount": js_number(refund.amount),
        "currency": refund.currency,
        "amountSats": refund.amount_sats,
        "type": refund.type,
    }
    if event == REFUND_COMPLETED:
        data["completedAt"] = rfc3339(refund.completed_at)
    else:
        data["reason"] = refund.failure
    return data


def body(event_id: str, event: str, timestamp: str, data: dict[str, Any]) -> str:
    return orjson.dumps({"id": event_id, "event": event, "timestamp": timestamp, "data": data}).decode()
