"""Review findings on refunds (fixed): 500s on odd Lightning addresses and ids, the gateway's own
invoices as destinations, a prefixed invoice accepted but unpayable, the claim tag in logs, a
trickling server holding a request, one code with two statuses."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from boltgate.errors import ValidationFailed
from boltgate.lightning import bolt11
from boltgate.ops.logging import redact
from boltgate.refund import lnurl, service
from boltgate.refund.schemas import RefundCreate
from tests.conftest import DB_KIND
from tests.helpers import auth
from tests.lightning.fakes.phoenixd import FakePhoenixd
from tests.refund.conftest import invoice, paid_payment, payinvoices
from tests.refund.lnurl_server import LnurlPayServer


class OddLnurlServer(LnurlPayServer):
    """A Lightning-address server whose payRequest callback, or whose invoice text, is odd."""

    def __init__(self, node: FakePhoenixd) -> None:
        super().__init__(node)
        self.callback: str | None = None  # the payRequest's callback, as given
        self.prefix = ""  # put before the invoice the callback returns
        self.drip = 0  # > 0: the payRequest trickles out one byte every 0.4 s, this many bytes

    async def _dripping(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(self.drip):
            await response.write(b" ")
            await asyncio.sleep(0.4)
        await response.write(b"{}")
        return response

    async def _pay_request(self, request: web.Request) -> web.StreamResponse:
        if self.drip:
            return await self._dripping(request)
        if self.callback is None:
            return await super()._pay_request(request)
        body = {
            "tag": "payRequest",
            "callback": self.callback,
            "minSendable": 1000,
            "maxSendable": 10**11,
            "metadata": self.metadata,
        }
        return web.json_response(body)

    async def _callback(self, request: web.Request) -> web.Response:
        answer = await super()._callback(request)
        if not self.prefix:
            return answer
        assert answer.text is not None
        data = json.loads(answer.text)
        data["pr"] = self.prefix + data["pr"]
        return web.json_response(data)


@pytest.fixture(scope="module")
async def odd_server(node: FakePhoenixd) -> AsyncIterator[OddLnurlServer]:
    server = OddLnurlServer(node)
    await server.start()
    yield server
    await server.stop()


def problem(answer: Any) -> tuple[int, str | None, str]:
    return answer.status_code, answer.json().get("error"), answer.headers["content-type"]


async def test_a_lightning_address_httpx_cannot_parse_is_a_400_not_a_500(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    before = payinvoices(node)
    answer = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.00002",
            "currency": "BTC",
            "lightningAddress": "bob@999.1.1.1",  # passes LIGHTNING_ADDRESS
        },
        headers=auth(key),
    )
    assert payinvoices(node) == before
    status, code, content_type = problem(answer)
    assert status == 400 and code == "lightning_address_invalid", answer.text
    assert content_type == "application/problem+json"


@pytest.mark.parametrize("callback", ["https://[::1/callback", "https://999.1.1.1/callback"])
async def test_a_callback_the_gateway_cannot_parse_is_a_400_not_a_500(
    http, make_merchant, node, odd_server, callback
):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    before = payinvoices(node)
    odd_server.callback = callback
    try:
        answer = await http.post(
            "/api/refunds",
            json={
                "invoiceId": payment["invoiceId"],
                "amount": "0.00002",
                "currency": "BTC",
                "lightningAddress": f"bob@{odd_server.host}",
            },
            headers=auth(key),
        )
    finally:
        odd_server.callback = None
    assert payinvoices(node) == before
    status, code, content_type = problem(answer)
    assert status == 400 and code == "lightning_address_invalid", answer.text
    assert content_type == "application/problem+json"


@pytest.mark.skipif(DB_KIND != "postgresql", reason="SQLite stores a NUL: the bug is PostgreSQL's 500")
async def test_an_invoice_id_with_a_nul_is_refused_not_a_500(http, make_merchant, node):
    _, key = await make_merchant()
    answer = await http.post(
        "/api/refunds",
        json={"invoiceId": "inv_\u0000x", "amount": "0.00002", "currency": "BTC"},
        headers=auth(key),
    )
    status, _code, content_type = problem(answer)
    assert status in (400, 404), answer.text
    assert content_type == "application/problem+json"


async def test_a_lightning_prefixed_invoice_from_an_address_is_paid_as_checked(
    http, make_merchant, node, odd_server
):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    odd_server.prefix = "lightning:"
    try:
        answer = await http.post(
            "/api/refunds",
            json={
                "invoiceId": payment["invoiceId"],
                "amount": "0.00002",
                "currency": "BTC",
                "lightningAddress": f"bob@{odd_server.host}",
            },
            headers=auth(key),
        )
    finally:
        odd_server.prefix = ""
    assert answer.status_code in (201, 400), answer.text
    if answer.status_code == 201:  # accepted: then it must be paid, not stuck or failed
        assert answer.json()["status"] == "completed", answer.text


async def test_an_l402_invoice_of_the_gateway_is_not_a_refund_destination(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    minted = await http.post(
        "/api/l402/challenges", json={"resource": "report-1", "priceSats": 5_000}, headers=auth(key)
    )
    assert minted.status_code in (200, 201), minted.text
    own = minted.json()["invoice"]
    assert bolt11.decode(own).amount_msat == 5_000_000
    before = payinvoices(node)
    answer = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.00005",
            "currency": "BTC",
            "lightningInvoice": own,
        },
        headers=auth(key),
    )
    assert problem(answer)[:2] == (400, "invoice_not_payable"), answer.text
    assert payinvoices(node) == before


async def test_invoice_not_payable_has_one_status(http, make_merchant, node, refund_gateway):
    merchant_id, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    text = invoice(node, 2_000)
    first = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.00002",
            "currency": "BTC",
            "lightningInvoice": text,
        },
        headers=auth(key),
    )
    assert first.status_code == 201, first.text
    # the second request lost the race: check_new_hash passed before the first was committed
    ctx = refund_gateway.ctx
    body = RefundCreate.model_validate(
        {"invoiceId": payment["invoiceId"], "amount": "0.00002", "currency": "BTC", "lightningInvoice": text}
    )
    target = service.Destination(
        type="lightning", payment_request=text, payment_hash=bolt11.decode(text).payment_hash.hex()
    )
    with pytest.raises(ValidationFailed):
        await service.insert(ctx.db, merchant_id, body, None, target, ctx.settings, ctx.clock())


def test_a_claim_links_tag_is_redacted_from_log_lines():
    tag = lnurl.claim_tag(b"k" * 32, "ref_abc")
    line = redact(None, "request", {"event": "request", "path": f"/lnurlw/ref_abc/{tag}/callback"})
    assert tag not in str(line)


async def test_a_trickling_lightning_address_server_is_cut_off_at_the_timeout(
    make_gateway, make_merchant, node, odd_server
):
    gateway = await make_gateway(
        lightning_url=f"phoenixd://:{node.password}@{node.url_host}?timeout=2&pay_timeout=1",
        refund_lnurl_timeout_seconds=1,
    )
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        payment = await paid_payment(http, key, node)
        odd_server.drip = 15  # 6 s in all, never 1 s without a byte
        try:
            started = time.monotonic()
            answer = await http.post(
                "/api/refunds",
                json={
                    "invoiceId": payment["invoiceId"],
                    "amount": "0.00002",
                    "currency": "BTC",
                    "lightningAddress": f"bob@{odd_server.host}",
                },
                headers=auth(key),
            )
            elapsed = time.monotonic() - started
        finally:
            odd_server.drip = 0
    assert elapsed < 3, f"answered after {elapsed:.1f} s"
    assert problem(answer)[:2] == (400, "lightning_address_unreachable"), answer.text
