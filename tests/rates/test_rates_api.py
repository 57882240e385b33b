"""GET /api/rates, and what a payment does when no rate can be had."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

import httpx

from boltgate.rates import RateProviderError, RateService
from tests.helpers import auth


async def test_rates_endpoint_lists_the_configured_rates(client):
    data = (await client.get("/api/rates")).json()
    assert data["base"] == "BTC"
    rates = {item["currency"]: item for item in data["items"]}
    assert rates["USD"]["rate"] == "100000"
    assert rates["USD"]["source"] == "fixed"
    assert rates["EUR"]["rate"] == "92000"
    assert data["total"] == len(data["items"])


class DownProvider:
    name = "down"

    async def fetch(self, currencies: Collection[str]) -> dict[str, Decimal]:
        raise RateProviderError("down", "connection refused")


async def test_payment_without_a_rate_is_503_and_writes_nothing(make_gateway, make_merchant):
    gateway = await make_gateway()
    gateway.ctx.rates = RateService([DownProvider()], ttl_seconds=60, stale_max_seconds=60)
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post(
            "/api/payments",
            json={"orderId": "no-rate", "amount": "5.00", "currency": "USD"},
            headers=auth(key),
        )
        assert response.status_code == 503
        assert response.json()["error"] == "rate_unavailable"
        assert (await http.get("/api/payments/order/no-rate", headers=auth(key))).status_code == 404
        # BTC needs no rate and still works
        btc = await http.post(
            "/api/payments", json={"orderId": "btc", "amount": "0.0001", "currency": "BTC"}, headers=auth(key)
        )
        assert btc.status_code == 201


async def test_dev_endpoints_do_not_exist_when_disabled(make_gateway):
    gateway = await make_gateway(dev_endpoints=False)
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/api/dev/pay", json={"paymentHash": "00" * 32})
        assert response.status_code == 404
        schema = (await http.get("/openapi.json")).json()
        assert not any(path.startswith("/api/dev") for path in schema["paths"])
