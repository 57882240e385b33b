"""Subscription plans from the settings: ``BOLTGATE_PLANS=individual:20000:30,team:60000:30`` —
each plan tier's renewal price in sats and the days one renewal adds.

Accounts the operator makes (``POST /api/admin/merchants``, ``boltgate merchant create``) have the
tier :data:`UNMETERED`: no period, nothing to renew.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

UNMETERED = "unmetered"
_TIER = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_PRICE_SATS = 100_000_000
MAX_PERIOD_DAYS = 3660


@dataclass(frozen=True, slots=True)
class Plan:
    tier: str
    price_sats: int
    period_days: int


def parse_plans(items: Iterable[str]) -> dict[str, Plan]:
    """``tier:priceSats:periodDays`` items as plans by tier; ValueError names the bad item."""
    plans: dict[str, Plan] = {}
    for item in items:
        parts = item.strip().split(":")
        if len(parts) != 3 or not _TIER.match(parts[0]) or parts[0] == UNMETERED:
            raise ValueError(f"plan {item!r} must be tier:priceSats:periodDays (tier: a-z 0-9 _ -)")
        tier, price, days = parts
        if not (price.isascii() and price.isdigit() and days.isascii() and days.isdigit()):
            raise ValueError(f"plan {item!r}: price and days must be whole numbers")
        if not 1 <= int(price) <= MAX_PRICE_SATS or not 1 <= int(days) <= MAX_PERIOD_DAYS:
            raise ValueError(
                f"plan {item!r}: price 1..{MAX_PRICE_SATS} sats, period 1..{MAX_PERIOD_DAYS} days"
            )
        if tier in plans:
            raise ValueError(f"plan {tier!r} is listed twice")
        plans[tier] = Plan(tier, int(price), int(days))
    return plans
