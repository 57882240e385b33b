"""Refunds to a Lightning address (LNURL-pay, resolved through the guarded client) and claim
links (LNURL-withdraw served by the gateway), with a real LNURL server and a wallet client."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from boltgate.kit.clock import utcnow
from boltgate.refund.models import Refund
from tests.conftest import free_port
from tests.helpers import auth
from tests.refund import wallet
from tests.refund.conftest import invoice, paid_payment, payinvoices, refund_until


async def test_a_refund_to_a_lightning_address_pays_the_invoice_it_serves(
    http, make_merchant, node, lnurl_server
):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    lnurl_server.mode = "ok"
    answer = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.00002500",
            "currency": "BTC",
            "lightningAddress": f"Alice@{lnurl_server.host}",
        },
        headers=auth(key),
    )
    assert answer.status_code == 201, answer.text
    refund = answer.json()
    assert (refund["status"], refund["type"], refund["amountSats"]) == ("completed", "lightning", 2_500)
    assert refund["lightningAddress"] == f"alice@{lnurl_server.host}"
    assert lnurl_server.asked[-1] == 2_500_000
    assert refund["paymentHash"] == lnurl_server.issued[-1]


async def test_lightning_addresses_that_misbehave_are_refused_and_nothing_is_paid(
    http, make_merchant, node, lnurl_server
):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    base = {"invoiceId": payment["invoiceId"], "amount": "0.00002", "currency": "BTC"}
    before = payinvoices(node)
    cases = [
        ("ok", f"nobody@127.0.0.1:{free_port()}", "lightning_address_unreachable"),
        ("garbage", None, "lightning_address_invalid"),
        ("redirect", None, "lightning_address_unreachable"),
        ("error", None, "lightning_address_refused"),
        ("tiny", None, "lightning_address_amount_out_of_range"),
        ("wrong_amount", None, "lightning_address_invalid_invoice"),
        ("wrong_hash", None, "lightning_address_invalid_invoice"),
        ("mainnet", None, "lightning_address_invalid_invoice"),
        ("ok", "not an address", "validation_error"),
    ]
    try:
        for mode, address, code in cases:
            lnurl_server.mode = mode
            target = address or f"bob@{lnurl_server.host}"
            answer = await http.post(
                "/api/refunds", json={**base, "lightningAddress": target}, headers=auth(key)
            )
            assert (answer.status_code, answer.json()["error"]) == (400, code), (mode, answer.text)
    finally:
        lnurl_server.mode = "ok"
    assert payinvoices(node) == before
    listed = (await http.get(f"/api/refunds?invoiceId={payment['invoiceId']}", headers=auth(key))).json()
    assert listed["total"] == 0


async def test_a_claim_link_is_paid_once_to_the_wallet_that_opens_it(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    answer = await http.post(
        "/api/refunds",
        json={"invoiceId": payment["invoiceId"], "amount": "0.00003", "currency": "BTC", "reason": "late"},
        headers=auth(key),
    )
    assert answer.status_code == 201, answer.text
    refund = answer.json()
    assert (refund["status"], refund["type"], refund["amountSats"]) == ("pending", "claim", 3_000)
    claim = refund["claim"]
    assert claim["lnurl"].startswith("LNURL") and claim["url"].startswith("lnurlw://")
    url = wallet.decode_lnurl(claim["lnurl"])
    assert claim["url"] == "lnurlw://" + url.split("://", 1)[1]

    status, request = await wallet.withdraw_request(claim["lnurl"])
    assert status == 200 and request["tag"] == "withdrawRequest"
    assert request["minWithdrawable"] == request["maxWithdrawable"] == 3_000_000
    before = payinvoices(node)
    status, wrong = await wallet.submit(request["callback"], request["k1"], invoice(node, 2_999))
    assert (status, wrong["status"], wrong["error"]) == (400, "ERROR", "invoice_amount_mismatch")
    status, bad_k1 = await wallet.submit(request["callback"], "00" * 32, invoice(node, 3_000))
    assert (status, bad_k1["error"]) == (400, "invalid_k1")
    assert payinvoices(node) == before

    status, ok = await wallet.submit(request["callback"], request["k1"], invoice(node, 3_000))
    assert (status, ok) == (200, {"status": "OK"})
    done = await refund_until(http, key, refund["refundId"], "completed")
    assert done["preimage"] and done["amountSats"] == 3_000
    status, again = await wallet.submit(request["callback"], request["k1"], invoice(node, 3_000))
    assert (status, again["error"]) == (410, "claim_used")
    status, reopened = await wallet.withdraw_request(claim["lnurl"])
    assert (status, reopened["status"]) == (410, "ERROR")
    assert payinvoices(node) == before + 1

    forged = url.rsplit("/", 1)[0] + "/" + "0" * 32
    async with httpx.AsyncClient() as client:
        assert (await client.get(forged)).status_code == 404


async def test_an_unclaimed_link_expires_and_frees_its_amount(http, make_merchant, node, db):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    made = await http.post(
        "/api/refunds",
        json={"invoiceId": payment["invoiceId"], "amount": "0.0001", "currency": "BTC"},
        headers=auth(key),
    )
    refund = made.json()
    async with db.writing() as session:  # as if the link's lifetime had passed
        await session.execute(
            update(Refund)
            .where(Refund.id == refund["refundId"])
            .values(claim_expires_at=utcnow() - timedelta(seconds=1))
        )
    failed = await refund_until(http, key, refund["refundId"], "failed")
    assert "expired" in failed["failureReason"]
    status, answer = await wallet.withdraw_request(refund["claim"]["lnurl"])
    assert status == 410 and answer["error"] == "claim_expired"
    again = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.0001",
            "currency": "BTC",
            "lightningInvoice": invoice(node, 10_000),
        },
        headers=auth(key),
    )
    assert again.status_code == 201 and again.json()["status"] == "completed", again.text
