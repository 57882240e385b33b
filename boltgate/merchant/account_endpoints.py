"""Account routes of the Lightning Enable API: the quick-start checklist, the paid signup and the
paid renewal (``GET /api/merchant/me`` is in :mod:`boltgate.merchant.endpoints`; the rules are in
:mod:`boltgate.merchant.account`).

``POST /api/signup/l402`` ``{"email"}`` (public): 402 with L402 and Payment challenges for
``BOLTGATE_SIGNUP_PRICE_SATS``; the token sold opens a signup *for that email only* (its
``resources`` caveat, and the Payment challenge's ``opaque``, name the email's hash), so it cannot
sign up another address. The paid retry (same body, ``Authorization: L402 <mac>:<preimage>`` or
``Payment …``) → 201 ``{apiKey, merchantId, email, planTier, subscriptionStatus, trialEndsAt,
dashboardUrl}``. The API key is shown that once: the same token again → 409 ``already_redeemed``
with ``merchantId`` (a token is a bearer credential: whoever saw it must not get a key). An email
that already has an account → 409 ``email_already_registered`` *before* any payment; a payment
made anyway (two challenges bought at once) is still honoured with its own account.

``POST /api/merchant/subscription/renew`` (``X-API-Key`` and paid): 402 for the price of the
merchant's plan (each call without a credential: a fresh invoice); the paid retry →
``{success, currentPeriodEnd, paidSats, paymentHash, alreadyCredited, planTier}``; the same
payment again → the same answer with ``alreadyCredited: true`` and the period extended once.
Refusals before payment: 401 (key), 409 ``plan_not_renewable`` (an account without a paid plan).

Proof of payment is the preimage of the invoice the gateway issued for that very resource (see
``_prove``): a payment is redeemed once even if its token expired, or a single-use ``Payment``
credential was consumed by an attempt that then failed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from boltgate.context import Context
from boltgate.errors import Conflict, NotFound
from boltgate.kit.clock import rfc3339
from boltgate.l402 import guard, mpp
from boltgate.l402 import service as l402
from boltgate.l402.guard import PAID_RESPONSES, PUBLIC, Paid
from boltgate.l402.models import Challenge
from boltgate.merchant import account, repository
from boltgate.merchant.models import Merchant as MerchantRow
from boltgate.merchant.plans import parse_plans
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(tags=["merchant"])


class SignupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(min_length=3, max_length=254, description="the account's email address")


def _preimage_hash(request: Request) -> str | None:
    """The payment hash the request's credential claims to open (checked by the caller)."""
    header = request.headers.get("authorization")
    if not header or len(header) > guard.MAX_AUTHORIZATION:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("l402", "lsat"):
        return l402.preimage_hash(value.rpartition(":")[2].strip())
    if scheme.lower() == "payment":
        try:
            return l402.preimage_hash(mpp.parse_credential(header).preimage)
        except mpp.CredentialError:
            return None
    return None


async def _known(ctx: Context, request: Request, resource: str) -> Challenge | None:
    """The gateway's challenge for ``resource`` whose preimage the request holds (knowing the
    preimage proves that invoice was paid), or None."""
    payment_hash = _preimage_hash(request)
    if payment_hash is None:
        return None
    async with ctx.db.reading() as session:
        row = await session.get(Challenge, payment_hash)
    return row if row is not None and row.resource == resource and row.merchant_id is None else None


async def _prove(ctx: Context, request: Request, offer: l402.Offer, known: Challenge | None) -> Paid:
    """How the request paid for ``offer``; raises the 402 (a fresh challenge) when it did not.

    The proof is the preimage of an invoice the gateway issued for this very resource (the check
    a legacy ``Payment`` credential gets everywhere), so a payment is redeemed even if its L402
    token has expired or its single-use ``Payment`` credential was consumed by an earlier attempt
    that failed; redeeming it twice is what the account tables prevent.
    """
    if known is None:
        return await guard.require(ctx, request, offer)
    await l402.mark_paid(ctx, ctx.l402, known.payment_hash)
    header = request.headers.get("authorization", "")
    scheme = "Payment" if header.lstrip()[:7].lower() == "payment" else "L402"
    verdict = l402.Verdict(True, payment_hash=known.payment_hash, scheme=scheme)
    request.scope.setdefault("state", {})[guard.RECEIPT_STATE] = l402.receipt(verdict, ctx.clock())
    return Paid(payment_hash=known.payment_hash, scheme=scheme)


