"""A merchant's own NWC wallet, end to end over a real Nostr relay.

The relay is nostr-relay from PyPI (the process ``tests/agent/test_relays.py`` starts on loopback;
its session fixture is reused here), the wallet service is the NIP-47 fake of
``tests/lightning/fakes/nwc_wallet.py``, a websocket client of that relay as a real one is. The
merchant connects the wallet the way the Lightning Enable MCP tool ``configure_receive`` does
(``PUT /api/merchant/nwc-connection``, then ``PUT /api/merchant/payment-provider``); its payment
invoices and L402 challenges are then made on the wallet, and payments are settled from the
wallet's ``payment_received`` notifications.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, select

from boltgate.lightning import bolt11
from boltgate.payment.models import Payment
from boltgate.webhook.models import Event
from tests.agent.test_relays import relay_url
from tests.helpers import auth
from tests.lightning.fakes.nwc_wallet import FakeWallet

pytestmark = pytest.mark.slow  # a relay process

FIXTURES = (relay_url,)  # the real relay: a nostr-relay process on 127.0.0.1, one per session


@pytest.fixture
async def wallet(relay_url: str) -> AsyncIterator[FakeWallet]:
    fake = FakeWallet([relay_url])
    await fake.start()
    try:
        await fake.connected(seconds=10)
        yield fake
    finally:
        await fake.stop()


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s"
        await asyncio.sleep(0.05)


def asked(wallet: FakeWallet, method: str, **params: object) -> int:
    """How many ``method`` requests (with at least these params) reached the wallet."""
    return sum(m == method and params.items() <= p.items() for m, p in wallet.requests)


async def configure_receive(client: httpx.AsyncClient, key: str, nwc_url: str) -> str:
    """What ``l402_producer action=configure_receive`` sends: save the wallet, then switch to it."""
    secret = nwc_url.rpartition("secret=")[2]
    saved = await client.put(
        "/api/merchant/nwc-connection", json={"nwcConnectionString": nwc_url}, headers=auth(key)
    )
    assert saved.status_code == 200, saved.text
    assert secret not in saved.text
    assert saved.json()["success"] is True and saved.json()["hasNwcConnection"] is True
    assert "secret=***" in saved.json()["connection"]
    switched = await client.put("/api/merchant/payment-provider", json={"provider": "nwc"}, headers=auth(key))
    assert switched.status_code == 200, switched.text
    assert secret not in switched.text
    [connection] = switched.json()["connections"]
    assert switched.json()["provider"] == "nwc" and connection["kind"] == "nwc"
    assert connection["id"] == saved.json()["connectionId"]
    return str(connection["id"])


async def test_payments_are_made_on_the_wallet_and_settled_from_its_notifications(
    client, merchant, wallet, db
):
    _, key = merchant
    ref = await configure_receive(client, key, wallet.url(wallet.connect_client()))
    me = await client.get("/api/merchant/me", headers=auth(key))
    assert me.json()["paymentProvider"] == "nwc"

    created = await client.post(
        "/api/payments",
        json={"orderId": f"nwc-{secrets.token_hex(4)}", "amount": 0.00001, "currency": "BTC"},
        headers=auth(key),
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    invoice = bolt11.decode(payment["lightningInvoice"])
    assert invoice.payee == wallet.node_key.public_key.format()  # the wallet's node, not the gateway's
    assert invoice.amount_msat == 1_000_000
    payment_hash = invoice.payment_hash.hex()
    assert wallet.invoices[payment_hash]["state"] == "pending"
    async with db.reading() as session:
        row = await session.scalar(select(Payment).where(Payment.id == payment["invoiceId"]))
    assert row is not None and row.backend_ref == ref

    # The gateway now watches the wallet: its notification stream is live once it has asked for the
    # recent transactions (a wallet without notifications would be polled instead), and the
    # catch-up that follows has asked about this payment, still open.
    await until(lambda: asked(wallet, "list_transactions") > 0)
    await until(lambda: asked(wallet, "lookup_invoice", payment_hash=payment_hash) > 0)
    streams = asked(wallet, "list_transactions")
    looked_up = asked(wallet, "lookup_invoice", payment_hash=payment_hash)
    status = (await client.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
    assert status["status"] == "unpaid"

    await wallet.settle(payment_hash)  # the customer pays; the wallet sends payment_received
    started = time.monotonic()
    while status["status"] != "paid" and time.monotonic() - started < 10:
        await asyncio.sleep(0.1)
        status = (await client.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
    assert status["status"] == "paid", status
    # Paid by the live stream: the notification, a hint, was confirmed by asking the wallet. The
    # stream was not restarted meanwhile (a restart replays the recent transactions, then catches up).
    assert asked(wallet, "lookup_invoice", payment_hash=payment_hash) > looked_up
    assert asked(wallet, "list_transactions") == streams

    async with db.reading() as session:
        completed = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.invoice_id == payment["invoiceId"], Event.type == "payment.completed")
        )
    assert completed == 1


async def test_an_l402_challenge_of_the_merchant_is_paid_to_the_wallet(client, merchant, wallet):
    merchant_id, key = merchant
    await configure_receive(client, key, wallet.url(wallet.connect_client()))
    body = {"resource": f"https://api.example/report/{secrets.token_hex(4)}", "priceSats": 7}
    minted = await client.post("/api/l402/challenges", json=body, headers=auth(key))
    assert minted.status_code == 201, minted.text
    challenge = minted.json()
    assert bolt11.decode(challenge["invoice"]).payee == wallet.node_key.public_key.format()
    assert wallet.invoices[challenge["paymentHash"]]["amount"] == 7_000

    await wallet.settle(challenge["paymentHash"])
    preimage = wallet.invoices[challenge["paymentHash"]]["preimage"]  # what the payer receives
    verified = await client.post(
        "/api/l402/challenges/verify",
        json={"macaroon": challenge["macaroon"], "preimage": preimage},
        headers=auth(key),
    )
    assert verified.json() == {
        "valid": True,
        "resource": body["resource"],
        "merchantId": merchant_id,
        "amountSats": 7,
        "paymentHash": challenge["paymentHash"],
    }


async def test_a_secret_the_wallet_does_not_know_is_refused_and_not_saved(client, merchant, wallet):
    _, key = merchant
    stranger = secrets.token_hex(32)
    answer = await client.put(
        "/api/merchant/nwc-connection",
        json={"nwcConnectionString": wallet.url(stranger)},
        headers=auth(key),
    )
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "backend_check_failed"
    assert "UNAUTHORIZED" in body["detail"]  # the wallet itself refused the unknown key
    assert stranger not in answer.text
    assert asked(wallet, "get_info") == 1
    listed = await client.get("/api/merchant/payment-provider", headers=auth(key))
    assert listed.json() == {"provider": "gateway", "connections": []}
    refused = await client.put("/api/merchant/payment-provider", json={"provider": "nwc"}, headers=auth(key))
    assert refused.status_code == 409 and refused.json()["error"] == "provider_not_configured"
