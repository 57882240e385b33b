"""The account routes as the Lightning Enable clients use them: the account summary and checklist
from real state, the paid signup (one payment, one account, the key shown once, the token bound
to its email) and the paid renewal (idempotent per payment, also under concurrent retries)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from l402_requests import AsyncL402Client, BudgetController
from sqlalchemy import func, select, update

from boltgate.kit.ids import new_id
from boltgate.l402.models import Challenge
from boltgate.merchant.models import AccountPayment, Merchant, MerchantBackend
from tests.helpers import auth
from tests.l402.test_clients import DevNodeWallet

SIGNUP = "/api/signup/l402"
RENEW = "/api/merchant/subscription/renew"
L402 = re.compile(r'^L402 macaroon="([^"]+)", invoice="([^"]+)"$')


@pytest.fixture(scope="module")
async def accounts(make_gateway):
    return await make_gateway(signup_price_sats=21, plans=["individual:500:30", "team:900:7"])


@pytest.fixture
async def http(accounts):
    async with httpx.AsyncClient(base_url=accounts.base_url, timeout=10) as client:
        yield client


def _email() -> str:
    return f"{new_id('u', 10).lower()}@example.com"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _challenge(http, path: str, **kw: Any) -> tuple[str, str, dict[str, Any]]:
    """(macaroon, invoice, body) of a 402."""
    answer = await http.post(path, **kw)
    assert answer.status_code == 402, answer.text
    macaroon, invoice = L402.match(answer.headers.get_list("www-authenticate")[0]).groups()  # type: ignore[union-attr]
    return macaroon, invoice, answer.json()


async def _pay(http, invoice: str) -> str:
    paid = (await http.post("/api/dev/pay", json={"invoice": invoice})).json()
    assert paid["status"] == "settled", paid
    return str(paid["preimage"])


async def _bought(http, path: str, **kw: Any) -> tuple[str, str, dict[str, Any]]:
    """An L402 Authorization value paid for the 402 of ``path``, its preimage and the 402 body."""
    macaroon, invoice, body = await _challenge(http, path, **kw)
    preimage = await _pay(http, invoice)
    return f"L402 {macaroon}:{preimage}", preimage, body


async def _signed_up(http) -> dict[str, Any]:
    token, _, _ = await _bought(http, SIGNUP, json={"email": _email()})
    answer = await http.post(SIGNUP, json={"email": _email()}, headers={"Authorization": token})
    assert answer.status_code == 402  # another email: the token does not open it
    email = _email()
    token, _, _ = await _bought(http, SIGNUP, json={"email": email})
    made = await http.post(SIGNUP, json={"email": email}, headers={"Authorization": token})
    assert made.status_code == 201, made.text
    assert made.headers["payment-receipt"] and token.rpartition(":")[2] not in made.headers["payment-receipt"]
    return made.json() | {"token": token}


# ------------------------------------------------------------------------------ me and checklist


async def test_me_reports_plan_features_and_onboarding_from_real_state(client, merchant, db):
    merchant_id, key = merchant
    me = (await client.get("/api/merchant/me", headers=auth(key))).json()
    assert me["merchantId"] == merchant_id and me["name"] == "Test Shop" and me["isActive"] is True
    assert me["planTier"] == "unmetered" and me["subscriptionStatus"] == "active"
    assert me["features"] == {"l402Enabled": True} and me["paymentProvider"] == "gateway"
    assert me["onboarding"] == {
        "hasNwcConnection": False,
        "hasStrikeKey": False,
        "hasOpenNodeKey": False,
        "isFullyConfigured": False,  # the dev node is no real wallet
        "proxyCount": 0,
        "hasActiveProxy": False,
    }
    now = datetime.now().astimezone()
    async with db.writing() as session:
        for kind, retired in (("nwc", None), ("strike", now)):  # a retired connection does not count
            session.add(
                MerchantBackend(
                    id=new_id("mbk"),
                    merchant_id=merchant_id,
                    kind=kind,
                    url_sealed="x",
                    url_shown="x",
                    created_at=now,
                    retired_at=retired,
                )
            )
        await session.execute(
            update(Merchant).where(Merchant.id == merchant_id).values(payment_provider="nwc")
        )
    created = await client.post(
        "/api/proxy",
        json={"name": "Weather", "targetBaseUrl": "https://api.example.com", "defaultPriceSats": 5},
        headers=auth(key),
    )
    assert created.status_code == 201, created.text
    onboarding = (await client.get("/api/merchant/me", headers=auth(key))).json()["onboarding"]
    assert onboarding == {
        "hasNwcConnection": True,
        "hasStrikeKey": False,
        "hasOpenNodeKey": False,
        "isFullyConfigured": True,
        "proxyCount": 1,
        "hasActiveProxy": True,
    }
    patched = await client.patch("/api/merchant/me", json={"name": "Renamed"}, headers=auth(key))
    assert patched.json()["onboarding"] == onboarding and patched.json()["planTier"] == "unmetered"
    assert (await client.get("/api/merchant/me")).json()["error"] == "missing_api_key"


async def test_quickstart_follows_the_merchant_through_its_setup(client, merchant):
    _, key = merchant

    async def checklist() -> dict[str, Any]:
        answer = await client.get("/api/merchant/quickstart", headers=auth(key))
        assert answer.status_code == 200, answer.text
        return answer.json()

    first = await checklist()
    assert first["totalSteps"] == len(first["steps"]) == 6 and first["requiredStepsTotal"] == 3
    assert first["completedSteps"] == 0 and first["isReadyForProduction"] is False
    assert [s["stepNumber"] for s in first["steps"]] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(s["title"], str) and s["isCompleted"] is False for s in first["steps"])
    made = await client.post(
        "/api/payments", json={"orderId": "qs-1", "amount": "1.50", "currency": "USD"}, headers=auth(key)
    )
    assert made.status_code == 201, made.text
    assert [s["isCompleted"] for s in (await checklist())["steps"]] == [
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    await _pay(client, made.json()["lightningInvoice"])
    for _ in range(100):
        if (await checklist())["steps"][2]["isCompleted"]:
            break
        await asyncio.sleep(0.05)
    hook = await client.post("/api/webhooks", json={"url": "https://hooks.example.com/x"}, headers=auth(key))
    assert hook.status_code == 201, hook.text
    logo = await client.patch(
        "/api/merchant/me", json={"logoUrl": "https://cdn.example.com/l.png"}, headers=auth(key)
    )
    assert logo.status_code == 200, logo.text
    last = await checklist()
    assert [s["isCompleted"] for s in last["steps"]] == [False, True, True, True, False, True]
    assert last["completedSteps"] == 4 and last["requiredStepsCompleted"] == 2
    assert last["isReadyForProduction"] is False  # still no real wallet: the dev node is not one
    assert (await client.get("/api/merchant/quickstart", headers=auth("le_live_nope"))).status_code == 401


# ----------------------------------------------------------------------------------------- signup


async def test_signup_with_an_auto_paying_client_returns_a_working_key(accounts, http):
    email = _email()
    wallet = DevNodeWallet(accounts.base_url)
    budget = BudgetController(
        max_sats_per_request=1000,
        max_sats_per_hour=10_000,
        max_sats_per_day=10_000,
        allowed_domains={"127.0.0.1"},
    )
    async with AsyncL402Client(wallet=wallet, budget=budget, timeout=10, trust_env=False) as payer:
        answer = await payer.post(f"{accounts.base_url}{SIGNUP}", json={"email": email.upper()})
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert set(made) == {
        "apiKey",
        "merchantId",
        "email",
        "planTier",
        "subscriptionStatus",
        "trialEndsAt",
        "dashboardUrl",
    }
    assert made["apiKey"].startswith("le_live_") and made["email"] == email
    assert made["planTier"] == "individual" and made["subscriptionStatus"] == "trialing"
    assert timedelta(days=29) < _when(made["trialEndsAt"]) - datetime.now().astimezone() <= timedelta(days=30)
    assert made["dashboardUrl"].startswith(accounts.base_url)
    assert len(wallet.paid) == 1 and "lnbcrt210n" in wallet.paid[0]  # 21 sats
    me = (await http.get("/api/merchant/me", headers=auth(made["apiKey"]))).json()
    assert me["merchantId"] == made["merchantId"] and me["planTier"] == "individual"
    assert me["subscriptionStatus"] == "trialing" and me["currentPeriodEnd"] == made["trialEndsAt"]
    again = await http.post(SIGNUP, json={"email": email})  # before paying again: refused, no invoice
    assert again.status_code == 409 and again.json()["error"] == "email_already_registered"


async def test_one_payment_makes_one_account_and_never_shows_its_key_again(accounts, http, db):
    made = await _signed_up(http)
    body = {"email": made["email"]}
    for _ in range(2):
        replay = await http.post(SIGNUP, json=body, headers={"Authorization": made["token"]})
        assert replay.status_code == 409, replay.text
        problem = replay.json()
        assert problem["error"] == "already_redeemed" and problem["merchantId"] == made["merchantId"]
        assert "apiKey" not in problem and made["apiKey"] not in replay.text
    async with db.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(Merchant).where(Merchant.email == made["email"])
        )
    assert count == 1


async def test_concurrent_paid_retries_make_one_account(accounts, http, db):
    email = _email()
    token, _, _ = await _bought(http, SIGNUP, json={"email": email})
    answers = await asyncio.gather(
        *(http.post(SIGNUP, json={"email": email}, headers={"Authorization": token}) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    async with db.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(Merchant).where(Merchant.email == email)
        )
    assert count == 1


async def test_a_payment_credential_signs_up_once_even_after_it_was_consumed(accounts, http, db):
    email = _email()
    _, invoice, challenge = await _challenge(http, SIGNUP, json={"email": email})
    preimage = await _pay(http, invoice)
    # the single-use credential was consumed, but its account was never made (a crash in between)
    async with db.writing() as session:
        await session.execute(
            update(Challenge)
            .where(Challenge.payment_hash == challenge["paymentHash"])
            .values(spent_at=func.now())
        )
    legacy = {"Authorization": f'Payment method="lightning", preimage="{preimage}"'}
    made = await http.post(SIGNUP, json={"email": email}, headers=legacy)
    assert made.status_code == 201, made.text
    replay = await http.post(SIGNUP, json={"email": email}, headers=legacy)
    assert replay.status_code == 409 and replay.json()["merchantId"] == made.json()["merchantId"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "not-an-email"}, "invalid_email"),
        ({"email": "a@b"}, "invalid_email"),
        ({"email": "x" * 250 + "@example.com"}, "validation_error"),
        ({"email": 5}, "validation_error"),
        ({}, "validation_error"),
    ],
)
async def test_a_bad_signup_is_refused_before_any_invoice(http, body, code):
    answer = await http.post(SIGNUP, json=body)
    assert answer.status_code == 400 and answer.json()["error"] == code, answer.text
    assert "www-authenticate" not in answer.headers


# ---------------------------------------------------------------------------------------- renewal


async def test_renewal_with_an_auto_paying_client_extends_the_period_once(accounts, http):
    made = await _signed_up(http)
    key = made["apiKey"]
    first = await http.post(RENEW, content="{}", headers=auth(key) | {"Content-Type": "application/json"})
    second = await http.post(RENEW, content="{}", headers=auth(key) | {"Content-Type": "application/json"})
    assert first.status_code == second.status_code == 402
    assert first.json()["invoice"] != second.json()["invoice"]  # every call: a fresh challenge
    assert first.json()["priceSats"] == 500
    wallet = DevNodeWallet(accounts.base_url)
    budget = BudgetController(
        max_sats_per_request=50_000,
        max_sats_per_hour=50_000,
        max_sats_per_day=50_000,
        allowed_domains={"127.0.0.1"},
    )
    async with AsyncL402Client(wallet=wallet, budget=budget, timeout=10, trust_env=False) as payer:
        answer = await payer.post(f"{accounts.base_url}{RENEW}", content="{}", headers=auth(key))
    assert answer.status_code == 200, answer.text
    renewed = answer.json()
    assert renewed["success"] is True and renewed["alreadyCredited"] is False
    assert renewed["paidSats"] == 500 and renewed["planTier"] == "individual"
    assert re.fullmatch(r"[0-9a-f]{64}", renewed["paymentHash"])
    assert _when(renewed["currentPeriodEnd"]) == _when(made["trialEndsAt"]) + timedelta(days=30)
    me = (await http.get("/api/merchant/me", headers=auth(key))).json()
    assert me["subscriptionStatus"] == "active" and me["currentPeriodEnd"] == renewed["currentPeriodEnd"]


async def test_the_same_renewal_payment_is_credited_once_under_concurrent_retries(accounts, http, db):
    made = await _signed_up(http)
    key = made["apiKey"]
    token, preimage, _ = await _bought(http, RENEW, headers=auth(key))
    answers = await asyncio.gather(
        *(http.post(RENEW, headers=auth(key) | {"Authorization": token}) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert sorted(b["alreadyCredited"] for b in bodies) == [False, True, True, True, True]
    end = _when(made["trialEndsAt"]) + timedelta(days=30)
    assert {_when(b["currentPeriodEnd"]) for b in bodies} == {end}
    # the same payment as a (single-use) Payment credential: still the one credit
    legacy = await http.post(
        RENEW, headers=auth(key) | {"Authorization": f'Payment method="lightning", preimage="{preimage}"'}
    )
    assert legacy.status_code == 200 and legacy.json()["alreadyCredited"] is True
    async with db.reading() as session:
        credits = await session.scalar(
            select(func.count())
            .select_from(AccountPayment)
            .where(AccountPayment.merchant_id == made["merchantId"])
        )
    assert credits == 2  # the signup and one renewal


async def test_renewal_refusals_before_payment(accounts, http, make_merchant):
    _, operator_key = await make_merchant()
    bad = await http.post(RENEW, headers=auth("le_live_" + "x" * 32))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_api_key"
    unmetered = await http.post(RENEW, headers=auth(operator_key))
    assert unmetered.status_code == 409 and unmetered.json()["error"] == "plan_not_renewable"
    assert unmetered.text.startswith('{"error":')
    # a renewal bought by one merchant does not renew another
    one, other = await _signed_up(http), await _signed_up(http)
    token, _, _ = await _bought(http, RENEW, headers=auth(one["apiKey"]))
    stolen = await http.post(RENEW, headers=auth(other["apiKey"]) | {"Authorization": token})
    assert stolen.status_code == 402
    # a signup token does not pay a renewal
    assert (
        await http.post(RENEW, headers=auth(one["apiKey"]) | {"Authorization": one["token"]})
    ).status_code == 402


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"plans": ["individual"]}, "tier:priceSats:periodDays"),
        ({"plans": ["individual:0:30"]}, "price 1.."),
        ({"plans": "individual:10:30,individual:20:30"}, "listed twice"),
        ({"plans": ["unmetered:10:30"]}, "tier:priceSats:periodDays"),
        ({"plans": ["team:10:30"]}, "signup_plan_tier 'individual' is not one of the plans"),
    ],
)
def test_plans_are_checked_at_start_up(overrides, message):
    from pydantic import ValidationError

    from boltgate.config import Settings

    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**overrides)
    assert Settings(plans="individual:10:30, team:20:7").plans == ["individual:10:30", "team:20:7"]
