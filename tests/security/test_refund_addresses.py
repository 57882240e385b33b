"""A refund to a Lightning address makes the gateway fetch a URL the customer chose: with private
addresses not allowed (the production default), an address served from loopback is refused when
connecting, and nothing is paid."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Gateway
from tests.helpers import auth
from tests.refund.conftest import paid_payment, payinvoices


@pytest.fixture
async def strict(temp_gateway, node) -> AsyncIterator[httpx.AsyncClient]:
    gateway: Gateway = await temp_gateway(
        lightning_url=f"phoenixd://:{node.password}@{node.url_host}?timeout=2&pay_timeout=1",
        webhook_allow_private=False,
    )
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15) as http:
        yield http


async def test_a_lightning_address_on_a_private_address_is_refused_and_nothing_is_paid(
    strict, make_merchant, node, lnurl_server
):
    _, key = await make_merchant()
    payment = await paid_payment(strict, key, node)
    before = payinvoices(node)
    lnurl_server.mode = "ok"
    for address in (f"alice@{lnurl_server.host}", f"alice@localhost:{lnurl_server.host.rsplit(':', 1)[1]}"):
        answer = await strict.post(
            "/api/refunds",
            json={
                "invoiceId": payment["invoiceId"],
                "amount": "0.00002",
                "currency": "BTC",
                "lightningAddress": address,
            },
            headers=auth(key),
        )
        assert (answer.status_code, answer.json()["error"]) == (400, "lightning_address_unreachable"), (
            answer.text
        )
    assert lnurl_server.asked == []  # the callback was never reached
    assert payinvoices(node) == before
