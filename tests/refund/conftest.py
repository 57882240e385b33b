"""Fixtures of the refund tests: a gateway on a fake phoenixd (which can pay foreign invoices),
a Lightning-address server, and helpers that make paid payments."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from boltgate.lightning import bolt11
from tests.conftest import Gateway, free_port
from tests.helpers import auth
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes.phoenixd import FakePhoenixd
from tests.refund.lnurl_server import LnurlPayServer


@pytest.fixture(scope="module")
async def node() -> AsyncIterator[FakePhoenixd]:
    fake = FakePhoenixd()
    fake.port = free_port()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(autouse=True)
async def _settled_by_default(request: pytest.FixtureRequest) -> None:
    if "node" in request.fixturenames:
        await request.getfixturevalue("node").set_pay_outcome("settled")


@pytest.fixture(scope="module")
async def lnurl_server(node: FakePhoenixd) -> AsyncIterator[LnurlPayServer]:
    server = LnurlPayServer(node)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def refund_gateway(make_gateway: Callable[..., Awaitable[Gateway]], node: FakePhoenixd) -> Gateway:
    return await make_gateway(
        lightning_url=f"phoenixd://:{node.password}@{node.url_host}?timeout=2&pay_timeout=1",
        refund_check_interval_seconds=0.2,
        refund_pay_wait_seconds=5,
    )


@pytest.fixture
async def http(refund_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=refund_gateway.base_url, timeout=15) as client:
        yield client


def payinvoices(node: FakePhoenixd) -> int:
    return sum(1 for _method, path, _type, _form in node.requests if path == "/payinvoice")


async def paid_payment(
    http: httpx.AsyncClient, key: str, node: FakePhoenixd, amount: Any = "0.0001", currency: str = "BTC"
) -> dict[str, Any]:
    """A payment (10,000 sats by default) the customer has paid."""
    body = {"amount": amount, "currency": currency, "orderId": secrets.token_hex(8)}
    made = await http.post("/api/payments", json=body, headers=auth(key))
    assert made.status_code == 201, made.text
    payment = made.json()
    await node.settle(bolt11.decode(payment["lightningInvoice"]).payment_hash.hex())
    for _ in range(200):
        payment = (await http.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
        if payment["status"] == "paid":
            return payment
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment not paid: {payment}")


def invoice(node: FakePhoenixd, sats: int, **kwargs: Any) -> str:
    """A foreign invoice the fake network can pay."""
    text, preimage = foreign_invoice(sats * 1000, **kwargs)
    node.learn(preimage)
    return text


async def refund_until(
    http: httpx.AsyncClient, key: str, refund_id: str, status: str, seconds: float = 10
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(int(seconds / 0.1)):
        body = (await http.get(f"/api/refunds/{refund_id}", headers=auth(key))).json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"refund never {status}: {body}")
