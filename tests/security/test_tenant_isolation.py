"""One merchant cannot read or act on another's refunds, nor collide with its idempotency keys
(the other domains' isolation tests live next to them: payments, webhooks, keys, products,
proxies, Shopify stores, L402 challenges and items, the dashboard)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.helpers import auth


async def paid(client: httpx.AsyncClient, key: str, order_id: str) -> dict[str, Any]:
    body = {"orderId": order_id, "amount": "0.0001", "currency": "BTC"}
    made = await client.post("/api/payments", json=body, headers=auth(key))
    assert made.status_code == 201, made.text
    payment = made.json()
    settled = await client.post("/api/dev/pay", json={"invoice": payment["lightningInvoice"]})
    assert settled.status_code == 200, settled.text
    for _ in range(200):
        payment = (await client.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
        if payment["status"] == "paid":
            return payment
        await asyncio.sleep(0.02)
    raise AssertionError(f"not paid: {payment}")


async def test_another_merchants_refunds_are_invisible_and_untouchable(client, make_merchant):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    payment = await paid(client, key_a, "refund-isolation")
    # a claim-link refund (no destination): pending, nothing is paid until a wallet claims it
    body = {"invoiceId": payment["invoiceId"], "amount": "0.00002", "currency": "BTC"}
    made = await client.post("/api/refunds", json=body, headers=auth(key_a))
    assert made.status_code == 201, made.text
    refund = made.json()
    assert refund["claim"] is not None
    theirs = await client.get(f"/api/refunds/{refund['refundId']}", headers=auth(key_b))
    assert theirs.status_code == 404 and refund["claim"]["lnurl"] not in theirs.text
    listed = await client.get("/api/refunds", params={"invoiceId": payment["invoiceId"]}, headers=auth(key_b))
    assert listed.status_code == 200 and listed.json()["total"] == 0
    assert refund["refundId"] not in (await client.get("/api/refunds", headers=auth(key_b))).text
    # B cannot refund A's payment either (the claim link would pay out of A's takings)
    stolen = await client.post("/api/refunds", json=body, headers=auth(key_b))
    assert stolen.status_code == 404 and stolen.json()["error"] == "payment_not_found"
    mine = await client.get(f"/api/refunds/{refund['refundId']}", headers=auth(key_a))
    assert mine.status_code == 200 and mine.json()["status"] == "pending"


async def test_idempotency_keys_are_per_merchant(client, make_merchant):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    shared = {"Idempotency-Key": "order-42-attempt-1"}
    body = {"orderId": "same-order", "amount": "5.00", "currency": "USD"}
    first = await client.post("/api/payments", json=body, headers={**auth(key_a), **shared})
    assert first.status_code == 201, first.text
    # B sends the same key and body: its own payment, never A's answer replayed
    second = await client.post("/api/payments", json=body, headers={**auth(key_b), **shared})
    assert second.status_code == 201, second.text
    assert second.json()["invoiceId"] != first.json()["invoiceId"]
    assert second.json()["lightningInvoice"] != first.json()["lightningInvoice"]
    again = await client.post("/api/payments", json=body, headers={**auth(key_a), **shared})
    assert again.status_code == 200 and again.json()["invoiceId"] == first.json()["invoiceId"]
