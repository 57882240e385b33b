"""Health, readiness, metrics, request ids, rate limits and logs without secrets."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import auth


async def test_health_and_readiness(client, gateway):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["lightning"] == "dev"
    assert ready["nodePubkey"] == (await gateway.ctx.backend.node_info()).pubkey


async def test_metrics_count_requests_by_route(client, merchant):
    _, key = merchant
    await client.get("/api/payments", headers=auth(key))
    text = (await client.get("/metrics")).text
    assert 'boltgate_http_requests_total{method="GET",route="/api/payments",status="200"}' in text
    assert "boltgate_http_request_seconds_bucket" in text


async def test_request_id_is_echoed_or_made(client):
    given = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert len(made.headers["x-request-id"]) == 32


async def test_rate_limit_is_429_with_retry_after(make_gateway, make_merchant):
    gateway = await make_gateway(rate_limit="3/minute")
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        codes = [(await http.get("/api/payments", headers=auth(key))).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await http.get("/api/payments", headers=auth(key))
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # another merchant has its own budget
        _, other = await make_merchant()
        assert (await http.get("/api/payments", headers=auth(other))).status_code == 200


async def test_wrong_api_keys_are_limited_per_client_address(make_gateway, make_merchant):
    gateway = await make_gateway(auth_failure_rate_limit="3/minute")
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        wrong = [
            (await http.get("/api/payments", headers=auth(f"le_live_guess{i}"))).status_code for i in range(3)
        ]
        missing = await http.get("/api/payments")
        assert wrong == [401, 401, 401] and missing.status_code == 429
        assert missing.json()["error"] == "rate_limited" and int(missing.headers["retry-after"]) >= 1
        # only failures count: a valid key from the same address is served
        assert (await http.get("/api/payments", headers=auth(key))).status_code == 200


async def test_public_checkout_routes_are_limited_per_client_address(make_gateway, make_merchant):
    gateway = await make_gateway(rate_limit="4/minute")
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        made = await http.post(
            "/api/payments",
            json={"orderId": "poll-1", "amount": "1.00", "currency": "USD"},
            headers=auth(key),
        )
        invoice = made.json()["invoiceId"]
        codes = [(await http.get(f"/checkout/{invoice}/status")).status_code for _ in range(3)]
        page = await http.get(f"/checkout/{invoice}")
        limited = await http.get(f"/checkout/{invoice}/status")
        assert codes == [200, 200, 200] and page.status_code == 200
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        stream = await http.get(f"/checkout/{invoice}/events")
        assert stream.status_code == 429


async def test_rate_limit_shared_through_redis(make_gateway, make_merchant):
    import redis.asyncio as aioredis

    try:
        probe = aioredis.Redis(host="127.0.0.1", port=6379)
        await probe.ping()
        await probe.aclose()
    except Exception:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    one = await make_gateway(rate_limit="4/minute", redis_url="redis://127.0.0.1:6379/0")
    two = await make_gateway(rate_limit="4/minute", redis_url="redis://127.0.0.1:6379/0")
    _, key = await make_merchant()
    codes = []
    async with httpx.AsyncClient() as http:
        for base in (one.base_url, two.base_url) * 3:
            codes.append((await http.get(base + "/api/payments", headers=auth(key))).status_code)
    assert codes.count(200) == 4 and codes.count(429) == 2


def test_redaction_processor_masks_secret_keys_and_values():
    from boltgate.ops.logging import redact

    key = "le_live_" + "A1" * 20
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "api_key": key,
            "note": f"key {key}",
            "nested": {"secret": "s"},
            "auth": "L402 abc:def",
        },
    )
    assert key not in str(event)
    assert event["api_key"] == "[redacted]"
    assert event["nested"]["secret"] == "[redacted]"
    assert "abc:def" not in event["auth"]


async def test_openapi_lists_every_route_with_its_problem_responses(client):
    schema = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path.startswith("/api/"):
                problem_statuses = [code for code in responses if code[0] in "45"]
                assert problem_statuses, (method, path)
                for code in problem_statuses:
                    assert "application/problem+json" in responses[code]["content"], (method, path, code)
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"
    # one operationId per operation, as OpenAPI requires (the paid proxy's route serves seven methods)
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert schema["paths"]["/api/payments"]["post"]["security"] == [{"ApiKeyAuth": []}]
    assert "security" not in schema["paths"]["/api/rates"]["get"]
    payments = schema["paths"]["/api/payments"]["post"]["responses"]
    assert {"201", "200", "400", "401", "409", "429"} <= set(payments)
