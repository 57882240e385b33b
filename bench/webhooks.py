"""Webhooks benchmark: delivery throughput and settle -> webhook / settle -> SSE latency.

For SQLite and PostgreSQL, one ``boltgate serve`` (defaults, dev node, one worker process) and a
receiver in this process (uvicorn on loopback, answering 200 at once):

* **latency**: ``--latency-payments`` payments settled one at a time (``POST
  /api/dev/payments/{id}/settle``) while an SSE stream (``GET /api/payments/{id}/events``) is
  open; time from just before the settle request to (a) the ``payment.completed`` SSE event and
  (b) the webhook arriving at the receiver. p50 / p99 / max.
* **throughput**: the endpoints are disabled, ``--backlog`` payments are settled and marked paid
  (their deliveries queue up, held), the endpoints are re-enabled, and the time until the
  receiver has every delivery gives deliveries/s: once with 1 endpoint (strict per-endpoint
  order: runs of 50, one after another)
  and once with 10 endpoints of the same merchant (each event to all 10).

Usage: ``.venv/bin/python bench/webhooks.py [--latency-payments 200] [--backlog 2000] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from payments import (  # bench helpers: servers in process groups, temporary databases
    BENCH,
    RESULTS,
    VENV_BIN,
    boltgate_revision,
    clean_env,
    free_port,
    merchant_key,
    running,
    temporary_database,
)

SECTION = "webhooks"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.changed = asyncio.Event()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self.server = uvicorn.Server(config)

    async def app(self, scope, receive, send):  # type: ignore[no-untyped-def]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = orjson.loads(body)
        self.arrivals.setdefault(event["data"]["invoiceId"], time.perf_counter())
        self.count += 1
        self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait_count(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()


@contextmanager
def gateway(work: Path, database_url: str | None) -> Iterator[tuple[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix="boltgate-webhooks-", dir=work))
    extra = {"BOLTGATE_DATA_DIR": str(data_dir), "BOLTGATE_RATE_LIMIT": "1000000/second"}
    if database_url:
        extra["BOLTGATE_DATABASE_URL"] = database_url
    env = clean_env("BOLTGATE_", extra)
    key = merchant_key(env, data_dir)
    port = free_port()
    argv = [str(VENV_BIN / "boltgate"), "serve", "--port", str(port)]
    name = f"webhooks-{'postgresql' if database_url else 'sqlite'}"
    base = f"http://127.0.0.1:{port}"
    with running(name, argv, env, data_dir, f"{base}/healthz"):
        yield base, key


async def create_payments(client: httpx.AsyncClient, count: int, tag: str) -> list[str]:
    ids = []
    for i in range(count):
        r = await client.post(
            "/api/payments", json={"orderId": f"{tag}-{i}", "amount": "1.00", "currency": "USD"}
        )
        r.raise_for_status()
        ids.append(r.json()["invoiceId"])
    return ids


async def endpoints(client: httpx.AsyncClient, receiver: Receiver, count: int) -> list[str]:
    ids = []
    for i in range(count):
        r = await client.post(
            "/api/webhooks",
            json={"url": f"http://127.0.0.1:{receiver.port}/hook/{i}", "events": ["payment.completed"]},
        )
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


async def set_enabled(client: httpx.AsyncClient, ids: list[str], enabled: bool) -> None:
    for endpoint_id in ids:
        (await client.put(f"/api/webhooks/{endpoint_id}", json={"enabled": enabled})).raise_for_status()


async def settle_all(client: httpx.AsyncClient, ids: list[str]) -> float:
    """Settle ``ids`` and wait until the gateway has marked every one paid; returns settlements/s
    (the watcher applying them), so that the drain below measures deliveries alone."""
    start = time.perf_counter()
    for invoice_id in ids:
        (await client.post(f"/api/dev/payments/{invoice_id}/settle")).raise_for_status()
    async with asyncio.timeout(600):
        for invoice_id in ids[::-1]:
            while (await client.get(f"/api/payments/{invoice_id}")).json()["status"] != "paid":
                await asyncio.sleep(0.05)
    return len(ids) / (time.perf_counter() - start)


async def sse_paid(client: httpx.AsyncClient, invoice_id: str, opened: asyncio.Event) -> float:
    async with client.stream("GET", f"/api/payments/{invoice_id}/events") as r:
        async for line in r.aiter_lines():
            opened.set()
            if line == "event: payment.completed":
                return time.perf_counter()
    raise RuntimeError("stream ended")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(base: str, key: str, opts: argparse.Namespace) -> dict[str, object]:
    receiver = Receiver()
    serve = asyncio.create_task(receiver.server.serve())
    while not receiver.server.started:
        await asyncio.sleep(0.01)
    headers = {"X-API-Key": key}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            one = await endpoints(client, receiver, 1)
            # latency: one settlement at a time, an SSE stream open on it
            ids = await create_payments(client, opts.latency_payments, "lat")
            webhook_ms, sse_ms = [], []
            for invoice_id in ids:
                opened = asyncio.Event()
                stream = asyncio.create_task(sse_paid(client, invoice_id, opened))
                await opened.wait()
                await asyncio.sleep(0.005)
                start = time.perf_counter()
                (await client.post(f"/api/dev/payments/{invoice_id}/settle")).raise_for_status()
                sse_ms.append((await asyncio.wait_for(stream, 10) - start) * 1000)
                await receiver.wait_count(len(webhook_ms) + 1, 10)
                webhook_ms.append((receiver.arrivals[invoice_id] - start) * 1000)
            # throughput, 1 endpoint
            await set_enabled(client, one, False)
            backlog = await create_payments(client, opts.backlog, "one")
            settle_rate = await settle_all(client, backlog)
            before = receiver.count
            start = time.perf_counter()
            await set_enabled(client, one, True)
            await receiver.wait_count(before + len(backlog), 600)
            one_rate = len(backlog) / (time.perf_counter() - start)
            # throughput, 10 endpoints (the first one too)
            await set_enabled(client, one, False)
            ten = one + await endpoints(client, receiver, 9)
            await set_enabled(client, ten, False)
            spread = await create_payments(client, opts.backlog // 10, "ten")
            await settle_all(client, spread)
            before = receiver.count
            start = time.perf_counter()
            await set_enabled(client, ten, True)
            total = len(spread) * len(ten)
            await receiver.wait_count(before + total, 600)
            ten_rate = total / (time.perf_counter() - start)
    finally:
        receiver.server.should_exit = True
        await serve
    return {
        "webhook": webhook_ms,
        "sse": sse_ms,
        "one_rate": one_rate,
        "ten_rate": ten_rate,
        "one_n": len(backlog),
        "settle_rate": settle_rate,
        "ten_n": total,
    }


def rows(database: str, r: dict[str, object]) -> list[str]:
    webhook, sse = r["webhook"], r["sse"]
    assert isinstance(webhook, list)
    assert isinstance(sse, list)
    lat = [
        f"| {database} | settle -> webhook received | {len(webhook)} | {statistics.median(webhook):.1f} ms "
        f"| {pct(webhook, 0.99):.1f} ms | {max(webhook):.1f} ms |",
        f"| {database} | settle -> SSE event | {len(sse)} | {statistics.median(sse):.1f} ms "
        f"| {pct(sse, 0.99):.1f} ms | {max(sse):.1f} ms |",
    ]
    rate = [
        f"| {database} | 1 endpoint | {r['one_n']} | {r['one_rate']:,.0f} |",
        f"| {database} | 10 endpoints | {r['ten_n']} | {r['ten_rate']:,.0f} |",
        f"| {database} | (for reference: settled one by one via /api/dev and marked paid) | {r['one_n']} "
        f"| {r['settle_rate']:,.0f} |",
    ]
    return [*lat, "RATE", *rate]


def report(all_rows: list[str], opts: argparse.Namespace) -> str:
    latency = [r for r in all_rows if r != "RATE" and r.count("|") == 7]
    rates = [r for r in all_rows if r != "RATE" and r.count("|") == 5]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"Run {now}: `.venv/bin/python bench/webhooks.py` (boltgate at {boltgate_revision()}); "
            f"{opts.latency_payments} latency samples, backlog {opts.backlog}. One `boltgate serve` process "
            "(defaults, dev node), the receiver and this client share the 2 cores.",
            "",
            "| database | latency | n | p50 | p99 | max |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
            *latency,
            "",
            "| database | throughput (backlog drained) | deliveries | deliveries/s |",
            "| --- | --- | ---: | ---: |",
            *rates,
            "",
            "Targets: >= 500 deliveries/s sustained; settle -> received p99 < 250 ms; "
            "settle -> SSE p99 < 100 ms.",
        ]
    )


def write_results(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = f"## {SECTION}\n\n{text}\n"
    pattern = re.compile(rf"^## {SECTION}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    new = (
        pattern.sub(lambda _m: section + "\n", old, count=1).rstrip("\n") + "\n"
        if pattern.search(old)
        else old.rstrip("\n") + "\n\n" + section
    )
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-payments", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small run, results not written")
    opts = parser.parse_args()
    if opts.quick:
        opts.latency_payments, opts.backlog = 20, 200
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-", dir=BENCH / "out"))
    all_rows: list[str] = []
    with gateway(work, None) as (base, key):
        all_rows += rows("SQLite", asyncio.run(measure(base, key, opts)))
    with temporary_database(PG_ADMIN) as url, gateway(work, url) as (base, key):
        all_rows += rows("PostgreSQL", asyncio.run(measure(base, key, opts)))
    text = report(all_rows, opts)
    print(text)
    if not opts.quick:
        write_results(text)


if __name__ == "__main__":
    main()