async def _merchant(ctx: Context, merchant_id: str) -> MerchantRow:
    async with ctx.db.reading() as session:
        found = await repository.get_merchant(session, merchant_id)
    if found is None:
        raise NotFound("merchant not found", code="merchant_not_found")
    return found


@router.get("/api/merchant/quickstart", responses=problems(401, 404, 429))
async def quickstart(ctx: Ctx, merchant: Merchant) -> Response:
    """Your setup checklist: which steps are done and whether you are ready for production."""
    async with ctx.db.reading() as session:
        found = await repository.get_merchant(session, merchant.merchant_id)
        if found is None:
            raise NotFound("merchant not found", code="merchant_not_found")
        state = await account.state(session, found, ctx.settings)
    return json_response(account.quickstart_out(found, state))


@router.post(
    "/api/signup/l402",
    status_code=201,
    dependencies=PUBLIC,
    responses={**PAID_RESPONSES, **problems(400, 409)},
    openapi_extra=json_body(SignupBody),
    summary="Open an account by paying over Lightning: 402, then the paid retry returns your API key",
)
async def signup(request: Request, ctx: Ctx) -> Response:
    body = await read_json(request, SignupBody, ctx.settings.max_body_bytes)
    email = account.clean_email(body.email)
    settings = ctx.settings
    offer = l402.Offer(
        resource=account.signup_resource(email),
        amount_sats=settings.signup_price_sats,
        merchant_id=None,
        description="Account signup",
    )
    known = await _known(ctx, request, offer.resource)
    async with ctx.db.reading() as session:
        done = await account.redeemed(session, known.payment_hash) if known else None
        taken = known is None and await account.email_taken(session, email)
    if done is not None:
        raise account.AlreadyRedeemed(done.merchant_id)
    if taken:
        raise Conflict(f"{email} already has an account", code="email_already_registered")
    paid = await _prove(ctx, request, offer, known)
    now = ctx.clock()
    try:
        async with ctx.db.writing() as session:
            made = await account.signup(
                session, email, paid.payment_hash, settings.signup_plan_tier, settings.signup_trial_days, now
            )
    except IntegrityError:  # the same payment redeemed concurrently
        async with ctx.db.reading() as session:
            done = await account.redeemed(session, paid.payment_hash)
        if done is None:
            raise
        raise account.AlreadyRedeemed(done.merchant_id) from None
    merchant = made.merchant
    return json_response(
        {
            "apiKey": made.api_key,
            "merchantId": merchant.id,
            "email": merchant.email,
            "planTier": merchant.plan_tier,
            "subscriptionStatus": account.subscription_status(merchant, now),
            "trialEndsAt": rfc3339(merchant.trial_ends_at),
            "dashboardUrl": f"{settings.base_url}/dashboard",
        },
        201,
    )


@router.post(
    "/api/merchant/subscription/renew",
    responses={**PAID_RESPONSES, **problems(401, 404, 409)},
    summary="Renew your plan for one period: 402 for its price, then the paid retry extends it (once)",
)
async def renew(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    found = await _merchant(ctx, merchant.merchant_id)
    plan = parse_plans(ctx.settings.plans).get(found.plan_tier)
    if plan is None:
        raise Conflict(
            f"this account's plan ({found.plan_tier}) has nothing to renew", code="plan_not_renewable"
        )
    offer = l402.Offer(
        resource=account.renewal_resource(found.id, plan.tier),
        amount_sats=plan.price_sats,
        merchant_id=None,
        description=f"Renew the {plan.tier} plan for {plan.period_days} days",
    )
    known = await _known(ctx, request, offer.resource)
    if known is not None:
        async with ctx.db.reading() as session:
            done = await account.redeemed(session, known.payment_hash)
            now_found = await repository.get_merchant(session, found.id) if done else None
        if done is not None and now_found is not None:  # the same payment again: credited once
            return json_response(account.renewal_out(account.Renewal(now_found, done, already=True)))
    paid = await _prove(ctx, request, offer, known)
    for attempt in (1, 2):
        try:
            async with ctx.db.writing() as session:
                renewal = await account.renew(session, found.id, paid.payment_hash, plan, ctx.clock())
            break
        except IntegrityError:  # a concurrent retry credited it first: the second pass reads its credit
            if attempt == 2:
                raise
    return json_response(account.renewal_out(renewal))
