"""Review findings on the paid account routes (fixed): a merchant's own cheap challenge does not
open the gateway's signup or renewal."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from boltgate.kit.clock import utcnow
from boltgate.kit.ids import new_id
from boltgate.merchant.models import AccountPayment, Merchant
from tests.helpers import auth

SIGNUP = "/api/signup/l402"
RENEW = "/api/merchant/subscription/renew"


@pytest.fixture(scope="module")
async def accounts(make_gateway):
    return await make_gateway(signup_price_sats=21, plans=["individual:500:30", "team:900:7"])


@pytest.fixture
async def http(accounts):
    async with httpx.AsyncClient(base_url=accounts.base_url, timeout=10) as client:
        yield client


def _email() -> str:
    return f"{new_id('u', 10).lower()}@example.com"


async def _own_token(http: httpx.AsyncClient, key: str, resource: str) -> tuple[str, str]:
    """A merchant's own L402 challenge for ``resource`` (1 sat, paid to the merchant's wallet or the
    gateway's), paid: (the Authorization value, its payment hash)."""
    minted = await http.post(
        "/api/l402/challenges", json={"resource": resource, "priceSats": 1}, headers=auth(key)
    )
    assert minted.status_code == 201, minted.text
    paid = (await http.post("/api/dev/pay", json={"invoice": minted.json()["invoice"]})).json()
    assert paid["status"] == "settled", paid
    return f"L402 {minted.json()['macaroon']}:{paid['preimage']}", minted.json()["paymentHash"]


async def test_a_challenge_the_merchant_minted_itself_does_not_pay_a_renewal(
    accounts, http, make_merchant, db
):
    merchant_id, key = await make_merchant("Cheap renewer")
    end = utcnow() + timedelta(days=3)
    async with db.writing() as session:
        await session.execute(
            update(Merchant)
            .where(Merchant.id == merchant_id)
            .values(plan_tier="individual", trial_ends_at=end, current_period_end=end)
        )
    quoted = await http.post(RENEW, headers=auth(key))
    assert quoted.status_code == 402 and quoted.json()["priceSats"] == 500
    token, payment_hash = await _own_token(http, key, f"renewal:{merchant_id}:individual")
    answer = await http.post(RENEW, headers=auth(key) | {"Authorization": token})
    async with db.reading() as session:
        credited = await session.get(AccountPayment, payment_hash)
    assert credited is None, f"renewed for {credited.amount_sats} sat: {answer.text}"
    assert answer.status_code == 402, answer.text


async def test_a_challenge_a_merchant_minted_does_not_pay_a_signup(accounts, http, make_merchant, db):
    _, key = await make_merchant("Account farmer")
    email = _email()
    resource = "signup:" + hashlib.sha256(email.encode()).hexdigest()
    token, _ = await _own_token(http, key, resource)
    answer = await http.post(SIGNUP, json={"email": email}, headers={"Authorization": token})
    async with db.reading() as session:
        made = await session.scalar(select(func.count()).select_from(Merchant).where(Merchant.email == email))
    assert made == 0, f"an account for 1 sat instead of 21: {answer.text}"
    assert answer.status_code == 402, answer.text
