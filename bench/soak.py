"""Soak benchmark: mixed traffic for a long time, memory sampled, then an audit of the database.

Run from the repository root (the machine has 2 cores; say what else ran)::

    .venv/bin/python bench/soak.py --database sqlite --minutes 30        # one gateway on SQLite
    .venv/bin/python bench/soak.py --database postgresql --minutes 30    # two replicas, one PostgreSQL
    .venv/bin/python bench/soak.py --minutes 1                           # a quick trial

What runs, all on 127.0.0.1, each in its own process group (stopped on exit, Ctrl-C or SIGTERM):

* the gateway: ``boltgate serve`` (one worker) on SQLite, or two of them (two ports) on one fresh
  PostgreSQL database (``BOLTGATE_DATABASE_URL``, created for the run and dropped after). The
  replicas share one data directory, so they share the built-in dev Lightning node (its key and
  its invoice file, ``<data_dir>/devnode/``): an invoice made by one replica can be paid through
  the other, and both settlement watchers follow the same node, as two replicas in front of one
  real node would;
* a webhook receiver (``soak.py receiver``, a raw asyncio HTTP server) that fails on purpose: per
  attempt 10 % HTTP 500, 5 % slow (answers after the gateway's delivery timeout, 2 s here) and 2 %
  connection resets, at most 3 injected failures per event (so every event gets through within
  the gateway's first retries: 5 s, 30 s, 2 min), checking every signature;
* the upstream of a paid L402 proxy (``bench/proxy_upstream.py``);
* this process: the traffic (asyncio), an RSS sampler (every 10 s) and the audit.

Traffic (open loop, spread over the replicas at random): merchants made with ``boltgate merchant
create``, each with a webhook endpoint on the receiver; payments created (``POST /api/payments``)
at ``--payments-per-second``, looked up (``GET /api/payments/{id}`` and ``GET
/checkout/{id}/status``), ``--pay-ratio`` of them paid with the dev node (``POST /api/dev/pay``)
and then polled on another replica until they show ``paid`` (settle -> visible), the rest left to
expire (``BOLTGATE_INVOICE_EXPIRY_SECONDS=120``); agents (distinct source addresses 127.0.0.x, as
distinct clients) calling the paid proxy with real L402 tokens, each bought from a 402 challenge
and paid through the dev node, good for ``--calls-per-token`` calls (the next call must answer 402).

Errors: every 5xx, transport error or timeout, and every status a route should not give (a 402 on
a token that has calls left, a 404 for a payment that exists) is an error; none is injected on the
client side, so the soak expects none. After the traffic, the receiver answers 200 to everything
and the retries drain (bounded by ``--drain-seconds``); then the audit reads the database and the
dev node's invoice file: every invoice the node settled is paid in the gateway (or, for an L402
invoice, its challenge was used), no payment is paid without a settlement, each paid payment has
exactly one ``payment.completed`` event (never credited twice), each payment event has a delivery to
its merchant's endpoint and every delivery succeeded, the receiver answered 200 (valid signature)
to every delivery the gateway counts as delivered, and no L402 token was admitted more often than
sold. Exit status: 0 when the audit passes and no error occurred, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import random
import re
import shlex
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
# the other benchmarks' pieces (importing proxy takes bench/ off the path again)
from payments import VENV_BIN, boltgate_revision, clean_env, free_port, stop_group  # noqa: E402
from proxy import UPSTREAM_SCRIPT, cpu_seconds, percentile, rss_bytes  # noqa: E402

OUT = HERE / "out" / "soak"
BOLTGATE = str(VENV_BIN / "boltgate")
PG_ADMIN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START_TIMEOUT = 120.0
CLIENT_TIMEOUT = 20.0  # a request without an answer this long is a hang (an error)
RSS_EVERY = 10.0
LOAD_EVERY = 60.0
VISIBLE_WITHIN = 30.0  # a paid payment must show "paid" on a replica within this
MB = 1_000_000


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that every ``finally`` still cleans up."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted


def progress(text: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", file=sys.stderr, flush=True)


# ============================================================================ the webhook receiver


@dataclass
class Flaky:
    """What the receiver does to each delivery attempt (probabilities), and how often at most per event."""

    p500: float = 0.10
    pslow: float = 0.05
    preset: float = 0.02
    cap: int = 3
    slow_seconds: float = 3.0


class Receiver:
    """A raw HTTP/1.1 server (keep-alive) for webhooks: flaky on purpose, checks signatures.

    ``/hook/<n>``: a delivery to merchant n's endpoint. ``/_control/…``: the soak's own calls
    (``POST /_control/secret {"path", "secret"}``, ``POST /_control/mode {"mode": "flaky"|"ok"}``,
    ``GET /_control/stats``).
    """

    def __init__(self, flaky: Flaky, seed: int) -> None:
        self.flaky = flaky
        self.mode = "flaky"
        self.rng = random.Random(seed)
        self.secrets: dict[str, bytes] = {}
        self.counts: Counter[str] = Counter()
        # event id -> [type, invoiceId, first time answered 200, 200s answered, injected failures]
        self.events: dict[str, list[Any]] = {}

    def fate(self, event_id: str) -> str:
        record = self.events[event_id]
        if self.mode != "flaky" or record[4] >= self.flaky.cap:
            return "ok"
        roll = self.rng.random()
        f = self.flaky
        if roll < f.p500:
            return "500"
        if roll < f.p500 + f.pslow:
            return "slow"
        if roll < f.p500 + f.pslow + f.preset:
            return "reset"
        return "ok"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                if target.startswith("/_control"):
                    status, payload = self.control(method, target, body)
                    await self.reply(writer, status, payload)
                elif not await self.hook(target, headers, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def reply(self, writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()

    async def hook(
        self, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """One delivery attempt; False when the connection was cut."""
        self.counts["attempts"] += 1
        try:
            event = json.loads(body)
            event_id = str(event["id"])
        except (ValueError, KeyError, TypeError):
            self.counts["unparsable"] += 1
            await self.reply(writer, 400, b'{"error":"unparsable"}')
            return True
        secret = self.secrets.get(path)
        signature = headers.get("x-gateway-signature", "")
        good = secret is not None and hmac.compare_digest(
            hmac.new(secret, body, hashlib.sha256).hexdigest(), signature
        )
        if not good:
            self.counts["bad_signature"] += 1
        data = event.get("data") or {}
        record = self.events.setdefault(
            event_id, [event.get("event"), data.get("invoiceId"), None, 0, 0, path]
        )
        fate = self.fate(event_id)
        self.counts[f"fate_{fate}"] += 1
        if fate == "reset":
            record[4] += 1
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fate == "500":
            record[4] += 1
            await self.reply(writer, 500, b'{"error":"injected"}')
            return True
        if fate == "slow":
            record[4] += 1
            await asyncio.sleep(self.flaky.slow_seconds)
        if good:
            if record[2] is None:
                record[2] = time.time()
            record[3] += 1
        await self.reply(writer, 200, b'{"ok":true}')
        return fate != "slow"  # the gateway gave up on a slow answer and closed its end

    def control(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        if method == "POST" and target == "/_control/secret":
            given = json.loads(body)
            self.secrets[given["path"]] = given["secret"].encode()
            return 200, b"{}"
        if method == "POST" and target == "/_control/mode":
            self.mode = json.loads(body)["mode"]
            return 200, b"{}"
        if method == "GET" and target == "/_control/stats":
            return 200, json.dumps({"counts": self.counts, "events": self.events, "mode": self.mode}).encode()
        return 404, b"{}"


async def receiver_main(port: int, flaky: Flaky, seed: int) -> None:
    receiver = Receiver(flaky, seed)
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# ======================================================================= processes and the stack


@dataclass
class Proc:
    """A server this script runs in its own process group; restartable (``kill -9`` and again)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    health: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n--- start {self.starts + 1} at {dt.datetime.now(dt.UTC).isoformat()}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds until ``health`` answers 200."""
        begun = time.monotonic()
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() - begun < timeout:
                if not self.alive():
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc and self.proc.returncode}); see {self.log}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.health)).status_code == 200:
                        return time.monotonic() - begun
                await asyncio.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.health}; see {self.log}")

    def kill9(self) -> None:
        """``kill -9`` of the whole process group: no shutdown of any kind."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)


