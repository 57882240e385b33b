"""Refunds over HTTP: full and partial refunds paid to an invoice, what remains, the payment
becoming refunded, idempotency, concurrent refunds, and every bad input refused with nothing paid."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time

import coincurve
import orjson
from sqlalchemy import select

from boltgate.lightning import bolt11
from boltgate.webhook.models import Event
from tests.helpers import auth
from tests.refund.conftest import invoice, paid_payment, payinvoices


async def event_bodies(db, invoice_id: str, kind: str) -> list[dict]:
    async with db.reading() as session:
        rows = await session.scalars(
            select(Event.body).where(Event.invoice_id == invoice_id, Event.type == kind)
        )
        return [orjson.loads(row) for row in rows]


async def test_a_full_refund_to_an_invoice_completes_and_the_payment_becomes_refunded(
    http, make_merchant, node, db
):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    before = payinvoices(node)
    answer = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": 0.0001,
            "currency": "BTC",
            "lightningInvoice": invoice(node, 10_000),
            "reason": "out of stock",
        },
        headers=auth(key),
    )
    assert answer.status_code == 201, answer.text
    refund = answer.json()
    assert refund["refundId"].startswith("ref_") and refund["invoiceId"] == payment["invoiceId"]
    assert (refund["status"], refund["type"], refund["amountSats"]) == ("completed", "lightning", 10_000)
    assert refund["amount"] == 0.0001 and refund["currency"] == "BTC" and refund["reason"] == "out of stock"
    assert hashlib.sha256(bytes.fromhex(refund["preimage"])).hexdigest() == refund["paymentHash"]
    assert answer.headers["Location"] == f"/api/refunds/{refund['refundId']}"
    assert payinvoices(node) == before + 1

    again = (await http.get(f"/api/refunds/{refund['refundId']}", headers=auth(key))).json()
    assert again == refund
    paid = (await http.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
    assert paid["status"] == "refunded"

    [completed] = await event_bodies(db, payment["invoiceId"], "refund.completed")
    assert completed["data"] == {
        "refundId": refund["refundId"],
        "invoiceId": payment["invoiceId"],
        "status": "completed",
        "amount": 0.0001,
        "currency": "BTC",
        "amountSats": 10_000,
        "type": "lightning",
        "completedAt": refund["completedAt"],
    }
    [refunded] = await event_bodies(db, payment["invoiceId"], "payment.refunded")
    assert refunded["data"]["status"] == "refunded"

    more = await http.post(
        "/api/refunds",
        json={"invoiceId": payment["invoiceId"], "amount": "0.00000001", "currency": "BTC"},
        headers=auth(key),
    )
    assert more.status_code == 409 and more.json()["error"] == "payment_not_refundable"


async def test_partial_refunds_convert_at_the_payments_rate_and_never_exceed_what_was_paid(
    http, make_merchant, node
):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node, "10.00", "EUR")  # 10,870 sats at 92,000 EUR/BTC
    assert payment["amountSats"] == 10_870
    first = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "3.33",
            "currency": "EUR",
            "lightningInvoice": invoice(node, 3_619),  # 3.33 / 10 * 10,870 = 3,619.71, rounded down
        },
        headers=auth(key),
    )
    assert first.status_code == 201, first.text
    assert first.json()["amountSats"] == 3_619 and first.json()["status"] == "completed"

    before = payinvoices(node)
    over = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "6.68",
            "currency": "EUR",
            "lightningInvoice": invoice(node, 7_261),
        },
        headers=auth(key),
    )
    assert over.status_code == 400 and over.json()["error"] == "refund_exceeds_remaining"
    assert "6.67 EUR" in over.json()["detail"]
    assert payinvoices(node) == before

    rest = await http.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "6.67",
            "currency": "EUR",
            "lightningInvoice": invoice(node, 7_250),
        },
        headers=auth(key),
    )
    assert rest.status_code == 201 and rest.json()["status"] == "completed", rest.text
    listed = (await http.get(f"/api/refunds?invoiceId={payment['invoiceId']}", headers=auth(key))).json()
    assert listed["total"] == 2
    assert [r["refundId"] for r in listed["items"]] == [rest.json()["refundId"], first.json()["refundId"]]
    paid = (await http.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
    assert paid["status"] == "refunded"


async def test_an_idempotency_key_returns_the_same_refund_and_refuses_another_body(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    body = {
        "invoiceId": payment["invoiceId"],
        "amount": "0.00004",
        "currency": "BTC",
        "lightningInvoice": invoice(node, 4_000),
    }
    headers = {**auth(key), "Idempotency-Key": "refund-1"}
    before = payinvoices(node)
    first = await http.post("/api/refunds", json=body, headers=headers)
    again = await http.post("/api/refunds", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["refundId"] == first.json()["refundId"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await http.post("/api/refunds", json={**body, "amount": "0.00003"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    assert payinvoices(node) == before + 1


async def test_concurrent_refunds_of_the_whole_amount_pass_once(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    bodies = [
        {
            "invoiceId": payment["invoiceId"],
            "amount": "0.0001",
            "currency": "BTC",
            "lightningInvoice": invoice(node, 10_000),
        }
        for _ in range(6)
    ]
    before = payinvoices(node)
    answers = await asyncio.gather(*(http.post("/api/refunds", json=b, headers=auth(key)) for b in bodies))
    assert [a.status_code for a in answers].count(201) == 1, [a.text for a in answers]
    # a loser that arrives while the winner is pending finds nothing remaining (400); one arriving
    # after the winner completed finds the payment already refunded (409)
    refused = {(a.status_code, a.json()["error"]) for a in answers if a.status_code != 201}
    assert refused <= {(400, "refund_exceeds_remaining"), (409, "payment_not_refundable")}, refused
    assert payinvoices(node) == before + 1


def _expired_invoice(sats: int) -> str:
    return bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency="bcrt",
        payment_hash=secrets.token_bytes(32),
        payment_secret=secrets.token_bytes(32),
        amount_msat=sats * 1000,
        timestamp=int(time.time()) - 3600,
        description="old",
        expiry=3630,  # 30 s left: less than the 60 s a refund needs
    )


async def test_bad_input_is_refused_and_nothing_is_paid(http, make_merchant, node):
    _, key = await make_merchant()
    _, other_key = await make_merchant()
    payment = await paid_payment(http, key, node)
    theirs = await paid_payment(http, other_key, node)
    order = {"amount": 0.0001, "currency": "BTC", "orderId": "unpaid"}
    unpaid = (await http.post("/api/payments", json=order, headers=auth(key))).json()
    good = {"invoiceId": payment["invoiceId"], "amount": "0.00005", "currency": "BTC"}
    inv = invoice(node, 5_000)
    cases = [
        ({**good, "amount": "0.00011", "lightningInvoice": inv}, 400, "refund_exceeds_remaining"),
        ({**good, "amount": 0, "lightningInvoice": inv}, 400, "validation_error"),
        ({**good, "amount": "-1", "lightningInvoice": inv}, 400, "validation_error"),
        ({**good, "amount": "0.000000001", "lightningInvoice": inv}, 400, "validation_error"),
        ({**good, "currency": "USD", "lightningInvoice": inv}, 400, "currency_mismatch"),
        ({**good, "currency": "XXX", "lightningInvoice": inv}, 400, "validation_error"),
        ({**good, "lightningInvoice": inv, "bitcoinAddress": "bcrt1qxyz"}, 400, "too_many_destinations"),
        (
            {**good, "bitcoinAddress": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"},
            400,
            "onchain_refunds_unsupported",
        ),
        ({**good, "lightningInvoice": _expired_invoice(5_000)}, 400, "invoice_expired"),
        ({**good, "lightningInvoice": invoice(node, 4_999)}, 400, "invoice_amount_mismatch"),
        ({**good, "lightningInvoice": invoice(node, 5_000, network="mainnet")}, 400, "wrong_network"),
        ({**good, "lightningInvoice": "lnbcrt1notaninvoice"}, 400, "invalid_invoice"),
        ({**good, "lightningInvoice": inv[:-3] + "qqq"}, 400, "invalid_invoice"),
        (
            {**good, "amount": "0.0001", "lightningInvoice": payment["lightningInvoice"]},
            400,
            "invoice_not_payable",
        ),
        ({**good, "lightningInvoice": inv, "reason": "x" * 501}, 400, "validation_error"),
        ({**good, "invoiceId": "inv_doesnotexist", "lightningInvoice": inv}, 404, "payment_not_found"),
        ({**good, "invoiceId": theirs["invoiceId"], "lightningInvoice": inv}, 404, "payment_not_found"),
        ({**good, "invoiceId": unpaid["invoiceId"], "lightningInvoice": inv}, 409, "payment_not_refundable"),
    ]
    amountless = bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency="bcrt",
        payment_hash=secrets.token_bytes(32),
        payment_secret=secrets.token_bytes(32),
        amount_msat=None,
        timestamp=int(time.time()),
        description="any amount",
        expiry=3600,
    )
    cases.append(({**good, "lightningInvoice": amountless}, 400, "invoice_amountless"))
    before = payinvoices(node)
    for body, status, code in cases:
        answer = await http.post("/api/refunds", json=body, headers=auth(key))
        assert (answer.status_code, answer.json().get("error")) == (status, code), (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert payinvoices(node) == before
    listed = (await http.get(f"/api/refunds?invoiceId={payment['invoiceId']}", headers=auth(key))).json()
    assert listed["total"] == 0
    assert (await http.get("/api/refunds/ref_nope", headers=auth(key))).status_code == 404
    assert (await http.get("/api/refunds", headers=auth("le_live_wrong"))).status_code == 401
