"""What the backend answers decides a refund, and nothing is ever paid twice: FAILED fails it
(the amount is refundable again), PENDING and a lost answer leave it pending until the background
check finds the outcome with ``lookup_payment``; a payment that never left fails only after the
backend confirms it has no record of it."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import select

from boltgate.webhook.models import Event
from tests.helpers import auth
from tests.refund.conftest import invoice, paid_payment, payinvoices, refund_until


def body(payment: dict, node, sats: int = 10_000) -> dict:
    return {
        "invoiceId": payment["invoiceId"],
        "amount": f"{sats / 1e8:.8f}",
        "currency": "BTC",
        "lightningInvoice": invoice(node, sats),
    }


async def test_a_failed_payment_fails_the_refund_and_frees_its_amount(http, make_merchant, node, db):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    await node.set_pay_outcome("failed")
    answer = await http.post("/api/refunds", json=body(payment, node), headers=auth(key))
    assert answer.status_code == 201, answer.text
    failed = answer.json()
    assert failed["status"] == "failed" and "no route" in failed["failureReason"]
    async with db.reading() as session:
        [event] = await session.scalars(
            select(Event.body).where(Event.invoice_id == payment["invoiceId"], Event.type == "refund.failed")
        )
    data = orjson.loads(event)["data"]
    assert (data["refundId"], data["status"], data["reason"]) == (
        failed["refundId"],
        "failed",
        failed["failureReason"],
    )

    await node.set_pay_outcome("settled")
    again = await http.post("/api/refunds", json=body(payment, node), headers=auth(key))
    assert again.status_code == 201 and again.json()["status"] == "completed", again.text


async def test_a_payment_in_flight_stays_pending_and_is_completed_by_the_check(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    await node.set_pay_outcome("pending")
    before = payinvoices(node)
    answer = await http.post("/api/refunds", json=body(payment, node), headers=auth(key))
    assert answer.status_code == 201 and answer.json()["status"] == "pending", answer.text
    refund = answer.json()
    # the amount stays reserved while it is in flight
    more = await http.post("/api/refunds", json=body(payment, node, 1), headers=auth(key))
    assert more.status_code == 400 and more.json()["error"] == "refund_exceeds_remaining"
    await asyncio.sleep(0.6)  # a few background checks: the backend still says pending
    assert (await http.get(f"/api/refunds/{refund['refundId']}", headers=auth(key))).json()[
        "status"
    ] == "pending"

    [sent] = [p for p in node.outgoing.values() if p.payment_hash == refund["paymentHash"]]
    sent.status, sent.preimage, sent.completed_at = "succeeded", node.preimages[refund["paymentHash"]], 1
    done = await refund_until(http, key, refund["refundId"], "completed")
    assert done["preimage"] == sent.preimage
    assert payinvoices(node) == before + 1  # asked once, looked up after
    paid = (await http.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
    assert paid["status"] == "refunded"


async def test_a_lost_answer_is_looked_up_never_paid_again(http, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    await node.set_pay_outcome("drop")  # paid, then the connection is cut before the answer
    before = payinvoices(node)
    answer = await http.post("/api/refunds", json=body(payment, node), headers=auth(key))
    assert answer.status_code == 201, answer.text
    refund = answer.json()
    if refund["status"] != "completed":  # the backend's own lookup may already have told
        assert refund["status"] == "pending"
        refund = await refund_until(http, key, refund["refundId"], "completed")
    assert refund["preimage"]
    assert payinvoices(node) == before + 1


async def test_a_payment_that_never_left_fails_once_the_backend_confirms(http, make_merchant, node, db):
    _, key = await make_merchant()
    payment = await paid_payment(http, key, node)
    before = payinvoices(node)
    await node.set_fault("refused")
    try:
        answer = await http.post("/api/refunds", json=body(payment, node), headers=auth(key))
        assert answer.status_code == 201 and answer.json()["status"] == "pending", answer.text
        refund = answer.json()
        await asyncio.sleep(0.5)  # the backend cannot be asked: nothing is concluded
        current = (await http.get(f"/api/refunds/{refund['refundId']}", headers=auth(key))).json()
        assert current["status"] == "pending"
    finally:
        await node.set_fault("ok")
    failed = await refund_until(http, key, refund["refundId"], "failed")
    assert "nothing was sent" in failed["failureReason"]
    assert payinvoices(node) == before
    # the amount is refundable again
    again = await http.post("/api/refunds", json=body(payment, node), headers=auth(key))
    assert again.status_code == 201 and again.json()["status"] == "completed", again.text
