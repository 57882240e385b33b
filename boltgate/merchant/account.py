"""Merchant accounts as the Lightning Enable clients see them: the account summary with its plan
and onboarding flags, the quick-start checklist, the paid signup and the paid renewal.

Plans (:mod:`boltgate.merchant.plans`): a paid signup makes an account of ``BOLTGATE_SIGNUP_PLAN_TIER``
whose first period is a trial of ``BOLTGATE_SIGNUP_TRIAL_DAYS``; each renewal adds its plan's
period to the later of now and the current period end. ``subscriptionStatus`` is ``active``
(unmetered accounts, or a paid period running), ``trialing`` (still in the first, trial, period)
or ``expired`` (the period ended). The gateway reports the status; it does not yet switch off an
expired account (``isActive`` is the operator's switch).

Quick-start checklist (``GET /api/merchant/quickstart``), from the account's real state:

1. *Connect a wallet to receive payments* (required): the provider in use has a live connection
   (NWC, Strike, OpenNode…), or it is the gateway's own backend and that is a real one (not the
   dev node, not dev mode). The same test gives ``onboarding.isFullyConfigured``.
2. *Create your first payment or L402 challenge* (required): a payment (``POST /api/payments``)
   or a challenge sold by this merchant exists.
3. *Receive your first payment* (required): one of those is paid.
4. *Add a webhook endpoint* (optional): an enabled webhook endpoint exists.
5. *Create an L402 proxy* (optional): a proxy that is not retired exists.
6. *Add your logo to the checkout page* (optional): ``logoUrl`` is set.

Every payment redeemed for an account is an :class:`AccountPayment` row keyed by its payment
hash, written in the same transaction as its effect: one payment makes at most one account or
extends one period once, however often (or concurrently) its token is presented.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.config import Settings
from boltgate.errors import Conflict, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.l402.models import Challenge
from boltgate.merchant import service
from boltgate.merchant.backends import GATEWAY
from boltgate.merchant.models import AccountPayment, Merchant, MerchantBackend
from boltgate.merchant.plans import Plan
from boltgate.merchant.schemas import merchant_out
from boltgate.payment.models import Payment
from boltgate.proxy.models import Proxy
from boltgate.webhook.models import WebhookEndpoint

SIGNUP = "signup"
RENEWAL = "renewal"
# the clients' own check (^[^@\s]+@[^@\s]+\.[^@\s]+$), plus a length limit and an ASCII host name
EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class AlreadyRedeemed(Conflict):
    """A paid signup token presented again: its account exists, its API key was shown once."""

    code = "already_redeemed"
    title = "Payment already redeemed"

    def __init__(self, merchant_id: str) -> None:
        super().__init__(
            f"This payment already created account {merchant_id}; its API key was shown once and is "
            "not shown again (ask the operator for a new key if it was lost)"
        )
        self.merchant_id = merchant_id

    def body(self) -> dict[str, Any]:
        return super().body() | {"merchantId": self.merchant_id}


def clean_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        message = "must be an email address like you@example.com (at most 254 characters)"
        raise ValidationFailed(f"email {message}", errors={"email": [message]}, code="invalid_email")
    return email


def signup_resource(email: str) -> str:
    """What a signup token opens: signing up this email only (its hash: the email is not stored
    with the challenge)."""
    return "signup:" + hashlib.sha256(email.encode()).hexdigest()


def renewal_resource(merchant_id: str, tier: str) -> str:
    """What a renewal token opens: renewing this merchant's plan of this tier only."""
    return f"renewal:{merchant_id}:{tier}"


def subscription_status(merchant: Merchant, now: datetime) -> str:
    end = merchant.current_period_end
    if end is None:
        return "active"
    if end <= now:
        return "expired"
    trial = merchant.trial_ends_at
    return "trialing" if trial is not None and end <= trial else "active"


# --------------------------------------------------------------------------- summary, checklist


@dataclass(frozen=True, slots=True)
class State:
    kinds: frozenset[str]  # kinds of its live connections
    receiving: bool
    proxies: int
    webhooks: int
    made: bool
    paid: bool


async def _exists(session: AsyncSession, *where: Any) -> bool:
    return bool(await session.scalar(select(exists().where(*where))))


async def state(session: AsyncSession, merchant: Merchant, settings: Settings) -> State:
    mid = merchant.id
    kinds = frozenset(
        await session.scalars(
            select(MerchantBackend.kind).where(
                MerchantBackend.merchant_id == mid, MerchantBackend.retired_at.is_(None)
            )
        )
    )
    provider = merchant.payment_provider or GATEWAY
    if provider == GATEWAY:
        receiving = not settings.is_dev and settings.lightning_backend != "dev"
    else:
        receiving = provider in kinds
    proxies = await session.scalar(
        select(func.count()).select_from(Proxy).where(Proxy.merchant_id == mid, Proxy.retired_at.is_(None))
    )
    webhooks = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.merchant_id == mid, WebhookEndpoint.enabled.is_(True))
    )
    paid = await _exists(session, Payment.merchant_id == mid, Payment.paid_at.is_not(None)) or await _exists(
        session, Challenge.merchant_id == mid, Challenge.paid_at.is_not(None)
    )
    made = (
        paid
        or await _exists(session, Payment.merchant_id == mid)
        or await _exists(session, Challenge.merchant_id == mid)
    )
    return State(kinds, receiving, int(proxies or 0), int(webhooks or 0), made, paid)


