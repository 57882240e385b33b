"""The payment lifecycle as one pure function, tested with a frozen clock and no I/O.

    unpaid ──settled──▶ paid ──(refunds complete the amount)──▶ refunded
      │                  ▲
      └──expire──▶ expired ──settled (late: the node accepted it before it expired)──┘

A settlement is never ignored: money the node received marks the payment paid even after we
marked it expired (the node, not our clock, is the source of truth). A settlement for less than
the invoice amount changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Status(enum.StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    EXPIRED = "expired"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Settled:
    amount_received_msat: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Expire:
    pass


@dataclass(frozen=True, slots=True)
class Refunded:
    """Completed refunds now add up to the whole amount paid."""


Event = Settled | Expire | Refunded


@dataclass(frozen=True, slots=True)
class Transition:
    status: Status
    emit: tuple[str, ...]


def transition(
    status: Status, amount_msat: int, expires_at: datetime, event: Event, now: datetime
) -> Transition | None:
    """The new status and the events to emit, or None when ``event`` changes nothing."""
    if isinstance(event, Settled):
        if status in (Status.UNPAID, Status.EXPIRED) and event.amount_received_msat >= amount_msat:
            return Transition(Status.PAID, ("payment.completed",))
        return None
    if isinstance(event, Refunded):
        return Transition(Status.REFUNDED, ("payment.refunded",)) if status is Status.PAID else None
    if status is Status.UNPAID and now >= expires_at:
        return Transition(Status.EXPIRED, ("payment.expired",))
    return None
