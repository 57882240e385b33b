"""NUL characters in paths or query strings: a clear 4xx before any database sees them
(PostgreSQL refuses NUL in text and would turn the request into a 500)."""

from __future__ import annotations

import pytest

from tests.helpers import auth


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/payments/inv_%00", 404, "not_found"),
        ("/api/payments/order/a%00b", 404, "not_found"),
        ("/api/webhooks/%00", 404, "not_found"),
        ("/api/checkout/products/prod_%00", 404, "not_found"),
        ("/api/payments?orderId=%00", 400, "malformed_request"),
        ("/api/checkout/products?active=%00", 400, "malformed_request"),
        ("/checkout/inv_%00/status", 404, "payment_not_found"),
        ("/checkout/inv_%00/events", 404, "payment_not_found"),
    ],
)
async def test_nul_is_a_clear_4xx(client, merchant, path, status, code):
    _, key = merchant
    response = await client.get(path, headers=auth(key))
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/payments",
            {"orderId": "nul-meta", "amount": 1, "currency": "USD", "metadata": {"a": "x\u0000y"}},
        ),
        (
            "/api/payments",
            {"orderId": "nul-meta-key", "amount": 1, "currency": "USD", "metadata": {"a\u0000": 1}},
        ),
        ("/api/payments", {"orderId": "nul\u0000order", "amount": 1, "currency": "USD"}),
        ("/api/checkout/products", {"name": "x", "price": 1, "currency": "USD", "description": "\u0000"}),
        ("/api/webhooks", {"url": "https://hooks.example/x", "description": "a\u0000b"}),
    ],
)
async def test_nul_in_json_bodies_never_500(client, merchant, path, body):
    _, key = merchant
    response = await client.post(path, json=body, headers=auth(key))
    assert response.status_code in (201, 400), response.text
    if response.status_code == 201 and path == "/api/payments":
        invoice = response.json()["invoiceId"]
        again = await client.get(f"/api/payments/{invoice}", headers=auth(key))
        assert again.json()["metadata"] == body["metadata"]  # stored and read back intact