@dataclass
class Replica:
    name: str
    port: int
    proc: Proc
    routable: bool = True  # the load balancer's view: False while it is known to be down

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Merchant:
    index: int
    key: str
    endpoint_id: str = ""


class Ledger:
    """The Lightning side: how a customer pays, and what the node says it settled."""

    name = "?"

    async def pay(self, traffic: Traffic, invoice: str, route: str) -> str | None:
        raise NotImplementedError

    async def settled(self) -> dict[str, int]:
        """payment hash -> msat received, of every settled incoming invoice."""
        raise NotImplementedError


class DevLedger(Ledger):
    """The built-in dev node: paid through a replica's ``POST /api/dev/pay`` (the node is shared
    by the replicas); its settlements read from its own SQLite file."""

    name = "dev node"

    def __init__(self, directory: Path) -> None:
        self.file = directory / "devnode.sqlite3"

    async def pay(self, traffic: Traffic, invoice: str, route: str) -> str | None:
        replica = traffic.stack.pick()
        answer = await traffic.call(route, replica, "POST", "/api/dev/pay", json={"invoice": invoice})
        if answer is None or answer.status_code != 200:
            return None
        return str(answer.json()["preimage"])

    async def settled(self) -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(f"file:{self.file}?mode=ro", uri=True, timeout=15)) as db:
            rows = db.execute(
                "SELECT payment_hash, amount_received_msat FROM invoices WHERE state = 'settled'"
            )
            return {h: int(m) for h, m in rows.fetchall()}


@dataclass
class Options:
    label: str = "soak"
    database: str = "sqlite"  # sqlite | postgresql
    replicas: int = 1
    minutes: float = 30.0
    payments_per_second: float = 3.0
    pay_ratio: float = 0.8
    proxy_per_second: float = 10.0
    agents: int = 4
    calls_per_token: int = 10
    merchants: int = 20
    webhook_timeout: float = 2.0
    invoice_expiry: int = 120
    drain_seconds: float = 300.0
    pool_size: int = 10
    flaky: Flaky = field(default_factory=Flaky)
    seed: int = 1
    pg_admin: str = PG_ADMIN
    database_url: str | None = None  # set by the stack (PostgreSQL)
    data_dir: Path | None = None  # where the gateways' data directory goes (default: the run dir)
    lightning_url: str | None = None  # default dev:// (the shared dev node)
    network: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    proxy_calls: bool = True
    cents: tuple[int, int] = (100, 5000)  # payment amounts, USD cents
    allow_duplicates: bool = False  # a fault run that kills a replica
    argv: list[str] = field(default_factory=list)


class Stack:
    """Everything one run needs: receiver, upstream, gateways, merchants, endpoints, the proxy."""

    def __init__(self, opts: Options, run_dir: Path, ledger: Ledger | None = None) -> None:
        self.opts = opts
        self.run_dir = run_dir
        self.data_dir = opts.data_dir or run_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger: Ledger = ledger or DevLedger(self.data_dir / "devnode")
        self.receiver_port = free_port()
        self.upstream_port = free_port()
        self.replicas: list[Replica] = []
        self.others: list[Proc] = []
        self.merchants: list[Merchant] = []
        self.proxy_path = ""
        self.rng = random.Random(opts.seed)

    # -- processes

    def env(self, port: int | None) -> dict[str, str]:
        o = self.opts
        extra = {
            "BOLTGATE_DATA_DIR": str(self.data_dir),
            "BOLTGATE_RATE_LIMIT": "1000000/second",
            "BOLTGATE_PROXY_ALLOW_NETWORKS": "127.0.0.1",
            "BOLTGATE_WEBHOOK_TIMEOUT_SECONDS": str(o.webhook_timeout),
            "BOLTGATE_INVOICE_EXPIRY_SECONDS": str(o.invoice_expiry),
            "BOLTGATE_DATABASE_POOL_SIZE": str(o.pool_size),
            "BOLTGATE_LOG_LEVEL": "INFO",
            **o.extra_env,
        }
        if o.database_url:
            extra["BOLTGATE_DATABASE_URL"] = o.database_url
        if o.lightning_url:
            extra["BOLTGATE_LIGHTNING_URL"] = o.lightning_url
        if o.network:
            extra["BOLTGATE_NETWORK"] = o.network
        if port is not None:
            extra["BOLTGATE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        return clean_env("BOLTGATE_", extra)

    def replica_proc(self, name: str, port: int) -> Proc:
        argv = [BOLTGATE, "serve", "--port", str(port)]
        log = self.run_dir / f"{name}.log"
        return Proc(name, argv, self.env(port), self.data_dir, log, f"http://127.0.0.1:{port}/readyz")

    async def start(self) -> None:
        o = self.opts
        py = sys.executable
        receiver_argv = [
            py,
            str(Path(__file__).resolve()),
            "receiver",
            "--port",
            str(self.receiver_port),
            "--p500",
            str(o.flaky.p500),
            "--pslow",
            str(o.flaky.pslow),
            "--preset",
            str(o.flaky.preset),
            "--cap",
            str(o.flaky.cap),
            "--slow-seconds",
            str(o.webhook_timeout + 1),
            "--seed",
            str(o.seed),
        ]
        plain = clean_env("BOLTGATE_", {})
        receiver = Proc(
            "receiver",
            receiver_argv,
            plain,
            self.run_dir,
            self.run_dir / "receiver.log",
            f"http://127.0.0.1:{self.receiver_port}/_control/stats",
        )
        upstream = Proc(
            "upstream",
            [py, str(UPSTREAM_SCRIPT), str(self.upstream_port)],
            plain,
            self.run_dir,
            self.run_dir / "upstream.log",
            f"http://127.0.0.1:{self.upstream_port}/data",
        )
        self.others = [receiver, upstream]
        for proc in self.others:
            proc.start()
        await self.wait_up(upstream)
        await self.wait_receiver()
        ports = [free_port() for _ in range(o.replicas)]
        self.replicas = [
            Replica(f"gateway-{i + 1}", p, self.replica_proc(f"gateway-{i + 1}", p))
            for i, p in enumerate(ports)
        ]
        progress(f"merchants: {o.merchants} x `boltgate merchant create`")
        await self.create_merchants()  # migrates the database first
        for replica in self.replicas:
            replica.proc.start()
        for replica in self.replicas:
            took = await replica.proc.wait_ready()
            progress(f"{replica.name} ready on :{replica.port} in {took:.1f} s (pid {replica.proc.pid})")
        await self.create_endpoints()
        if o.proxy_calls:
            await self.create_proxy()

    async def wait_up(self, proc: Proc) -> None:
        await proc.wait_ready(30)

    async def wait_receiver(self) -> None:
        url = f"http://127.0.0.1:{self.receiver_port}/_control/stats"
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError("the webhook receiver did not start")

    async def create_merchants(self) -> None:
        env = self.env(None)

        async def one(index: int) -> Merchant:
            proc = await asyncio.create_subprocess_exec(
                BOLTGATE,
                "merchant",
                "create",
                f"Soak merchant {index}",
                env=env,
                cwd=self.data_dir,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"boltgate merchant create failed: {err.decode()[-500:]}")
            return Merchant(index, out.decode().strip().splitlines()[-1].strip())

        first = await one(0)  # alone: it migrates the database
        rest: list[Merchant] = []
        for start in range(1, self.opts.merchants, 4):
            rest += await asyncio.gather(*(one(i) for i in range(start, min(start + 4, self.opts.merchants))))
        self.merchants = [first, *rest]

    async def create_endpoints(self) -> None:
        async with httpx.AsyncClient(base_url=self.replicas[0].base, timeout=30) as client:
            for m in self.merchants:
                path = f"/hook/{m.index}"
                body = {"url": f"http://127.0.0.1:{self.receiver_port}{path}", "description": "soak receiver"}
                answer = await client.post("/api/webhooks", json=body, headers={"X-API-Key": m.key})
                if answer.status_code != 201:
                    raise RuntimeError(f"POST /api/webhooks: {answer.status_code} {answer.text[:300]}")
                m.endpoint_id = answer.json()["id"]
                await self.control(
                    "POST", "/_control/secret", {"path": path, "secret": answer.json()["secret"]}
                )

    async def create_proxy(self) -> None:
        body = {
            "name": "Soak upstream",
            "targetBaseUrl": f"http://127.0.0.1:{self.upstream_port}",
            "defaultPriceSats": 1,
            "maxCallsPerToken": self.opts.calls_per_token,
        }
        async with httpx.AsyncClient(base_url=self.replicas[0].base, timeout=30) as client:
            answer = await client.post("/api/proxy", json=body, headers={"X-API-Key": self.merchants[0].key})
        if answer.status_code != 201:
            raise RuntimeError(f"POST /api/proxy: {answer.status_code} {answer.text[:300]}")
        self.proxy_path = str(answer.json()["proxyUrl"])

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.receiver_port}", timeout=60) as client:
            answer = await client.request(method, path, json=body)
            answer.raise_for_status()
            return answer.json()

    def stop(self) -> None:
        for replica in self.replicas:
            replica.proc.stop()
        for proc in self.others:
            proc.stop()

    # -- routing (the load balancer)

    def routable(self) -> list[Replica]:
        return [r for r in self.replicas if r.routable] or self.replicas

    def pick(self) -> Replica:
        return self.rng.choice(self.routable())

    def pick_other(self, replica: Replica) -> Replica:
        others = [r for r in self.routable() if r is not replica]
        return self.rng.choice(others) if others else replica