def me_out(merchant: Merchant, found: State, now: datetime) -> dict[str, Any]:
    return merchant_out(merchant) | {
        "planTier": merchant.plan_tier,
        "subscriptionStatus": subscription_status(merchant, now),
        "trialEndsAt": rfc3339(merchant.trial_ends_at),
        "currentPeriodEnd": rfc3339(merchant.current_period_end),
        "features": {"l402Enabled": True},
        "onboarding": {
            "hasNwcConnection": "nwc" in found.kinds,
            "hasStrikeKey": "strike" in found.kinds,
            "hasOpenNodeKey": "opennode" in found.kinds,
            "isFullyConfigured": found.receiving,
            "proxyCount": found.proxies,
            "hasActiveProxy": found.proxies > 0,
        },
    }


def quickstart_out(merchant: Merchant, found: State) -> dict[str, Any]:
    checks = [
        ("Connect a wallet to receive payments", found.receiving, True),
        ("Create your first payment or L402 challenge", found.made, True),
        ("Receive your first payment", found.paid, True),
        ("Add a webhook endpoint", found.webhooks > 0, False),
        ("Create an L402 proxy", found.proxies > 0, False),
        ("Add your logo to the checkout page", merchant.logo_url is not None, False),
    ]
    steps = [
        {"stepNumber": n, "title": title, "isCompleted": done, "isRequired": required}
        for n, (title, done, required) in enumerate(checks, 1)
    ]
    required = [s for s in steps if s["isRequired"]]
    return {
        "completedSteps": sum(1 for s in steps if s["isCompleted"]),
        "totalSteps": len(steps),
        "requiredStepsCompleted": sum(1 for s in required if s["isCompleted"]),
        "requiredStepsTotal": len(required),
        "isReadyForProduction": all(s["isCompleted"] for s in required),
        "steps": steps,
    }


# ------------------------------------------------------------------------ signup and renewal


async def redeemed(session: AsyncSession, payment_hash: str) -> AccountPayment | None:
    return await session.get(AccountPayment, payment_hash)


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await _exists(session, Merchant.email == email)


async def _paid_sats(session: AsyncSession, payment_hash: str) -> int:
    row = await session.get(Challenge, payment_hash)
    return row.amount_sats if row is not None else 0


@dataclass(frozen=True, slots=True)
class SignedUp:
    merchant: Merchant
    api_key: str  # shown once, never stored


async def signup(
    session: AsyncSession, email: str, payment_hash: str, tier: str, trial_days: int, now: datetime
) -> SignedUp:
    """Make the account a paid signup bought; IntegrityError if the payment was redeemed already."""
    name = email.split("@", 1)[0][:200]
    merchant, issued = await service.create_merchant(session, name, clock=lambda: now)
    end = now + timedelta(days=trial_days)
    merchant.email = email  # the payer's word: no confirmation, as the buyer of the account holds its key
    merchant.email_key_id = issued.key.id  # revoking that key takes the address off (dashboard.auth)
    merchant.plan_tier = tier
    merchant.trial_ends_at = end
    merchant.current_period_end = end
    session.add(
        AccountPayment(
            payment_hash=payment_hash,
            merchant_id=merchant.id,
            purpose=SIGNUP,
            plan_tier=tier,
            amount_sats=await _paid_sats(session, payment_hash),
            period_end=end,
            created_at=now,
        )
    )
    await session.flush()
    return SignedUp(merchant, issued.secret)


@dataclass(frozen=True, slots=True)
class Renewal:
    merchant: Merchant
    credited: AccountPayment
    already: bool


async def renew(
    session: AsyncSession, merchant_id: str, payment_hash: str, plan: Plan, now: datetime
) -> Renewal:
    """Extend the period once for this payment. The merchant's row is locked first (PostgreSQL), so
    concurrent renewals extend one after the other and a repeated payment finds its credit; the
    primary key on the payment hash is the last guard (IntegrityError)."""
    merchant = (
        await session.scalars(select(Merchant).where(Merchant.id == merchant_id).with_for_update())
    ).one()
    done = await redeemed(session, payment_hash)
    if done is not None:
        return Renewal(merchant, done, already=True)
    start = max(now, merchant.current_period_end or now)
    end = start + timedelta(days=plan.period_days)
    credited = AccountPayment(
        payment_hash=payment_hash,
        merchant_id=merchant_id,
        purpose=RENEWAL,
        plan_tier=plan.tier,
        amount_sats=await _paid_sats(session, payment_hash),
        period_end=end,
        created_at=now,
    )
    session.add(credited)
    merchant.current_period_end = end
    await session.flush()
    return Renewal(merchant, credited, already=False)


def renewal_out(renewal: Renewal) -> dict[str, Any]:
    return {
        "success": True,
        "currentPeriodEnd": rfc3339(renewal.merchant.current_period_end),
        "paidSats": renewal.credited.amount_sats,
        "paymentHash": renewal.credited.payment_hash,
        "alreadyCredited": renewal.already,
        "planTier": renewal.merchant.plan_tier,
    }
