"""The paid proxy over real HTTP: 402 then forwarding, what crosses and what does not, credential
scope, call limits, upstream failures, unsafe paths, and streaming without holding bodies."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import auth
from tests.l402.test_guard import modern_credential

L402_LINE = re.compile(r'^L402 macaroon="([A-Za-z0-9+/=]+)", invoice="(lnbcrt[0-9a-z]+)"$')
FORECAST = {"endpointId": "forecast", "path": "/forecast/{city}", "httpMethod": "GET", "basePriceSats": 21}
REPORT = {"endpointId": "report", "path": "/report/*", "httpMethod": "*", "basePriceSats": 50}
FREE = {"endpointId": "health", "path": "/health", "httpMethod": "GET", "basePriceSats": 0}


async def pay_402(client: httpx.AsyncClient, response: httpx.Response) -> tuple[str, str, str]:
    """(L402 authorization value, Payment challenge line, preimage) after paying a 402's invoice."""
    assert response.status_code == 402, response.text
    lines = response.headers.get_list("www-authenticate")
    found = L402_LINE.match(lines[0])
    assert found and lines[1].startswith("Payment "), lines
    paid = await client.post("/api/dev/pay", json={"invoice": found.group(2)})
    assert paid.status_code == 200, paid.text
    preimage = paid.json()["preimage"]
    return f"L402 {found.group(1)}:{preimage}", lines[1], preimage


async def paid_token(client: httpx.AsyncClient, url: str, method: str = "GET") -> str:
    first = await client.request(method, url)
    token, _, _ = await pay_402(client, first)
    return token