# ============================================================================== traffic and stats


@dataclass
class Sample:
    """A request that did not answer as expected."""

    at: float  # seconds since the traffic started
    route: str
    replica: str
    status: int | None  # None: transport error or timeout
    code: str  # the problem's "error", or the transport error's class
    ms: float
    detail: str
    retry_after: str | None = None
    content_type: str | None = None


@dataclass
class RouteStats:
    ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    expected: int = 0


@dataclass
class PaymentRec:
    merchant: int
    invoice_id: str
    payment_hash: str
    amount_sats: int
    created_on: str
    will_pay: bool
    invoice: str = ""
    created_at: float = field(default_factory=time.time)
    paid_at: float | None = None  # wall clock, when the dev node answered the pay call
    visible_after: float | None = None  # seconds from paying to "paid" seen on a replica


@dataclass
class TokenRec:
    payment_hash: str
    ok: int = 0


class Traffic:
    """The client side: flows at fixed rates over the routable replicas, every request recorded."""

    def __init__(self, stack: Stack, opts: Options) -> None:
        self.stack = stack
        self.opts = opts
        self.rng = random.Random(opts.seed + 1)
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.routes: dict[str, RouteStats] = defaultdict(RouteStats)
        self.samples: list[Sample] = []
        self.timeline: dict[int, Counter[str]] = defaultdict(Counter)  # 5 s bucket -> outcome kinds
        self.payments: dict[str, PaymentRec] = {}
        self.tokens: dict[str, TokenRec] = {}
        self.flows_in_flight = 0
        self.flows: set[asyncio.Task[None]] = set()
        self.flows_skipped = 0
        self.stopping = asyncio.Event()
        self.expect: Callable[[Sample], str | None] = lambda _s: None  # a fault run explains samples
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.agent_clients: list[httpx.AsyncClient] = []
        self.invariant_errors: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def client(self, replica: Replica) -> httpx.AsyncClient:
        found = self.clients.get(replica.name)
        if found is None:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            found = httpx.AsyncClient(base_url=replica.base, timeout=CLIENT_TIMEOUT, limits=limits)
            self.clients[replica.name] = found
        return found

    async def close(self) -> None:
        for client in [*self.clients.values(), *self.agent_clients]:
            await client.aclose()

    def record(
        self, route: str, replica: Replica, answer: httpx.Response | None, ms: float, error: str, ok: bool
    ) -> None:
        stats = self.routes[route]
        stats.ms.append(ms)
        bucket = int(self.now() // 5)
        if answer is not None:
            stats.statuses[answer.status_code] += 1
        if ok:
            self.timeline[bucket]["ok"] += 1
            return
        status = answer.status_code if answer is not None else None
        code, detail, retry_after, content_type = error, "", None, None
        if answer is not None:
            content_type = answer.headers.get("content-type")
            retry_after = answer.headers.get("retry-after")
            detail = answer.text[:300]
            with contextlib.suppress(ValueError, AttributeError):
                code = str(answer.json().get("error") or code)
        sample = Sample(self.now(), route, replica.name, status, code, ms, detail, retry_after, content_type)
        self.samples.append(sample)
        explained = self.expect(sample)
        kind = f"{status or code}"
        self.timeline[bucket][f"{kind}{'' if explained is None else '*'}"] += 1
        if explained is None:
            stats.errors += 1
        else:
            stats.expected += 1

    async def call(
        self,
        route: str,
        replica: Replica,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201),
        client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """One request, recorded under ``route``; None on a transport error or timeout."""
        client = client or self.client(replica)
        started = time.perf_counter()
        try:
            answer = await client.request(method, replica.base + path, **kwargs)
        except httpx.TimeoutException as exc:
            self.record(
                route,
                replica,
                None,
                (time.perf_counter() - started) * 1000,
                f"timeout:{type(exc).__name__}",
                False,
            )
            return None
        except httpx.TransportError as exc:
            self.record(
                route,
                replica,
                None,
                (time.perf_counter() - started) * 1000,
                f"transport:{type(exc).__name__}",
                False,
            )
            return None
        self.record(
            route, replica, answer, (time.perf_counter() - started) * 1000, "", answer.status_code in ok
        )
        return answer

    def invariant(self, text: str) -> None:
        """A wrong answer that is not an HTTP error (e.g. a paid payment never shown paid)."""
        self.invariant_errors.append(f"{self.now():.0f} s: {text}")

    # -- flows

    async def run(self, seconds: float) -> None:
        tasks = [asyncio.create_task(self.payment_starter(seconds))]
        if self.opts.proxy_calls and self.opts.agents > 0:
            tasks += [asyncio.create_task(self.agent(i, seconds)) for i in range(self.opts.agents)]
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 90
        while self.flows_in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    async def payment_starter(self, seconds: float) -> None:
        n = 0
        rate = self.opts.payments_per_second
        next_at = self.now()
        while self.now() < seconds and not self.stopping.is_set():
            next_at += self.rng.expovariate(rate)
            await asyncio.sleep(max(0.0, next_at - self.now()))
            if self.flows_in_flight >= 500:
                self.flows_skipped += 1
                continue
            n += 1
            flow = asyncio.create_task(self.payment_flow(n))
            self.flows.add(flow)  # a reference, or the loop may drop the task
            flow.add_done_callback(self.flows.discard)

    async def payment_flow(self, n: int) -> None:
        self.flows_in_flight += 1
        try:
            await self._payment_flow(n)
        except Exception as exc:  # a bug of this script must not pass silently
            self.invariant(f"payment flow crashed: {type(exc).__name__}: {exc}")
        finally:
            self.flows_in_flight -= 1

    async def _payment_flow(self, n: int) -> None:
        merchant = self.rng.choice(self.stack.merchants)
        headers = {"X-API-Key": merchant.key}
        amount = f"{self.rng.randint(*self.opts.cents) / 100:.2f}"
        body = {
            "orderId": f"{self.opts.label}-{n}",
            "amount": amount,
            "currency": "USD",
            "description": "soak",
        }
        replica = self.stack.pick()
        created = await self.call(
            "POST /api/payments", replica, "POST", "/api/payments", json=body, headers=headers
        )
        if created is None or created.status_code not in (200, 201):
            return
        payment = created.json()
        will_pay = self.rng.random() < self.opts.pay_ratio
        rec = PaymentRec(
            merchant.index,
            payment["invoiceId"],
            payment["paymentHash"],
            payment["amountSats"],
            replica.name,
            will_pay,
            payment["lightningInvoice"],
        )
        self.payments[rec.invoice_id] = rec
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await self.lookup(rec, headers, self.stack.pick_other(replica))
        await self.call(
            "GET /checkout/{id}/status", self.stack.pick(), "GET", f"/checkout/{rec.invoice_id}/status"
        )
        if not will_pay:
            return
        await asyncio.sleep(self.rng.uniform(0.2, 2.0))
        preimage = await self.stack.ledger.pay(self, payment["lightningInvoice"], "POST /api/dev/pay")
        if preimage is None:
            return
        if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != rec.payment_hash:
            self.invariant(f"{rec.invoice_id}: the preimage does not hash to the payment hash")
        rec.paid_at = time.time()
        begun = time.monotonic()
        watcher = self.stack.pick_other(replica)
        while time.monotonic() - begun < VISIBLE_WITHIN:
            seen = await self.lookup(rec, headers, watcher)
            if seen == "paid":
                rec.visible_after = time.monotonic() - begun
                return
            await asyncio.sleep(0.25)
            watcher = self.stack.pick_other(replica) if not watcher.routable else watcher
        if not self.explained_gap(begun):
            self.invariant(f"{rec.invoice_id} paid but not shown paid within {VISIBLE_WITHIN:.0f} s")

    def explained_gap(self, begun_monotonic: float) -> bool:
        """A fault run may explain a settlement that took long to show (the backend was cut, a
        replica down): when a fault window covers the start or the end of the wait."""
        for at in (begun_monotonic - self.t0, self.now()):
            probe = Sample(at, "settle -> visible", "-", None, "slow_settlement", 0.0, "")
            if self.expect(probe) is not None:
                return True
        return False

    async def lookup(self, rec: PaymentRec, headers: dict[str, str], replica: Replica) -> str | None:
        answer = await self.call(
            "GET /api/payments/{id}",
            replica,
            "GET",
            f"/api/payments/{rec.invoice_id}",
            ok=(200,),
            headers=headers,
        )
        if answer is None or answer.status_code != 200:
            return None
        return str(answer.json()["status"])

    # -- paid proxy: agents with L402 tokens

    def agent_client(self, index: int) -> httpx.AsyncClient:
        """An agent's own client, from its own source address (distinct payers for offer reuse)."""
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + index}", retries=0)
        client = httpx.AsyncClient(transport=transport, timeout=CLIENT_TIMEOUT)
        self.agent_clients.append(client)
        return client

    async def agent(self, index: int, seconds: float) -> None:
        client = self.agent_client(index)
        pause = self.opts.agents / self.opts.proxy_per_second
        token: str | None = None
        rec: TokenRec | None = None
        path = f"{self.stack.proxy_path}/data"
        while self.now() < seconds and not self.stopping.is_set():
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * pause)
            replica = self.stack.pick()
            if token is None:
                answer = await self.call(
                    "GET proxy (no token) -> 402", replica, "GET", path, ok=(402,), client=client
                )
            else:
                assert rec is not None
                exhausted = rec.ok >= self.opts.calls_per_token
                answer = await self.call(
                    "GET proxy (L402 token)",
                    replica,
                    "GET",
                    path,
                    client=client,
                    ok=(402,) if exhausted else (200,),
                    headers={"Authorization": token},
                )
                if answer is not None and answer.status_code == 200:
                    rec.ok += 1
                    if exhausted:
                        self.invariant(
                            f"token {rec.payment_hash[:12]} admitted call "
                            f"{rec.ok} of {self.opts.calls_per_token}"
                        )
            if answer is None or answer.status_code != 402:
                continue
            bought = await self.buy(answer)
            if bought is not None:
                token, rec = bought

    async def buy(self, challenge: httpx.Response) -> tuple[str, TokenRec] | None:
        """Pay a 402 challenge through the Lightning side; the token and its record."""
        l402 = next((v for v in challenge.headers.get_list("www-authenticate") if v.startswith("L402 ")), "")
        macaroon = re.search(r'macaroon="([^"]+)"', l402)
        invoice = re.search(r'invoice="([^"]+)"', l402)
        if not macaroon or not invoice:
            self.invariant(f"a 402 without an L402 challenge: {l402[:100]!r}")
            return None
        preimage = await self.stack.ledger.pay(self, invoice.group(1), "POST /api/dev/pay (L402 invoice)")
        if preimage is None:
            return None
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        rec = self.tokens.setdefault(payment_hash, TokenRec(payment_hash))
        return f"L402 {macaroon.group(1)}:{preimage}", rec


