"""A merchant's own wallet: connections checked before they are saved, sealed, masked when shown;
invoices made on the wallet the merchant chose, and settlements found there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from boltgate.lightning import bolt11
from boltgate.merchant.models import MerchantBackend
from boltgate.payment.models import Payment
from tests.helpers import auth
from tests.lightning.fakes.phoenixd import FakePhoenixd


@pytest.fixture
async def phoenixd() -> AsyncIterator[FakePhoenixd]:
    fake = FakePhoenixd()
    await fake.start()
    yield fake
    await fake.stop()


def url_of(fake: FakePhoenixd, password: str | None = None) -> str:
    return f"phoenixd://:{password or fake.password}@{fake.url_host}?timeout=2"


async def choose(client, key: str, body: dict) -> object:
    return await client.put("/api/merchant/payment-provider", json=body, headers=auth(key))


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    return body


async def test_payments_are_made_and_settled_on_the_merchants_wallet(client, merchant, phoenixd, db):
    merchant_id, key = merchant
    chosen = await choose(client, key, {"provider": "phoenixd", "connectionUrl": url_of(phoenixd)})
    assert chosen.status_code == 200, chosen.text
    assert phoenixd.password not in chosen.text
    assert chosen.json()["provider"] == "phoenixd"
    [connection] = chosen.json()["connections"]
    assert connection["kind"] == "phoenixd" and ":***@" in connection["url"]
    me = await client.get("/api/merchant/me", headers=auth(key))
    assert me.json()["paymentProvider"] == "phoenixd"

    created = await client.post(
        "/api/payments",
        json={"orderId": "own-wallet-1", "amount": 0.000021, "currency": "BTC"},
        headers=auth(key),
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    invoice = bolt11.decode(payment["lightningInvoice"])
    assert invoice.payee.hex() == phoenixd.node_id  # made by the merchant's node, not the gateway's
    async with db.reading() as session:
        row = await session.scalar(select(Payment).where(Payment.id == payment["invoiceId"]))
    assert row is not None and row.backend_ref == connection["id"]

    await phoenixd.settle(invoice.payment_hash.hex())
    for _ in range(100):
        status = (await client.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
        if status["status"] == "paid":
            break
        await asyncio.sleep(0.1)
    assert status["status"] == "paid"

    # back to the gateway's backend: new invoices are the dev node's again
    back = await choose(client, key, {"provider": "gateway"})
    assert back.status_code == 200 and back.json()["provider"] == "gateway"
    again = await client.post(
        "/api/payments",
        json={"orderId": "own-wallet-2", "amount": 0.00001, "currency": "BTC"},
        headers=auth(key),
    )
    assert bolt11.decode(again.json()["lightningInvoice"]).payee.hex() != phoenixd.node_id


async def test_another_merchant_keeps_the_gateways_backend(client, merchant, make_merchant, phoenixd):
    _, key = merchant
    _, other = await make_merchant()
    assert (
        await choose(client, key, {"provider": "phoenixd", "connectionUrl": url_of(phoenixd)})
    ).status_code == 200
    created = await client.post(
        "/api/payments", json={"orderId": "theirs", "amount": 0.00001, "currency": "BTC"}, headers=auth(other)
    )
    assert bolt11.decode(created.json()["lightningInvoice"]).payee.hex() != phoenixd.node_id
    listed = await client.get("/api/merchant/payment-provider", headers=auth(other))
    assert listed.json() == {"provider": "gateway", "connections": []}


async def test_a_connection_that_does_not_answer_is_not_saved(client, merchant, phoenixd, db):
    merchant_id, key = merchant
    await phoenixd.set_fault("refused")
    body = problem(
        await choose(client, key, {"provider": "phoenixd", "connectionUrl": url_of(phoenixd)}),
        400,
        "backend_check_failed",
    )
    assert "phoenixd" in body["detail"] and phoenixd.password not in str(body)
    await phoenixd.set_fault("ok")
    wrong = problem(
        await choose(
            client, key, {"provider": "phoenixd", "connectionUrl": url_of(phoenixd, "not-the-password")}
        ),
        400,
        "backend_check_failed",
    )
    assert "not-the-password" not in str(wrong)
    async with db.reading() as session:
        rows = (
            await session.scalars(select(MerchantBackend).where(MerchantBackend.merchant_id == merchant_id))
        ).all()
    assert rows == []
    assert (await client.get("/api/merchant/me", headers=auth(key))).json()["paymentProvider"] == "gateway"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"provider": "phoenixd", "connectionUrl": "phoenixd://:hunter2secret@"},
            400,
            "invalid_connection_url",
        ),
        (
            {"provider": "phoenixd", "connectionUrl": "bogus://x?key=hunter2secret"},
            400,
            "invalid_connection_url",
        ),
        ({"provider": "lnbits", "connectionUrl": "dev://"}, 400, "invalid_connection_url"),
        (
            {"provider": "lnbits", "connectionUrl": "cln-rpc:///tmp/lightning-rpc"},
            400,
            "invalid_connection_url",
        ),
        ({"provider": "nwc"}, 409, "provider_not_configured"),
        ({"provider": "paypal"}, 400, "validation_error"),
        ({"provider": "gateway", "connectionUrl": "strike://?key=hunter2secret"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
    ],
)
async def test_bad_choices_are_refused_and_change_nothing(client, merchant, body, status, code):
    _, key = merchant
    answer = await choose(client, key, body)
    problem(answer, status, code)
    assert "hunter2secret" not in answer.text
    assert (await client.get("/api/merchant/payment-provider", headers=auth(key))).json()[
        "provider"
    ] == "gateway"


async def test_a_connection_of_another_kind_than_the_provider_is_refused(client, merchant, phoenixd):
    _, key = merchant
    problem(
        await choose(client, key, {"provider": "lnbits", "connectionUrl": url_of(phoenixd)}),
        400,
        "invalid_connection_url",
    )


@pytest.mark.parametrize(
    "value",
    ["phoenixd://:x@127.0.0.1:9740", "nostr+walletconnect://zz?relay=wss://r&secret=00", "", "x" * 5000],
)
async def test_the_nwc_route_takes_only_a_valid_nwc_string(client, merchant, value):
    _, key = merchant
    answer = await client.put(
        "/api/merchant/nwc-connection", json={"nwcConnectionString": value}, headers=auth(key)
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in {"invalid_connection_url", "validation_error"}


async def test_forgetting_an_nwc_connection_that_does_not_exist_is_404(client, merchant):
    _, key = merchant
    problem(
        await client.delete("/api/merchant/nwc-connection", headers=auth(key)), 404, "connection_not_found"
    )


async def test_provider_routes_need_an_api_key(client):
    assert (
        await client.put("/api/merchant/payment-provider", json={"provider": "gateway"})
    ).status_code == 401
    assert (await client.get("/api/merchant/payment-provider")).status_code == 401
    assert (
        await client.put("/api/merchant/nwc-connection", json={"nwcConnectionString": "x"})
    ).status_code == 401


async def test_merchant_connections_may_not_reach_private_addresses(temp_gateway, make_merchant, phoenixd):
    import httpx

    gateway = await temp_gateway(webhook_allow_private=False)
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        body = problem(
            await choose(http, key, {"provider": "phoenixd", "connectionUrl": url_of(phoenixd)}),
            400,
            "backend_check_failed",
        )
    assert "address" in body["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "phoenixd://:pw-secret@wallet.example:9740",
        "lnbits://lnbits.example?key=abcdef0123456789abcdef0123456789&tls=0",
        "nostr+walletconnect://" + "b" * 64 + "?relay=ws%3A%2F%2Frelay.example&secret=" + "1" * 64,
    ],
)
async def test_outside_dev_mode_credentials_must_travel_encrypted(tmp_path, url):
    from boltgate.errors import ValidationFailed
    from boltgate.lightning.registry import BackendEnv
    from boltgate.merchant import backends

    env = backends.merchant_env(BackendEnv(data_dir=tmp_path), (), allow_private=False)
    with pytest.raises(ValidationFailed) as caught:
        await backends.check(url, env, "connectionUrl", cleartext_ok=False)
    assert caught.value.code == "invalid_connection_url"
    assert "encrypted" in caught.value.detail and "pw-secret" not in caught.value.detail


async def test_a_guarded_connection_opens_no_socket_to_a_private_address(tmp_path, phoenixd):
    """The address rule holds for websockets too, not only for HTTP requests."""
    import base64

    from boltgate.lightning import ws
    from boltgate.lightning.base import LightningRejected
    from boltgate.lightning.registry import BackendEnv, open_backend
    from boltgate.merchant import backends

    socket_url = f"ws://{phoenixd.url_host}/websocket"
    with pytest.raises(LightningRejected) as caught:
        await ws.open_socket("phoenixd", socket_url, seconds=2, ping_interval=10, tls=False, guard=())
    assert "address" in str(caught.value)
    opened = await ws.open_socket(
        "phoenixd",
        socket_url,
        seconds=2,
        ping_interval=10,
        tls=False,
        guard=backends.ANYWHERE,
        headers={"Authorization": "Basic " + base64.b64encode(f":{phoenixd.password}".encode()).decode()},
    )
    await opened.close()
    env = backends.merchant_env(BackendEnv(data_dir=tmp_path), (), allow_private=False)
    backend = open_backend(url_of(phoenixd), env)
    try:
        with pytest.raises(LightningRejected):
            await backend.node_info()
    finally:
        await backend.close()
    allowed = open_backend(url_of(phoenixd), backends.merchant_env(BackendEnv(data_dir=tmp_path), (), True))
    try:
        assert (await allowed.node_info()).pubkey == phoenixd.node_id
    finally:
        await allowed.close()
