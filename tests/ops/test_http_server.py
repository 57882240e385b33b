"""The request-head bound of the HTTP protocol `boltgate serve` runs (the test gateways run it too),
spoken to over raw sockets: a head over 64 KiB is a 431 problem and a closed connection, whether
it arrives at once or trickles in; ordinary heads, large bodies and pipelined requests pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

from boltgate.ops.http_server import MAX_HEAD_BYTES
from tests.helpers import auth


async def _exchange(gateway, chunks: list[bytes], pause: float = 0.0) -> bytes:
    """Send ``chunks`` while reading the answer; what was received when the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.settings.port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)

    sending = asyncio.create_task(send())
    received = b""
    try:
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionError:
        pass
    finally:
        sending.cancel()
        writer.close()
    return received


def _head(extra: int) -> bytes:
    lines = [b"GET /healthz HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    for i in range(extra // 1000):
        lines.append(f"X-Filler-{i}: ".encode() + b"a" * 990)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_a_head_under_the_bound_is_served(gateway):
    answer = await _exchange(gateway, [_head(MAX_HEAD_BYTES - 4096)])
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


async def test_a_head_over_the_bound_is_a_431_problem(gateway):
    answer = await _exchange(gateway, [_head(4 * MAX_HEAD_BYTES)])
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head and b"connection: close" in head
    problem = json.loads(body)
    assert (problem["status"], problem["error"]) == (431, "request_header_too_large")


async def test_a_trickled_endless_head_is_cut_off(gateway):
    start = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    filler = [b"X-Slow: " + b"b" * 8000 + b"\r\n" for _ in range(40)]  # 320 KB, never ending
    answer = await _exchange(gateway, [start, *filler], pause=0.001)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


async def test_one_huge_header_value_is_cut_off(gateway):
    start = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: "
    answer = await _exchange(gateway, [start + b"c" * (2 * MAX_HEAD_BYTES)])
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


async def test_large_bodies_and_pipelined_requests_are_not_heads(gateway, merchant):
    """Requests whose bodies together are far over the bound, sent back to back on one connection
    in one write: no body is taken for part of a head."""
    _, key = merchant
    requests = b""
    for i in range(4):
        body = json.dumps({"orderId": f"head-{i}", "amount": "1.00", "currency": "USD"}).encode()
        payload = body + b" " * (60 * 1024 - len(body))  # under the body limit; JSON allows spaces
        requests += (
            b"POST /api/payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {auth(key)['X-API-Key']}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
    last = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer = await _exchange(gateway, [requests + last])  # 240 KB in one write
    statuses = re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+", answer)
    assert statuses == [b"HTTP/1.1 201 Created"] * 4 + [b"HTTP/1.1 200 OK"], answer[-400:]