# ================================================================================ samplers


@dataclass
class RssSample:
    at: float  # seconds since the traffic started
    name: str
    pid: int
    rss_mb: float
    cpu_s: float


class Sampler:
    """RSS and CPU of each gateway every 10 s; the machine's other load every minute."""

    def __init__(self, stack: Stack, traffic: Traffic) -> None:
        self.stack = stack
        self.traffic = traffic
        self.rss: list[RssSample] = []
        self.loadavg: list[tuple[float, str]] = []
        self.others: Counter[str] = Counter()  # command -> CPU seconds over the run
        self.ours_cpu = 0.0
        self.window = 0.0

    async def run(self) -> None:
        last_load = -LOAD_EVERY
        before = cpu_by_process()
        while True:
            at = self.traffic.now()
            for replica in self.stack.replicas:
                if replica.proc.alive():
                    with contextlib.suppress(OSError, RuntimeError):
                        pid = replica.proc.pid
                        self.rss.append(
                            RssSample(at, replica.name, pid, rss_bytes(pid) / MB, cpu_seconds(pid))
                        )
            if at - last_load >= LOAD_EVERY:
                last_load = at
                self.loadavg.append((at, " ".join(Path("/proc/loadavg").read_text().split()[:3])))
                now = cpu_by_process()
                self.account(before, now)
                before = now
            await asyncio.sleep(RSS_EVERY)

    def account(self, before: dict[int, tuple[float, str]], now: dict[int, tuple[float, str]]) -> None:
        mine = own_pids()
        for pid, (cpu, command) in now.items():
            spent = cpu - before.get(pid, (0.0, ""))[0]
            if spent <= 0:
                continue
            if pid in mine:
                self.ours_cpu += spent
            else:
                self.others[command] += spent


