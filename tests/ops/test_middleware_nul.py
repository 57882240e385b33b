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
