"""The published Lightning Enable MCP (``lightning-enable-mcp`` 2.1.1, pinned for the tests) opens
and renews an account on a real gateway on loopback: its ``create_lightning_enable_account`` and
``renew_lightning_enable_subscription`` tools, run as its server runs them, pay real BOLT11 invoices
of the gateway's dev node (spec ``lightning-enable-clients.md`` rows 20 and 21).

The tools find the gateway through ``LIGHTNING_ENABLE_API_URL`` and write the key to
``~/.lightning-enable/config.json``: HOME is a temporary folder here, so nothing reaches the real one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bolt11
import httpx
import pytest
from sqlalchemy import func, select

from boltgate.db.engine import Database
from boltgate.kit.ids import new_id
from boltgate.l402.models import Challenge
from boltgate.merchant import account
from boltgate.merchant.models import AccountPayment
from tests.conftest import Gateway
from tests.helpers import auth

logging.getLogger().setLevel(logging.WARNING)  # the MCP package sets the root logger to INFO on import
import lightning_enable_mcp.config as mcp_config  # noqa: E402
import lightning_enable_mcp.l402_client as mcp  # noqa: E402
from lightning_enable_mcp.lightning_enable_api import LightningEnableApiClient  # noqa: E402
from lightning_enable_mcp.ssrf_transport import build_ssrf_safe_async_transport  # noqa: E402
from lightning_enable_mcp.tools._ssrf_guard import is_blocked_ip  # noqa: E402
from lightning_enable_mcp.tools.create_account import create_lightning_enable_account  # noqa: E402
from lightning_enable_mcp.tools.renew_subscription import (  # noqa: E402
    renew_lightning_enable_subscription,
)

from tests.l402.test_clients import DevNodeWallet  # noqa: E402

SIGNUP_SATS = 37  # prices and periods no default has, so the answers can only come from these settings
PLAN_SATS = 1234
PLAN_DAYS = 14
TRIAL_DAYS = 3


@pytest.fixture(scope="module")
async def accounts(make_gateway: Callable[..., Awaitable[Gateway]]) -> Gateway:
    return await make_gateway(
        signup_price_sats=SIGNUP_SATS,
        signup_trial_days=TRIAL_DAYS,
        plans=[f"individual:{PLAN_SATS}:{PLAN_DAYS}", "team:900:7"],
    )


@pytest.fixture
async def http(accounts: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=accounts.base_url, timeout=10) as client:
        yield client


@dataclass
class Mcp:
    """The MCP's pieces as its server wires them: a wallet-backed L402 client and the config home."""

    wallet: DevNodeWallet
    payer: mcp.L402Client
    home: Path

    @property
    def config_file(self) -> Path:
        return self.home / ".lightning-enable" / "config.json"

    def paid(self) -> list[tuple[int, str]]:
        """(sats, payment hash) of every invoice the wallet paid."""
        out = []
        for invoice in self.wallet.paid:
            decoded = bolt11.decode(invoice)
            assert decoded.amount_msat is not None and decoded.amount_msat % 1000 == 0
            out.append((decoded.amount_msat // 1000, decoded.payment_hash))
        return out

    async def create(self, email: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(await create_lightning_enable_account(email, l402_client=self.payer))
        return out

    async def renew(self, key: str | None = None) -> dict[str, Any]:
        """The renew tool with the API client the MCP server builds: its key from the environment
        when ``key`` is given, else from the config file the signup tool wrote."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mcp_config, "_config_service", None)  # read the config file afresh ("restart")
            if key is None:
                patch.delenv("LIGHTNING_ENABLE_API_KEY", raising=False)
            else:
                patch.setenv("LIGHTNING_ENABLE_API_KEY", key)
            api = LightningEnableApiClient()
        try:
            out: dict[str, Any] = json.loads(
                await renew_lightning_enable_subscription(l402_client=self.payer, api_client=api)
            )
        finally:
            await api.close()
        return out


@pytest.fixture
async def tools(accounts: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Mcp]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTNING_ENABLE_API_URL", accounts.base_url)
    monkeypatch.delenv("LIGHTNING_ENABLE_API_KEY", raising=False)
    monkeypatch.setattr(mcp_config, "_config_service", None)
    monkeypatch.setattr(  # its transport refuses loopback; the factory's is_blocked seam lets 127.0.0.1 through
        mcp,
        "build_ssrf_safe_async_transport",
        functools.partial(
            build_ssrf_safe_async_transport,
            is_blocked=lambda ip: False if ip.is_loopback else is_blocked_ip(ip),
        ),
    )
    assert Path.home() == tmp_path
    wallet = DevNodeWallet(accounts.base_url)
    payer = mcp.L402Client(wallet=wallet)
    try:
        yield Mcp(wallet, payer, tmp_path)
    finally:
        await payer.close()


def _email() -> str:
    return f"{new_id('u', 10).lower()}@example.com"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _credits(db: Database, merchant_id: str) -> list[AccountPayment]:
    async with db.reading() as session:
        rows = await session.scalars(
            select(AccountPayment)
            .where(AccountPayment.merchant_id == merchant_id)
            .order_by(AccountPayment.created_at)
        )
        return list(rows)


async def _signup_challenges(db: Database, email: str) -> int:
    async with db.reading() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Challenge)
            .where(Challenge.resource == account.signup_resource(email))
        )
    return int(count or 0)


async def _signed_up(tools: Mcp) -> dict[str, Any]:
    made = await tools.create(_email())
    assert made["success"] is True, made
    return made


# ----------------------------------------------------------------------------------------- signup


async def test_the_mcp_tool_creates_an_account_once_per_email(
    accounts: Gateway, http: httpx.AsyncClient, tools: Mcp, db: Database
) -> None:
    email = _email()
    made = await tools.create(email.upper())  # the gateway keeps the address in lower case
    assert made["success"] is True, made
    assert made["activation"] == {"paid": True, "amountSats": SIGNUP_SATS}
    assert made["apiKey"].startswith("le_live_") and made["email"] == email
    assert made["planTier"] == "individual" and made["subscriptionStatus"] == "trialing"
    trial_end = _when(made["trialEndsAt"])
    assert (
        timedelta(days=TRIAL_DAYS - 1) < trial_end - datetime.now().astimezone() <= timedelta(days=TRIAL_DAYS)
    )
    assert made["dashboardUrl"] == f"{accounts.base_url}/dashboard"

    # the key the tool was given works, and the account is what the tool reported
    me = await http.get("/api/merchant/me", headers=auth(made["apiKey"]))
    assert me.status_code == 200, me.text
    assert me.json()["merchantId"] == made["merchantId"] and me.json()["email"] == email
    assert me.json()["planTier"] == made["planTier"]
    assert me.json()["subscriptionStatus"] == made["subscriptionStatus"]
    assert me.json()["currentPeriodEnd"] == made["trialEndsAt"]

    # the key went to the config file of the (temporary) home, and nowhere else was written
    assert made["config"] == {
        "written": True,
        "path": str(tools.config_file),
        "key": "lightningEnableApiKey",
    }
    assert json.loads(tools.config_file.read_text()) == {"lightningEnableApiKey": made["apiKey"]}

    # one invoice, for the signup price, and it is the payment the gateway credited
    [(sats, payment_hash)] = tools.paid()
    assert sats == SIGNUP_SATS
    [credit] = await _credits(db, made["merchantId"])
    assert (credit.payment_hash, credit.purpose, credit.amount_sats) == (payment_hash, "signup", SIGNUP_SATS)

    # the same email again: refused before any invoice, and the tool says nothing was paid
    again = await tools.create(email)
    assert again["success"] is False and again["receipt_written"] is None, again
    assert "activation" not in again and "warning" not in again
    assert again["error"].startswith("Request failed: 409 ") and "email_already_registered" in again["error"]
    assert made["apiKey"] not in json.dumps(again)
    assert len(tools.wallet.paid) == 1
    assert await _signup_challenges(db, email) == 1  # the first signup's challenge only
    assert len(await _credits(db, made["merchantId"])) == 1
    assert json.loads(tools.config_file.read_text()) == {"lightningEnableApiKey": made["apiKey"]}


async def test_the_mcp_tool_keeps_the_other_settings_of_the_config_file(tools: Mcp) -> None:
    tools.config_file.parent.mkdir(parents=True)
    tools.config_file.write_text(json.dumps({"limits": {"maxPerPaymentSats": 5000}}))
    made = await _signed_up(tools)
    assert json.loads(tools.config_file.read_text()) == {
        "limits": {"maxPerPaymentSats": 5000},
        "lightningEnableApiKey": made["apiKey"],
    }


# ---------------------------------------------------------------------------------------- renewal


async def test_the_mcp_tool_renews_for_one_period_per_payment(
    http: httpx.AsyncClient, tools: Mcp, db: Database
) -> None:
    made = await _signed_up(tools)
    trial_end = _when(made["trialEndsAt"])

    first = await tools.renew()  # the key from the config file the signup tool wrote
    assert first["success"] is True, first
    assert first["paidSats"] == PLAN_SATS and first["activation"] == {"paid": True, "amountSats": PLAN_SATS}
    assert first["alreadyCredited"] is False and first["planTier"] == "individual"
    assert _when(first["currentPeriodEnd"]) == trial_end + timedelta(days=PLAN_DAYS)
    assert made["apiKey"] not in json.dumps(first)

    second = await tools.renew(made["apiKey"])  # a fresh challenge: a second payment, a second period
    assert second["success"] is True, second
    assert second["paidSats"] == PLAN_SATS and second["alreadyCredited"] is False
    assert _when(second["currentPeriodEnd"]) == trial_end + timedelta(days=2 * PLAN_DAYS)
    assert second["paymentHash"] != first["paymentHash"]

    paid = tools.paid()
    assert paid[0][0] == SIGNUP_SATS
    assert paid[1:] == [(PLAN_SATS, first["paymentHash"]), (PLAN_SATS, second["paymentHash"])]
    credits = await _credits(db, made["merchantId"])
    assert [(c.purpose, c.amount_sats, c.payment_hash) for c in credits] == [
        ("signup", SIGNUP_SATS, paid[0][1]),
        ("renewal", PLAN_SATS, first["paymentHash"]),
        ("renewal", PLAN_SATS, second["paymentHash"]),
    ]
    me = (await http.get("/api/merchant/me", headers=auth(made["apiKey"]))).json()
    assert me["subscriptionStatus"] == "active" and me["currentPeriodEnd"] == second["currentPeriodEnd"]


async def test_the_mcp_tool_reports_a_rejected_key_and_pays_nothing(
    http: httpx.AsyncClient,
    tools: Mcp,
    db: Database,
    make_merchant: Callable[..., Awaitable[tuple[str, str]]],
) -> None:
    made = await _signed_up(tools)
    extra = await http.post("/api/merchant/keys", json={"name": "agent"}, headers=auth(made["apiKey"]))
    assert extra.status_code == 201, extra.text
    revoked = await http.delete(f"/api/merchant/keys/{extra.json()['id']}", headers=auth(made["apiKey"]))
    assert revoked.status_code == 200, revoked.text
    _, operator_key = await make_merchant()  # an account the operator made: nothing to renew

    for key in (extra.json()["apiKey"], "le_live_" + "x" * 40):
        refused = await tools.renew(key)
        assert refused["success"] is False and refused["statusCode"] == 401, refused
        assert refused["errorCode"] == "invalid_api_key"
        assert refused["activation"] == {"paid": False, "amountSats": 0}
        assert "API key was rejected and no payment was made" in refused["hint"]
        assert key not in json.dumps(refused)

    unmetered = await tools.renew(operator_key)
    assert unmetered["success"] is False and unmetered["statusCode"] == 409, unmetered
    assert unmetered["errorCode"] == "plan_not_renewable"
    assert unmetered["activation"] == {"paid": False, "amountSats": 0}
    assert "refused the request before any payment" in unmetered["hint"]

    assert [sats for sats, _ in tools.paid()] == [SIGNUP_SATS]  # the signup only
    assert [c.purpose for c in await _credits(db, made["merchantId"])] == ["signup"]
    me = (await http.get("/api/merchant/me", headers=auth(made["apiKey"]))).json()
    assert me["currentPeriodEnd"] == made["trialEndsAt"]  # the revoked key renewed nothing