def own_pids() -> set[int]:
    """This process, its children and their process groups (the servers)."""
    mine = {os.getpid()}
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            ppid, pgid = int(fields[1]), int(fields[2])
            if ppid == os.getpid():
                mine.add(int(entry.name))
                groups.add(pgid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[2]) in groups:
                    mine.add(int(entry.name))
    return mine


def short_command(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a][:6]
    out = []
    for word in words:
        if word.startswith("/") and len(word) > 24:
            parts = Path(word).parts
            word = "/".join(parts[-2:]) if "work" in parts else Path(word).name
        out.append(word)
    return " ".join(out)[:90]


def cpu_by_process() -> dict[int, tuple[float, str]]:
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[float, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
                if cpu > 0:
                    found[int(entry.name)] = (cpu, short_command(int(entry.name)))
    return found


# ============================================================================ drain and audit


class AuditDB:
    """Read-only queries on the gateway's database (SQLite file or PostgreSQL)."""

    def __init__(self, opts: Options, data_dir: Path) -> None:
        self.pg = opts.database_url
        self.sqlite_file = data_dir / "boltgate.db"

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.pg:
            dsn = self.pg.replace("postgresql+asyncpg://", "postgresql://")
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()
        with contextlib.closing(
            sqlite3.connect(f"file:{self.sqlite_file}?mode=ro", uri=True, timeout=30)
        ) as db:
            return db.execute(sql).fetchall()


@dataclass
class Drain:
    seconds: float
    pending_left: int
    unsettled_left: int


async def drain(stack: Stack, db: AuditDB, bound: float) -> Drain:
    """Receiver to always-200; wait until no delivery is pending and every settlement is recorded."""
    await stack.control("POST", "/_control/mode", {"mode": "ok"})
    begun = time.monotonic()
    pending = unsettled = -1
    while time.monotonic() - begun < bound:
        pending = (await db.rows("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))[0][0]
        unsettled = await count_unrecorded(stack, db)
        if pending == 0 and unsettled == 0:
            break
        await asyncio.sleep(2)
    return Drain(time.monotonic() - begun, pending, unsettled)


async def count_unrecorded(stack: Stack, db: AuditDB) -> int:
    settled = await stack.ledger.settled()
    paid = {
        h for (h,) in await db.rows("SELECT payment_hash FROM payments WHERE status IN ('paid', 'refunded')")
    }
    known = {h for (h,) in await db.rows("SELECT payment_hash FROM payments")}
    return sum(1 for h in settled if h in known and h not in paid)


async def pg_figures(db: AuditDB) -> str:
    """PostgreSQL's own counters: deadlocks, and how many rows the watchers/sweepers updated."""
    (stat,) = await db.rows(
        "SELECT xact_commit, deadlocks, conflicts FROM pg_stat_database WHERE datname = current_database()"
    )
    tables = await db.rows(
        "SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables"
        " WHERE relname IN ('payments', 'webhook_deliveries', "
        "'worker_cursors', 'l402_challenges') ORDER BY relname"
    )
    rows = ", ".join(f"{name} {ins:,} inserted / {upd:,} updated" for name, ins, upd in tables)
    return f"{stat[0]:,} commits, {stat[1]} deadlocks, {stat[2]} conflicts; rows: {rows}"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


async def audit(stack: Stack, traffic: Traffic, db: AuditDB) -> tuple[list[Check], dict[str, Any]]:
    """The final audit; also returns figures for the report."""
    settled = await stack.ledger.settled()
    payments = await db.rows(
        "SELECT id, merchant_id, status, payment_hash, amount_msat, received_msat FROM payments"
    )
    events = await db.rows("SELECT id, merchant_id, type, invoice_id FROM events")
    endpoints = await db.rows("SELECT id, merchant_id, enabled, disabled_reason FROM webhook_endpoints")
    deliveries = await db.rows(
        "SELECT id, endpoint_id, event_id, status, attempts, last_error FROM webhook_deliveries"
    )
    challenges = await db.rows("SELECT payment_hash, max_uses, uses, paid_at FROM l402_challenges")
    stats = await stack.control("GET", "/_control/stats")
    by_hash = {p[3]: p for p in payments}
    by_id = {p[0]: p for p in payments}
    challenge_of = {c[0]: c for c in challenges}
    checks: list[Check] = []

    # 1. every settled invoice is credited (payments) or its token was used (L402)
    lost, unknown, unused = [], [], []
    for h in settled:
        if h in by_hash:
            if by_hash[h][2] not in ("paid", "refunded"):
                lost.append(f"{by_hash[h][0]} is {by_hash[h][2]}")
        elif h in challenge_of:
            if challenge_of[h][3] is None:
                unused.append(h[:12])
        else:
            unknown.append(h[:12])
    settled_payments = sum(1 for h in settled if h in by_hash)
    checks.append(
        Check(
            "every invoice the node settled is paid in the gateway",
            not lost,
            f"{settled_payments} payment invoices settled, {len(lost)} not paid {lost[:5]}",
        )
    )
    settled_l402 = sum(1 for h in settled if h in challenge_of)
    checks.append(
        Check(
            "every settled L402 invoice belongs to a challenge that was used",
            not unknown,
            f"{settled_l402} L402 invoices settled, {len(unused)} paid but never used (the client stopped), "
            f"{len(unknown)} settled invoices the gateway does not know {unknown[:5]}",
        )
    )

    # 2. nothing paid without a settlement, and the amount is the node's
    phantom = [p[0] for p in payments if p[2] == "paid" and p[3] not in settled]
    wrong = [p[0] for p in payments if p[2] == "paid" and p[3] in settled and p[5] != settled[p[3]]]
    paid_count = sum(1 for p in payments if p[2] == "paid")
    checks.append(
        Check(
            "no payment paid without a settlement, amounts as settled",
            not phantom and not wrong,
            f"{paid_count} paid; {len(phantom)} without a settlement "
            f"{phantom[:5]}, {len(wrong)} with another amount",
        )
    )

    # 3. events: one payment.created each, one payment.completed per paid payment, never two
    per: dict[tuple[str, str], int] = Counter((e[3], e[2]) for e in events if e[3])
    twice = [(i, t, n) for (i, t), n in per.items() if n > 1 and t.startswith("payment.")]
    no_completed = [p[0] for p in payments if p[2] == "paid" and per[(p[0], "payment.completed")] == 0]
    no_created = [p[0] for p in payments if per[(p[0], "payment.created")] == 0]
    no_expired = [p[0] for p in payments if p[2] == "expired" and per[(p[0], "payment.expired")] == 0]
    checks.append(
        Check(
            "each paid payment has exactly one payment.completed event (never credited twice)",
            not twice and not no_completed,
            f"{sum(1 for (_i, t) in per if t == 'payment.completed')} payment.completed events; "
            f"{len(no_completed)} paid without one {no_completed[:5]}; duplicated events {twice[:5]}",
        )
    )
    checks.append(
        Check(
            "each payment has its payment.created (and, if expired, payment.expired) event",
            not no_created and not no_expired,
            f"{len(no_created)} without payment.created, {len(no_expired)} expired without payment.expired",
        )
    )

    # 4. every payment event was delivered to its merchant's endpoint
    endpoint_of = {e[1]: e[0] for e in endpoints}
    delivered: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for d in deliveries:
        delivered[(d[2], d[1])].append(d)
    missing, not_done = [], []
    for e in events:
        if not e[2].startswith("payment."):
            continue
        rows = delivered.get((e[0], endpoint_of.get(e[1], "")), [])
        if not rows:
            missing.append(e[0])
        elif not any(r[3] == "succeeded" for r in rows):
            not_done.append(f"{e[0]}: {rows[0][3]} after {rows[0][4]} attempts ({rows[0][5]})")
    disabled = [f"{e[0]}: {e[3]}" for e in endpoints if not e[2]]
    checks.append(
        Check(
            "every payment event was delivered to its endpoint (after the drain)",
            not missing and not not_done,
            f"{sum(1 for e in events if e[2].startswith('payment.'))} "
            f"payment events, {len(deliveries)} deliveries; "
            f"{len(missing)} without a delivery {missing[:3]}; {len(not_done)} not delivered {not_done[:3]}; "
            f"endpoints disabled: {disabled or 'none'}",
        )
    )

    # 5. the receiver agrees: a 200 with a valid signature for every delivery counted as succeeded
    received = stats["events"]
    event_ids = {e[0] for e in events}
    unconfirmed = [
        d[2] for d in deliveries if d[3] == "succeeded" and not (received.get(d[2]) or [0, 0, None])[2]
    ]
    strangers = [i for i in received if i not in event_ids]
    bad = stats["counts"].get("bad_signature", 0)
    checks.append(
        Check(
            "the receiver answered 200 (valid signature) to every delivery the gateway counts as delivered",
            not unconfirmed and not strangers and bad == 0,
            f"{len(unconfirmed)} unconfirmed {unconfirmed[:3]}; "
            f"{len(strangers)} events the database does not have; "
            f"{bad} bad signatures",
        )
    )

    # 6. L402: never more calls admitted than sold; the client's count matches the database's
    over = [c[0][:12] for c in challenges if c[1] is not None and c[2] > c[1]]
    mismatch = [
        (h[:12], rec.ok, challenge_of[h][2])
        for h, rec in traffic.tokens.items()
        if h in challenge_of and rec.ok != challenge_of[h][2]
    ]
    checks.append(
        Check(
            "no L402 token admitted more calls than sold; the client's 200s match the database's count",
            not over and not mismatch,
            f"{len(traffic.tokens)} tokens bought, "
            f"{sum(r.ok for r in traffic.tokens.values())} paid calls answered; "
            f"{len(over)} over their limit; {len(mismatch)} counts differ {mismatch[:3]}",
        )
    )

    # 7. the client's view: every payment it created exists, every one it paid is paid
    absent = [i for i in traffic.payments if i not in by_id]
    unpaid = [
        r.invoice_id
        for r in traffic.payments.values()
        if r.paid_at is not None and by_id.get(r.invoice_id, ("",) * 3)[2] != "paid"
    ]
    checks.append(
        Check(
            "every payment the client created exists; every one it paid is paid",
            not absent and not unpaid,
            f"{len(traffic.payments)} created, "
            f"{sum(1 for r in traffic.payments.values() if r.paid_at)} paid by the "
            f"client; {len(absent)} missing, {len(unpaid)} paid but not marked paid {unpaid[:3]}",
        )
    )

    # 8. at-least-once, not more: a second 200 for an event only after a slow (timed out) answer
    duplicates = sum(max(0, e[3] - 1) for e in received.values())
    slow = stats["counts"].get("fate_slow", 0)
    checks.append(
        Check(
            "no event received twice except after an injected slow answer",
            duplicates <= slow or traffic.opts.allow_duplicates,
            f"{duplicates} second 200s, {slow} slow answers"
            + (
                " (a replica was killed: its unrecorded deliveries go out again)"
                if traffic.opts.allow_duplicates
                else ""
            ),
        )
    )

    figures = {
        "pg": await pg_figures(db) if db.pg else None,
        "payments": len(payments),
        "status": Counter(p[2] for p in payments),
        "events": Counter(e[2] for e in events),
        "deliveries": Counter(d[3] for d in deliveries),
        "attempts": Counter(min(d[4], 6) for d in deliveries),
        "receiver": stats["counts"],
        "received": received,
        "settled": len(settled),
    }
    return checks, figures


# ================================================================================ the report


def fmt_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def route_table(traffic: Traffic, seconds: float) -> list[str]:
    lines = [
        "| route | requests | req/s | statuses | errors | expected non-2xx | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for route in sorted(traffic.routes):
        s = traffic.routes[route]
        ordered = sorted(s.ms)
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(s.statuses.items()))
        transport = len(s.ms) - sum(s.statuses.values())
        if transport:
            statuses += f", no answer: {transport}"
        lines.append(
            f"| {route} | {len(s.ms):,} | {len(s.ms) / seconds:,.1f} "
            f"| {statuses} | {s.errors} | {s.expected} "
            f"| {fmt_ms(percentile(ordered, 50))} | {fmt_ms(percentile(ordered, 99))} "
            f"| {fmt_ms(ordered[-1] if ordered else math.nan)} |"
        )
    return lines


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (y per x) of the points; nan with fewer than 2."""
    if len(points) < 2:
        return math.nan
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return math.nan if den == 0 else sum((p[0] - mx) * (p[1] - my) for p in points) / den


def signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.3f}"


def rss_lines(sampler: Sampler, seconds: float) -> list[str]:
    out = [
        "| gateway | samples | start MB | per minute (MB) | first 5 min mean | "
        "last 5 min mean | slope MB/min (after min 1) | slope 2nd half | CPU s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    names = sorted({s.name for s in sampler.rss})
    for name in names:
        samples = [s for s in sampler.rss if s.name == name]
        minutes = []
        previous_pid = samples[0].pid
        for m in range(int(seconds // 60) + 1):
            near = min(samples, key=lambda s: abs(s.at - 60 * m))
            if abs(near.at - 60 * m) <= RSS_EVERY:
                minutes.append(f"{near.rss_mb:.0f}{'*' if near.pid != previous_pid else ''}")
                previous_pid = near.pid
        window = min(300.0, seconds / 2)
        first = [s.rss_mb for s in samples if s.at <= window]
        last = [s.rss_mb for s in samples if s.at >= seconds - window]
        same = [s for s in samples if s.pid == samples[-1].pid]  # since the last (re)start
        after1 = [(s.at / 60, s.rss_mb) for s in same if s.at >= same[0].at + 60]
        half = [point for point in after1 if point[0] * 60 >= seconds / 2]
        if len(after1) < 3 or len(half) < 3:
            after1 = half = []  # too short since a restart to say
        cpu = sum(max(s.cpu_s for s in samples if s.pid == pid) for pid in {s.pid for s in samples})
        out.append(
            f"| {name} | {len(samples)} | {samples[0].rss_mb:.1f} | {' '.join(minutes)} | "
            f"{sum(first) / max(1, len(first)):.1f} | {sum(last) / max(1, len(last)):.1f} | "
            f"{signed(slope(after1))} | {signed(slope(half))} | {cpu:,.0f} |"
        )
    return out


def webhook_lines(traffic: Traffic, figures: dict[str, Any]) -> list[str]:
    counts = figures["receiver"]
    received = figures["received"]
    lags = []
    for event in received.values():
        if event[0] == "payment.completed" and event[2] is not None:
            rec = traffic.payments.get(event[1])
            if rec is not None and rec.paid_at is not None:
                lags.append(event[2] - rec.paid_at)
    lags.sort()
    dup = sum(max(0, e[3] - 1) for e in received.values())
    attempts = ", ".join(f"{k if k < 6 else '6+'}: {v:,}" for k, v in sorted(figures["attempts"].items()))
    return [
        f"- receiver: {counts.get('attempts', 0):,} attempts; "
        f"injected: {counts.get('fate_500', 0):,} HTTP 500, "
        f"{counts.get('fate_slow', 0):,} slow (> timeout), {counts.get('fate_reset', 0):,} resets; "
        f"{counts.get('fate_ok', 0):,} answered 200; {dup:,} "
        "duplicates received (at-least-once: the slow ones); "
        f"{counts.get('bad_signature', 0)} bad signatures",
        f"- deliveries by attempts needed: {attempts}; by status: {dict(figures['deliveries'])}",
        f"- dev-node settlement -> first 200 at the receiver (payment.completed, includes the retries of the "
        f"events queued ahead of it): n {len(lags):,}, p50 {percentile(lags, 50):.2f} s, "
        f"p99 {percentile(lags, 99):.2f} s, max {lags[-1] if lags else math.nan:.2f} s",
    ]


def settle_lines(traffic: Traffic) -> list[str]:
    seen = sorted(r.visible_after for r in traffic.payments.values() if r.visible_after is not None)
    paid = sum(1 for r in traffic.payments.values() if r.paid_at is not None)
    return [
        f"- paid -> shown `paid` by GET /api/payments/{{id}} "
        "(polled every 0.25 s, another replica when there are "
        f"two): {len(seen):,} of {paid:,} paid; p50 {percentile(seen, 50) * 1000:,.0f} ms, "
        f"p99 {percentile(seen, 99) * 1000:,.0f} ms, max {(seen[-1] if seen else math.nan) * 1000:,.0f} ms"
    ]


def log_lines(stack: Stack) -> list[str]:
    """Warnings and errors the gateways logged, by event name."""
    out = []
    for replica in stack.replicas:
        counts: Counter[str] = Counter()
        paid = 0
        path = replica.proc.log
        with contextlib.suppress(OSError), path.open(errors="replace") as handle:
            for line in handle:
                if not line.startswith("{"):
                    if "Traceback" in line:
                        counts["(plain traceback)"] += 1
                    continue
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("event") == "payment_paid":
                        paid += 1
                    if entry.get("level") in ("warning", "error", "critical"):
                        counts[f"{entry['level']} {entry.get('event')}"] += 1
        top = ", ".join(f"{k} x{v:,}" for k, v in counts.most_common(8)) or "none"
        out.append(
            f"- {replica.name} (started {replica.proc.starts}x): "
            f"marked {paid:,} payments paid; warnings/errors: {top}"
        )
    return out


def load_lines(sampler: Sampler, seconds: float) -> list[str]:
    others = ", ".join(
        f"`{cmd}` {cpu / seconds * 100:.0f} %"
        for cmd, cpu in sampler.others.most_common(5)
        if cpu / seconds > 0.02
    )
    loads = " ".join(f"{a / 60:.0f}m:{v.split()[0]}" for a, v in sampler.loadavg)
    return [
        "- CPU over the run, in % of one core: this benchmark's "
        f"processes {sampler.ours_cpu / seconds * 100:.0f} %; "
        f"others: {others or 'nothing notable'}",
        f"- load average (1 min) by minute: {loads}",
    ]


def header_lines(opts: Options, stack: Stack, seconds: float, revision: str) -> list[str]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join([".venv/bin/python", f"bench/{Path(sys.argv[0]).name}", *opts.argv])
    db = (
        "SQLite (WAL)"
        if opts.database == "sqlite"
        else f"PostgreSQL (fresh database), {opts.replicas} replicas"
    )
    f = opts.flaky
    return [
        f"Run {now}: `{command}` (boltgate at {revision}); {seconds / 60:.1f} min of traffic.",
        "",
        f"Setup: {db}, `boltgate serve` (1 worker each), "
        f"{stack.ledger.name}, {opts.merchants} merchants each with one "
        f"webhook endpoint (all events), `BOLTGATE_WEBHOOK_TIMEOUT_SECONDS={opts.webhook_timeout:g}`, "
        f"`BOLTGATE_INVOICE_EXPIRY_SECONDS={opts.invoice_expiry}`, "
        f"`BOLTGATE_DATABASE_POOL_SIZE={opts.pool_size}`, "
        f"rate limit out of the way. Traffic: {opts.payments_per_second:g} payments/s (Poisson), "
        f"{opts.pay_ratio:.0%} paid; {opts.agents} L402 agents, {opts.proxy_per_second:g} proxied calls/s, "
        f"{opts.calls_per_token} calls per token. Receiver: {f.p500:.0%} HTTP 500, {f.pslow:.0%} slow "
        f"({opts.webhook_timeout + 1:g} s), {f.preset:.0%} resets per attempt, at most {f.cap} per event.",
    ]


def report(
    opts: Options,
    stack: Stack,
    traffic: Traffic,
    sampler: Sampler,
    seconds: float,
    revision: str,
    drained: Drain,
    checks: list[Check],
    figures: dict[str, Any],
) -> tuple[str, bool]:
    errors = sum(s.errors for s in traffic.routes.values())
    passed = all(c.ok for c in checks) and errors == 0 and not traffic.invariant_errors
    out = header_lines(opts, stack, seconds, revision)
    out += [
        "",
        *load_lines(sampler, seconds),
        "",
        "**Requests** (errors: 5xx, transport errors, timeouts, unexpected statuses)",
        "",
    ]
    out += route_table(traffic, seconds)
    unexplained = [s for s in traffic.samples if traffic.expect(s) is None]
    if unexplained:
        kinds = Counter(f"{s.route} -> {s.status or ''} {s.code}" for s in unexplained)
        out += ["", "Errors: " + "; ".join(f"{k} x{v}" for k, v in kinds.most_common(10))]
        out += [f"  first: {unexplained[0]}"]
    if traffic.invariant_errors:
        out += [
            "",
            f"Wrong answers ({len(traffic.invariant_errors)}): " + "; ".join(traffic.invariant_errors[:5]),
        ]
    if traffic.flows_skipped:
        out += [
            "",
            f"Payment flows not started (500 in flight: the gateway fell behind): {traffic.flows_skipped}",
        ]
    out += ["", "**Gateway memory (RSS, sampled every 10 s)**", "", *rss_lines(sampler, seconds)]
    out += ["", "**Settlements and webhooks**", "", *settle_lines(traffic), *webhook_lines(traffic, figures)]
    out += [
        f"- drain (receiver switched to always-200): {drained.seconds:.0f} s; pending deliveries left "
        f"{drained.pending_left}, settlements not recorded {drained.unsettled_left}",
        f"- payments at the end: {dict(figures['status'])}; events: {dict(figures['events'])}",
        *([f"- PostgreSQL: {figures['pg']}"] if figures["pg"] else []),
        *log_lines(stack),
        "",
        "**Audit**",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    out += [f"| {c.name} | {'ok' if c.ok else 'FAILED'} | {c.detail} |" for c in checks]
    out += [
        "",
        f"Overall: {'PASS' if passed else 'FAIL'} ({errors} request "
        f"errors, {len(traffic.invariant_errors)} wrong answers)",
    ]
    return "\n".join(out), passed


# ==================================================================================== a run


@contextlib.asynccontextmanager
async def database_for(opts: Options) -> AsyncIterator[None]:
    """A fresh PostgreSQL database for the run (dropped after), or nothing for SQLite."""
    if opts.database != "postgresql" or opts.database_url:
        yield
        return
    async with pg_database(opts.pg_admin) as url:
        opts.database_url = url
        progress(f"PostgreSQL database {url.rsplit('/', 1)[-1]}")
        try:
            yield
        finally:
            opts.database_url = None


@contextlib.asynccontextmanager
async def pg_database(admin_dsn: str) -> AsyncIterator[str]:
    """``payments.temporary_database`` for a running event loop: a fresh, uniquely named database
    (its SQLAlchemy URL), dropped after."""
    name = f"boltgate_soak_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=30)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await execute(f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(admin_dsn)
        yield urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", "", ""))
    finally:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_run_dir(label: str) -> Path:
    run_dir = OUT / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{label}-{uuid.uuid4().hex[:4]}"
    run_dir.mkdir(parents=True)
    return run_dir


@dataclass
class Outcome:
    text: str
    passed: bool
    stack: Stack
    traffic: Traffic
    sampler: Sampler
    checks: list[Check]
    figures: dict[str, Any]
    alive: dict[str, bool]  # each gateway, right after the traffic


Hook = Callable[[Stack, Traffic], Awaitable[None]]


async def soak(
    opts: Options,
    *,
    ledger_factory: Callable[[Stack], Ledger] | None = None,
    during: Hook | None = None,
    before_audit: Hook | None = None,
) -> Outcome:
    """One run: start the stack, run the traffic (``during`` runs beside it), drain, audit, report."""
    revision = boltgate_revision()
    run_dir = new_run_dir(opts.label)
    progress(f"run directory {run_dir}")
    async with database_for(opts):
        stack = Stack(opts, run_dir)
        if ledger_factory is not None:
            stack.ledger = ledger_factory(stack)
        try:
            await stack.start()
            traffic = Traffic(stack, opts)
            sampler = Sampler(stack, traffic)
            sampling = asyncio.create_task(sampler.run())
            seconds = opts.minutes * 60
            progress(f"traffic for {opts.minutes:g} min")
            ticker = asyncio.create_task(tick(traffic, seconds))
            side = asyncio.create_task(during(stack, traffic)) if during is not None else None
            try:
                await traffic.run(seconds)
                if side is not None:
                    await side
            finally:
                ticker.cancel()
                if side is not None and not side.done():
                    side.cancel()
            elapsed = traffic.now()
            alive = {r.name: r.proc.alive() for r in stack.replicas}
            if before_audit is not None:
                await before_audit(stack, traffic)
            db = AuditDB(opts, stack.data_dir)
            progress(f"traffic done after {elapsed:.0f} s; draining (at most {opts.drain_seconds:.0f} s)")
            drained = await drain(stack, db, opts.drain_seconds)
            sampling.cancel()
            progress(f"drained in {drained.seconds:.0f} s; auditing")
            checks, figures = await audit(stack, traffic, db)
            await traffic.close()
            text, passed = report(
                opts, stack, traffic, sampler, min(elapsed, seconds), revision, drained, checks, figures
            )
            (run_dir / "report.md").write_text(text + "\n")
            return Outcome(text, passed, stack, traffic, sampler, checks, figures, alive)
        finally:
            stack.stop()


async def tick(traffic: Traffic, seconds: float) -> None:
    while True:
        await asyncio.sleep(60)
        errors = sum(s.errors for s in traffic.routes.values())
        total = sum(len(s.ms) for s in traffic.routes.values())
        paid = sum(1 for r in traffic.payments.values() if r.paid_at)
        progress(
            f"{traffic.now() / 60:.0f}/{seconds / 60:.0f} min: {total:,} requests, {errors} errors, "
            f"{len(traffic.payments):,} payments ({paid:,} paid), {len(traffic.tokens):,} tokens, "
            f"{traffic.flows_in_flight} flows in flight"
        )


# ====================================================================================== main


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--replicas", type=int, help="gateways (default 1 on SQLite, 2 on PostgreSQL)")
    parser.add_argument("--minutes", type=float, default=30.0, help="traffic duration (30)")
    parser.add_argument("--payments-per-second", type=float, default=3.0)
    parser.add_argument("--pay-ratio", type=float, default=0.8)
    parser.add_argument("--proxy-per-second", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--calls-per-token", type=int, default=10)
    parser.add_argument("--merchants", type=int, default=20)
    parser.add_argument("--drain-seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    replicas = args.replicas or (2 if args.database == "postgresql" else 1)
    return Options(
        label=f"{args.database}-{replicas}",
        database=args.database,
        replicas=replicas,
        minutes=args.minutes,
        payments_per_second=args.payments_per_second,
        pay_ratio=args.pay_ratio,
        proxy_per_second=args.proxy_per_second,
        agents=args.agents,
        calls_per_token=args.calls_per_token,
        merchants=args.merchants,
        drain_seconds=args.drain_seconds,
        seed=args.seed,
        argv=argv,
    )


def receiver_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="soak.py receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--p500", type=float, default=0.10)
    parser.add_argument("--pslow", type=float, default=0.05)
    parser.add_argument("--preset", type=float, default=0.02)
    parser.add_argument("--cap", type=int, default=3)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args(argv)
    flaky = Flaky(a.p500, a.pslow, a.preset, a.cap, a.slow_seconds)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(receiver_main(a.port, flaky, a.seed))
    return 0


def run_main(main: Callable[[], Awaitable[int]]) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        progress("interrupted: servers stopped")
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["receiver"]:
        return receiver_command(argv[1:])
    opts = parse_args(argv)

    async def go() -> int:
        outcome = await soak(opts)
        print(outcome.text, flush=True)
        return 0 if outcome.passed else 1

    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
