"""The dev-mode pay endpoint: settle by invoice or payment hash; bad input is a 400 problem."""

from __future__ import annotations

import hashlib

from tests.helpers import auth


async def test_pay_by_invoice_returns_the_preimage(client, merchant):
    _, key = merchant
    payment = (
        await client.post(
            "/api/payments", json={"orderId": "dev-pay", "amount": "1", "currency": "USD"}, headers=auth(key)
        )
    ).json()
    paid = await client.post("/api/dev/pay", json={"invoice": payment["lightningInvoice"]})
    assert paid.status_code == 200
    body = paid.json()
    assert body["status"] == "settled"
    assert hashlib.sha256(bytes.fromhex(body["preimage"])).hexdigest() == payment["paymentHash"]
    again = await client.post("/api/dev/pay", json={"paymentHash": payment["paymentHash"]})
    assert again.status_code == 409
    assert "already paid" in again.json()["detail"]


async def test_bad_input(client):
    cases = [
        ({}, "validation_error"),
        ({"invoice": "x", "paymentHash": "00" * 32}, "validation_error"),
        ({"paymentHash": "zz"}, "validation_error"),
        ({"invoice": "lnbcrt1notaninvoice"}, "invalid_invoice"),
    ]
    for body, code in cases:
        response = await client.post("/api/dev/pay", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == code
    unknown = await client.post("/api/dev/pay", json={"paymentHash": "00" * 32})
    assert unknown.status_code == 409
    missing = await client.post("/api/dev/payments/inv_nope/settle")
    assert missing.status_code == 404
