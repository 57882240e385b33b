"""Shopify channel benchmark: how long a buyer waits at each step, and orders per second.

Run from the repository root, with nothing else heavy running (the machine has 2 cores)::

    .venv/bin/python bench/shopify.py            # about half a minute
    .venv/bin/python bench/shopify.py --orders 50 # a quick trial

Three processes on 127.0.0.1: the fake Shopify Admin API of the test suite
(``bench/shopify_fake.py``, one shop of 20 products, never throttling), ``boltgate serve`` (its
defaults: SQLite, the dev Lightning node) and this client (httpx). A merchant is created with
``boltgate merchant create`` and the store connected. Then, sequentially, ``--orders`` times: the
catalog (served from the cache), a checkout of 2 items (402 with its invoice), the payment through
the dev node (``/api/dev/pay``, not counted as the gateway's), the claim (two Shopify calls: the
variants read again, then ``orderCreate``) and the order status. Each step's latency is reported
as p50/p90/p99/max in ms, together with the fake Shopify's own time for the same two calls made
directly (so the claim's own cost can be told apart). Last, ``--buyers`` concurrent buyers each go
through checkout, payment and claim for 10 s: completed orders per second.
There is no peer: no other gateway sells a Shopify store's products over L402.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from payments import VENV_BIN, boltgate_revision, clean_env, free_port, merchant_key, running

BENCH = Path(__file__).resolve().parent
DOMAIN = "bench-store.myshopify.com"
TOKEN = "shpat_bench_token_0001"
ADDRESS = {
    "lastName": "Buyer",
    "address1": "1 Main St",
    "city": "Austin",
    "zip": "78701",
    "countryCode": "US",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def row(name: str, ms: list[float]) -> str:
    return (
        f"| {name} | {len(ms)} | {pct(ms, 50):.2f} | {pct(ms, 90):.2f} | {pct(ms, 99):.2f} | {max(ms):.2f} |"
    )


async def timed(samples: dict[str, list[float]], name: str, call: object) -> httpx.Response:
    start = time.perf_counter()
    response: httpx.Response = await call  # type: ignore[misc]
    samples.setdefault(name, []).append((time.perf_counter() - start) * 1000)
    return response


async def buy(
    http: httpx.AsyncClient, slug: str, variant: int, samples: dict[str, list[float]] | None
) -> None:
    s: dict[str, list[float]] = samples if samples is not None else {}
    await timed(s, "catalog (cached)", http.get(f"/api/shopify/{slug}/catalog"))
    out = await timed(
        s,
        "checkout → 402",
        http.post(f"/api/shopify/{slug}/checkout", json={"items": [{"variantId": variant, "quantity": 2}]}),
    )
    assert out.status_code == 402, out.text
    body = out.json()
    paid = await http.post("/api/dev/pay", json={"invoice": body["invoice"]})
    assert paid.status_code == 200, paid.text
    claim = {"claimToken": body["claimToken"], "email": "buyer@example.com", "shippingAddress": ADDRESS}
    claimed = await timed(s, "claim → Shopify order", http.post(f"/api/shopify/{slug}/claim", json=claim))
    assert claimed.status_code == 200, claimed.text
    status = await timed(
        s,
        "order status",
        http.get(f"/api/shopify/{slug}/orders/{body['orderId']}", params={"claimToken": body["claimToken"]}),
    )
    assert status.json()["status"] == "ordered", status.text


async def shopify_direct(fake_port: int, gids: list[str], samples: dict[str, list[float]]) -> None:
    sys.path.insert(0, str(BENCH.parent))
    from boltgate.shopify import graphql

    url = f"http://127.0.0.1:{fake_port}/shops/{DOMAIN}/admin/api/2026-01/graphql.json"
    headers = {"X-Shopify-Access-Token": TOKEN}
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(len(samples["claim → Shopify order"])):
            start = time.perf_counter()
            await http.post(
                url, json={"query": graphql.VARIANTS, "variables": {"ids": gids}}, headers=headers
            )
            money = {"shopMoney": {"amount": "10.00", "currencyCode": "USD"}}
            order = {
                "currency": "USD",
                "email": "buyer@example.com",
                "financialStatus": "PAID",
                "lineItems": [{"variantId": gids[0], "quantity": 2}],
                "transactions": [{"kind": "SALE", "status": "SUCCESS", "amountSet": money}],
            }
            await http.post(
                url, json={"query": graphql.ORDER_CREATE, "variables": {"order": order}}, headers=headers
            )
            samples.setdefault("Shopify itself: variants + orderCreate", []).append(
                (time.perf_counter() - start) * 1000
            )


async def run(base: str, fake_port: int, key: str, orders: int, buyers: int, seconds: float) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        store = {"slug": "bench-store", "shopDomain": DOMAIN, "accessToken": TOKEN}
        created = await http.post("/api/shopify/stores", json=store, headers={"X-API-Key": key})
        assert created.status_code == 201, created.text
        catalog = (await http.get("/api/shopify/bench-store/catalog")).json()
        variant = catalog["products"][0]["variants"][0]["variantId"]
        for _ in range(5):  # warm-up
            await buy(http, "bench-store", variant, None)
        samples: dict[str, list[float]] = {}
        for _ in range(orders):
            await buy(http, "bench-store", variant, samples)
        await shopify_direct(fake_port, [f"gid://shopify/ProductVariant/{variant}"], samples)
        done = 0
        deadline = time.monotonic() + seconds

        async def buyer() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await buy(http, "bench-store", variant, None)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(buyer() for _ in range(buyers)))
        elapsed = time.monotonic() - started
    lines = [
        "| step | n | p50 ms | p90 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(row(name, ms) for name, ms in samples.items()),
        "",
        f"{buyers} concurrent buyers for {elapsed:.1f} s: {done} orders, **{done / elapsed:.1f} orders/s** "
        f"(checkout + payment + claim + status each; median claim "
        f"{statistics.median(samples['claim → Shopify order']):.2f} ms sequential).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--buyers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boltgate-bench-shopify-") as tmp:
        work = Path(tmp)
        fake_port, port = free_port(), free_port()
        fake = subprocess.Popen(
            [sys.executable, str(BENCH / "shopify_fake.py"), str(fake_port), DOMAIN, TOKEN],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            assert fake.stdout is not None
            if fake.stdout.readline().strip() != b"ready":
                raise RuntimeError("the fake Shopify did not start")
            env = clean_env(
                "BOLTGATE_",
                {
                    "BOLTGATE_HOST": "127.0.0.1",
                    "BOLTGATE_PORT": str(port),
                    "BOLTGATE_DATA_DIR": str(work),
                    "BOLTGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
                    "BOLTGATE_RATE_LIMIT": "1000000/second",
                    "BOLTGATE_LOG_LEVEL": "WARNING",
                    "BOLTGATE_SHOPIFY_API_BASE": f"http://127.0.0.1:{fake_port}/shops/{{shop}}",
                },
            )
            argv = [str(VENV_BIN / "boltgate"), "serve"]
            base = f"http://127.0.0.1:{port}"
            with running("boltgate-shopify", argv, env, work, base + "/healthz"):
                key = merchant_key(env, work)
                lines = asyncio.run(run(base, fake_port, key, opts.orders, opts.buyers, opts.seconds))
        finally:
            fake.kill()
            fake.wait()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Run {now}: `.venv/bin/python bench/shopify.py` (boltgate at {boltgate_revision()})\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