async def raw_request(base_url: str, target: str, method: str = "GET", extra: str = "") -> tuple[int, bytes]:
    """Send a request line exactly as written (httpx would normalise ``..`` and escapes)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_unpaid_402_then_paid_call_is_forwarded(pclient, merchant, make_proxy, upstream):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    url = proxy["proxyUrl"] + "/forecast/paris?units=metric&lang=fr"
    before = len(upstream.requests)
    first = await pclient.get(url)
    assert first.json()["priceSats"] == 21 and first.json()["error"] == "payment_required"
    assert len(upstream.requests) == before  # nothing reached the upstream unpaid
    token, _, _ = await pay_402(pclient, first)
    headers = {
        "Authorization": token,
        "X-API-Key": key,
        "Cookie": "session=gateway-secret",
        "Connection": "X-Drop-Me",
        "X-Drop-Me": "1",
        "X-Keep-Me": "2",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "spoofed.example",
        "User-Agent": "agent/1.0",
    }
    answer = await pclient.get(url, headers=headers)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    got = {name: value for name, value in seen["headers"]}
    assert seen["method"] == "GET" and seen["path"] == "/forecast/paris"
    assert seen["query"] == "units=metric&lang=fr"
    for secret in ("authorization", "x-api-key", "cookie", "x-drop-me"):
        assert secret not in got, secret
    assert key not in answer.text and "gateway-secret" not in answer.text
    assert got["x-keep-me"] == "2" and got["user-agent"] == "agent/1.0"
    # the test client is on loopback, a trusted front proxy for the server: its X-Forwarded-For
    # names the client, and the upstream gets that one address (never a client-made chain)
    assert got["x-forwarded-for"] == "203.0.113.9"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-forwarded-host"] == pclient.base_url.host + f":{pclient.base_url.port}"
    assert got["host"] == upstream.base_url.removeprefix("http://")
    assert answer.headers["content-security-policy"] == "sandbox"
    assert answer.headers["payment-receipt"]
    # the token is reusable on every path of the same endpoint
    other = await pclient.get(proxy["proxyUrl"] + "/forecast/london", headers={"Authorization": token})
    assert other.status_code == 200 and other.json()["path"] == "/forecast/london"
    assert dict(other.json()["headers"])["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
async def test_every_method_is_forwarded_with_its_body(pclient, merchant, make_proxy, method):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)  # free pass-through
    body = b"" if method in ("GET", "HEAD", "OPTIONS") else b'{"n": 1}'
    answer = await pclient.request(method, proxy["proxyUrl"] + "/items/7", content=body or None)
    assert answer.status_code == 200, answer.text
    if method == "HEAD":
        assert answer.content == b"" and int(answer.headers["content-length"]) > 0
        return
    seen = answer.json()
    assert seen["method"] == method and seen["path"] == "/items/7" and seen["bodySize"] == len(body)


async def test_proxy_root_and_encoded_paths_reach_the_upstream_as_sent(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    root = await pclient.get(proxy["proxyUrl"])
    assert root.status_code == 200 and root.json()["path"] == "/"
    status, body = await raw_request(
        str(pclient.base_url), proxy["proxyUrl"] + "/city/New%20York/%C3%A9t%C3%A9?q=a%26b"
    )
    assert status == 200, body
    assert b'"rawPath":"/city/New%20York/%C3%A9t%C3%A9"' in body and b'"query":"q=a%26b"' in body


async def test_credential_scope_proxy_and_endpoint(pclient, merchant, make_proxy):
    _, key = merchant
    proxy_a = await make_proxy(key, endpoints=[FORECAST, REPORT])
    proxy_b = await make_proxy(key, endpoints=[FORECAST])
    forecast_token = await paid_token(pclient, proxy_a["proxyUrl"] + "/forecast/rome")
    assert (
        await pclient.get(proxy_a["proxyUrl"] + "/forecast/oslo", headers={"Authorization": forecast_token})
    ).status_code == 200
    # another proxy, even with the same endpoint and price: a fresh 402
    refused = await pclient.get(
        proxy_b["proxyUrl"] + "/forecast/rome", headers={"Authorization": forecast_token}
    )
    assert refused.status_code == 402 and "not granted" in refused.json()["detail"]
    # a pricier endpoint of the same proxy, and the default-priced rest: refused too
    pricier = await pclient.post(
        proxy_a["proxyUrl"] + "/report/2026/q3", headers={"Authorization": forecast_token}
    )
    assert pricier.status_code == 402 and pricier.json()["priceSats"] == 50
    rest = await pclient.get(proxy_a["proxyUrl"] + "/other", headers={"Authorization": forecast_token})
    assert rest.status_code == 402 and rest.json()["priceSats"] == 5
    # a token for the report endpoint opens any method and depth under /report/
    report_token = await paid_token(pclient, proxy_a["proxyUrl"] + "/report/a", method="POST")
    for method, path in (("GET", "/report/a"), ("DELETE", "/report/b/c")):
        opened = await pclient.request(
            method, proxy_a["proxyUrl"] + path, headers={"Authorization": report_token}
        )
        assert opened.status_code == 200, (method, path, opened.text)


async def test_free_endpoint_in_a_paid_proxy(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FREE])
    assert (await pclient.get(proxy["proxyUrl"] + "/health")).status_code == 200
    assert (await pclient.get(proxy["proxyUrl"] + "/health/")).status_code == 200
    assert (await pclient.post(proxy["proxyUrl"] + "/health")).status_code == 402  # GET only


async def test_calls_per_token_and_token_lifetime(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, maxCallsPerToken=2, tokenTtlSeconds=3600)
    first = await pclient.get(proxy["proxyUrl"] + "/x")
    token, _, _ = await pay_402(pclient, first)
    from boltgate.l402 import macaroon

    mac = macaroon.decode(token.split(" ", 1)[1].rsplit(":", 1)[0])
    until = [c for c in mac.caveats if c.startswith(b"boltgate_valid_until=")]
    assert until and abs(int(until[0].split(b"=")[1]) - (time.time() + 3600)) < 60
    for _ in range(2):
        assert (
            await pclient.get(proxy["proxyUrl"] + "/x", headers={"Authorization": token})
        ).status_code == 200
    third = await pclient.get(proxy["proxyUrl"] + "/x", headers={"Authorization": token})
    assert third.status_code == 402 and "2 calls" in third.json()["detail"]


async def test_payment_scheme_credential_is_single_use(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key)
    first = await pclient.get(proxy["proxyUrl"] + "/y")
    _, line, preimage = await pay_402(pclient, first)
    credential = modern_credential(line, preimage)
    ok = await pclient.get(proxy["proxyUrl"] + "/y", headers={"Authorization": credential})
    assert ok.status_code == 200 and ok.headers["payment-receipt"]
    again = await pclient.get(proxy["proxyUrl"] + "/y", headers={"Authorization": credential})
    assert again.status_code == 402 and "already used" in again.json()["detail"]


async def test_upstream_answers_pass_through_unchanged(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    for status in (400, 404, 500, 503):
        answer = await pclient.get(proxy["proxyUrl"] + f"/status/{status}")
        assert answer.status_code == status
        assert answer.json() == {"upstream": "error body"} and answer.headers["x-upstream"] == "yes"
        assert answer.headers["content-type"] == "application/json"
    moved = await pclient.get(proxy["proxyUrl"] + "/redirect")  # never followed for the client
    assert moved.status_code == 302 and moved.headers["location"] == "https://elsewhere.example/x"
    cookie = await pclient.get(proxy["proxyUrl"] + "/cookie")
    assert cookie.status_code == 200 and "set-cookie" not in cookie.headers


async def test_slow_dead_and_refused_upstreams_are_problems(pclient, merchant, make_proxy, temp_gateway):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    started = time.monotonic()
    slow = await pclient.get(proxy["proxyUrl"] + "/slow?seconds=5")
    assert slow.status_code == 504 and slow.json()["error"] == "upstream_timeout"
    assert time.monotonic() - started < 4  # BOLTGATE_PROXY_TIMEOUT_SECONDS=1.5 in these tests
    dead = await make_proxy(key, defaultPriceSats=0, targetBaseUrl=f"http://127.0.0.1:{free_port()}")
    refused = await pclient.get(dead["proxyUrl"] + "/x")
    assert refused.status_code == 502 and refused.json()["error"] == "upstream_unavailable"
    assert refused.headers["content-type"] == "application/problem+json"
    # the same proxy through a replica that does not allow loopback: refused when connecting
    strict = await temp_gateway()
    async with httpx.AsyncClient(base_url=strict.base_url, timeout=10) as other:
        blocked = await other.get(proxy["proxyUrl"] + "/x")
    assert blocked.status_code == 502 and blocked.json()["error"] == "upstream_not_allowed"
    assert "127.0.0.1" not in blocked.text
    stats = (await pclient.get(f"/api/proxy/{proxy['proxyId']}/stats", headers=auth(key))).json()
    assert stats["upstreamErrors"] == 1  # the timeout, counted by this replica (the other counts its own)


async def test_a_broken_upstream_body_is_cut_not_completed(pclient, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    with pytest.raises(httpx.RemoteProtocolError):
        await pclient.get(proxy["proxyUrl"] + "/broken")
    assert (await pclient.get(proxy["proxyUrl"] + "/ok")).status_code == 200  # the gateway is fine


@pytest.mark.parametrize(
    "suffix",
    [
        "/../admin",
        "/a/../../admin",
        "/%2e%2e/admin",
        "/.%2E/admin",
        "/a/%2Fetc",
        "/a%2fb",
        "/a%5cb",
        "//evil.example/x",
        "/http://evil.example/x",
        "/a//b",
        "/%00",
        "/a%zz",
    ],
)
async def test_unsafe_paths_are_refused_before_anything_is_forwarded(
    pclient, merchant, make_proxy, upstream, suffix
):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    before = len(upstream.requests)
    status, body = await raw_request(str(pclient.base_url), proxy["proxyUrl"] + suffix)
    assert status in (400, 404), (suffix, status, body)
    assert b'"error":"invalid_proxy_path"' in body or b'"error":"not_found"' in body, body
    assert len(upstream.requests) == before


async def test_unknown_malformed_and_retired_proxies(pclient, merchant, make_proxy):
    _, key = merchant
    for proxy_id in ("prx_00000000000000000000", "nope", "prx_" + "a" * 300):
        answer = await pclient.get(f"/l402/proxy/{proxy_id}/x")
        assert answer.status_code == 404 and answer.json()["error"] == "proxy_not_found"
    proxy = await make_proxy(key)
    retired = await pclient.post(
        f"/api/proxy/{proxy['proxyId']}/unpublish", json={"reason": "moved"}, headers=auth(key)
    )
    assert retired.json() == {"proxyId": proxy["proxyId"], "retired": True, "alreadyRetired": False}
    gone = await pclient.get(proxy["proxyUrl"] + "/x")
    assert (
        gone.status_code == 410
        and gone.json()["error"] == "proxy_retired"
        and "moved" in gone.json()["detail"]
    )


async def test_oversized_headers_are_refused(pclient, merchant, make_proxy, upstream):
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    before = len(upstream.requests)
    answer = await pclient.get(proxy["proxyUrl"] + "/x", headers={"X-Big": "a" * 40_000})
    assert answer.status_code == 431 and answer.json()["error"] == "headers_too_large"
    assert len(upstream.requests) == before


async def test_one_busy_proxy_does_not_hold_the_others(temp_gateway, merchant, upstream):
    _, key = merchant
    gateway = await temp_gateway(proxy_allow_networks=["127.0.0.1"], proxy_max_concurrent=1)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        made = []
        for _ in range(2):
            created = await http.post(
                "/api/proxy",
                json={"name": "P", "targetBaseUrl": upstream.base_url, "defaultPriceSats": 0},
                headers=auth(key),
            )
            made.append(created.json()["proxyUrl"])
        slow = asyncio.create_task(http.get(made[0] + "/slow?seconds=1"))
        await asyncio.sleep(0.3)
        busy = await http.get(made[0] + "/x")
        other = await http.get(made[1] + "/x")
        assert (
            busy.status_code == 503 and busy.json()["error"] == "proxy_busy" and busy.headers["retry-after"]
        )
        assert other.status_code == 200
        assert (await slow).status_code == 200
        assert (await http.get(made[0] + "/x")).status_code == 200  # released


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _peak_rss(stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _rss_kib())
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_large_download_and_upload_stream_with_flat_memory(pclient, merchant, make_proxy):
    """1 GiB down and 100 MiB up through the proxy; the test process hosts the upstream, the
    gateway and the client, so its RSS covers all three."""
    _, key = merchant
    proxy = await make_proxy(key, defaultPriceSats=0)
    baseline = _rss_kib()
    peak = [baseline]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_peak_rss(stop, peak))
    size = 1 << 30
    received = 0
    async with pclient.stream("GET", proxy["proxyUrl"] + f"/big?size={size}") as answer:
        assert answer.status_code == 200 and int(answer.headers["content-length"]) == size
        async for chunk in answer.aiter_raw():
            received += len(chunk)
    assert received == size

    upload = 100 << 20

    async def chunks() -> Any:
        block = b"u" * (1 << 20)
        for _ in range(upload >> 20):
            yield block

    sent = await pclient.post(
        proxy["proxyUrl"] + "/upload", content=chunks(), headers={"Content-Length": str(upload)}
    )
    stop.set()
    await sampler
    assert sent.status_code == 200, sent.text[:300]
    assert sent.json()["bodySize"] == upload
    growth_mib = (peak[0] - baseline) / 1024
    assert growth_mib < 50, f"RSS grew {growth_mib:.1f} MiB"


async def test_body_over_the_proxy_limit_is_refused(temp_gateway, merchant, upstream):
    _, key = merchant
    gateway = await temp_gateway(proxy_allow_networks=["127.0.0.1"], proxy_max_body_bytes=100_000)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        created = await http.post(
            "/api/proxy",
            json={"name": "P", "targetBaseUrl": upstream.base_url, "defaultPriceSats": 0},
            headers=auth(key),
        )
        url = created.json()["proxyUrl"] + "/upload"
        fits = await http.post(url, content=b"a" * 99_000)
        assert fits.status_code == 200 and fits.json()["bodySize"] == 99_000
        too_big = await http.post(url, content=b"a" * 100_001)
        assert too_big.status_code == 400 and too_big.json()["error"] == "payload_too_large"

        async def chunks() -> Any:  # no Content-Length: the limit is found while streaming
            for _ in range(30):
                yield b"b" * 10_000

        streamed = await http.post(url, content=chunks())
        assert streamed.status_code == 400 and streamed.json()["error"] == "payload_too_large"


async def test_unpaid_calls_are_rate_limited_per_client_paid_ones_are_not(temp_gateway, merchant, upstream):
    _, key = merchant
    gateway = await temp_gateway(proxy_allow_networks=["127.0.0.1"], rate_limit="3/minute")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        created = await http.post(
            "/api/proxy",
            json={"name": "P", "targetBaseUrl": upstream.base_url, "defaultPriceSats": 2},
            headers=auth(key),
        )
        url = created.json()["proxyUrl"] + "/x"
        first = await http.get(url)
        token, _, _ = await pay_402(http, first)
        statuses = [(await http.get(url)).status_code for _ in range(4)]
        assert statuses[-1] == 429 and 402 in statuses
        limited = await http.get(url)
        assert limited.status_code == 429 and limited.headers["retry-after"]
        for _ in range(5):
            assert (await http.get(url, headers={"Authorization": token})).status_code == 200
