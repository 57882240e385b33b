"""Paid-proxy benchmark: the latency boltgate's L402 proxy adds over calling its upstream directly,
its peak throughput, and the gateway's memory while it streams large bodies.

Run from the repository root, with nothing else heavy running (the machine has 2 cores)::

    .venv/bin/python bench/proxy.py              # about 4 minutes, plain-text tables
    .venv/bin/python bench/proxy.py --markdown   # the same tables in Markdown, for bench/RESULTS.md
    .venv/bin/python bench/proxy.py --seconds 3 --warmup 1 --rounds 1   # a quick trial

Three processes, all on 127.0.0.1: the upstream (``bench/proxy_upstream.py``: a raw ASGI app under
uvicorn), ``boltgate serve`` (one worker; SQLite and the dev Lightning node in a temporary directory;
loopback allowed by ``BOLTGATE_PROXY_ALLOW_NETWORKS``; rate limit out of the way) and this script,
the client: asyncio on uvloop with a small hand-written HTTP/1.1 client over keep-alive connections
opened beforehand. One proxy is created for the upstream (1 sat per request, every path), one of
its invoices is paid through the dev node, and that credential, ``Authorization: L402
<macaroon>:<preimage>``, is reused by every proxied request.

1. Memory (first, on a gateway warmed by a few small transfers): the gateway's RSS (``VmRSS`` of
   /proc/<pid>/status, sampled every 50 ms) while 1 GiB is downloaded through the proxy (read in
   256 KiB pieces and dropped, the byte count checked) and while 100 MiB are uploaded through it
   (the upstream's count checked). The same transfers straight to the upstream give the
   throughput to compare with.
2. Latency, open loop: request i is sent at t0 + i / rate whatever happened to the earlier ones
   (over a pool of 64 connections opened beforehand), and its latency runs from that
   scheduled time to the last byte of the answer, so a slow answer cannot hide by making the client
   send less (no coordinated omission). At each rate, a cell of ``GET /data`` straight to the
   upstream ("direct") and one through the proxy follow each other (direct first in odd rounds,
   proxy first in even ones), each after a warm-up at the same rate; rounds repeat the pairs,
   because this VM's speed drifts 10-40 % between minutes. "added" is proxy minus direct, per
   round, and the median of the rounds. A cell the server could not keep up with is followed by
   6 s of rest, so that the next one starts from a gateway that has caught up (and whose idle
   upstream connections have expired).
3. Peak throughput, closed loop: 16 and 64 connections each sending its next request as soon as its
   answer arrives; requests/s, latency and the CPU time each server process spent per request
   (from /proc/<pid>/stat). The client is Python too and shares the 2 cores: the direct rows may be
   bounded by the client rather than the upstream.

How to read it: p50/p90/p99/max are milliseconds from the scheduled time (open loop) or the send
(closed loop) to the end of the answer. "achieved/s" below the rate means the server fell behind.
"lag p99" is how late the client sent: event-loop timers have about 1 ms resolution (which weighs
on direct and proxy alike), and a server that falls behind keeps every connection busy. errors =
answers other than 200, failed requests, and "unfinished" ones: a server that falls behind gets a
few seconds after the last scheduled send to catch up, then what is still unanswered is abandoned
and enters the percentiles with the time it had waited (which makes them lower bounds). Errors are
detailed below the tables. Targets (the issue): p99 added ≤ 5 ms at 200 requests/s (the median
over rounds) and an RSS growth < 50 MB while 1 GiB streams through; both are printed as PASS/FAIL,
and the exit status is 0 whenever the run completes. MB = 10^6 bytes. Progress goes to stderr, the
report to stdout. Nothing is written outside a temporary directory, which is deleted at the end
together with every process the script started (also on Ctrl-C, SIGTERM or an error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds modules (bolt11.py, this proxy.py) that shadow packages: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import httpx  # noqa: E402
import uvloop  # noqa: E402

VENV_BIN = Path(sys.executable).parent
UPSTREAM_SCRIPT = HERE / "proxy_upstream.py"

RATES = (50, 200, 500)
CONCURRENCIES = (16, 64)
POOL_CONNECTIONS = 64
DOWNLOAD_BYTES = 1 << 30
UPLOAD_BYTES = 100 << 20
CHUNK = 256 * 1024
SAMPLE_SECONDS = 0.05
REQUEST_TIMEOUT = 30.0
DRAIN_GRACE = 3.0  # least seconds an open-loop cell waits for late answers after its last send
PAUSE = 0.5  # seconds between cells
IDLE_REUSE_SECONDS = 4.0  # a client connection idle longer is replaced (uvicorn closes at 5 s)
RECOVERY = 6.0  # seconds of rest after an open-loop cell the server could not keep up with
START_TIMEOUT = 60.0
MB = 1_000_000

TARGET_RATE = 200
TARGET_ADDED_P99_MS = 5.0
TARGET_RSS_GROWTH_MB = 50.0

READ_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that every ``finally`` still cleans up."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Server:
    """A process this script started, in its own process group, and its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it left behind in its group

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(name: str, argv: list[str], env: dict[str, str], work: Path, servers: list[Server]) -> Server:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, proc, log)
    servers.append(server)
    return server


def wait_ready(server: Server, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {START_TIMEOUT:.0f} s: {url}")


def gateway_env(data_dir: Path, port: int) -> dict[str, str]:
    """The environment without any BOLTGATE_* of the caller's, plus the benchmark's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTGATE_")}
    env.update(
        {
            "BOLTGATE_HOST": "127.0.0.1",
            "BOLTGATE_PORT": str(port),
            "BOLTGATE_DATA_DIR": str(data_dir),
            "BOLTGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "BOLTGATE_PROXY_ALLOW_NETWORKS": "127.0.0.1",
            "BOLTGATE_RATE_LIMIT": "1000000/second",
            "BOLTGATE_LOG_LEVEL": "WARNING",
        }
    )
    return env


def merchant_key(env: dict[str, str], cwd: Path) -> str:
    argv = [str(VENV_BIN / "boltgate"), "merchant", "create", "Bench"]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"boltgate merchant create failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1].strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class RssSampler:
    """The RSS of one process before, at its peak during, and right after a ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = self.after = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1

    def __enter__(self) -> RssSampler:
        self.before = self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes(self.pid)
        self.peak = max(self.peak, self.after)


# --------------------------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Setup:
    """The running servers and the paid proxy the benchmark calls."""

    gateway: Server
    upstream: Server
    gateway_port: int
    upstream_port: int
    proxy_path: str  # /l402/proxy/prx_...
    authorization: str  # L402 <macaroon>:<preimage>


def create_proxy(client: httpx.Client, key: str, upstream_port: int) -> str:
    body = {"name": "Bench", "targetBaseUrl": f"http://127.0.0.1:{upstream_port}", "defaultPriceSats": 1}
    created = client.post("/api/proxy", json=body, headers={"X-API-Key": key})
    if created.status_code != 201:
        raise RuntimeError(f"POST /api/proxy: {created.status_code} {created.text[:500]}")
    return str(created.json()["proxyUrl"])


def buy_credential(client: httpx.Client, proxy_path: str) -> str:
    """Pay the proxy's 402 challenge through the dev node; the reusable Authorization value."""
    challenge = client.get(f"{proxy_path}/data")
    if challenge.status_code != 402:
        raise RuntimeError(f"GET {proxy_path}/data unpaid: {challenge.status_code}, expected 402")
    l402 = next(v for v in challenge.headers.get_list("www-authenticate") if v.startswith("L402 "))
    macaroon = re.search(r'macaroon="([^"]+)"', l402)
    invoice = re.search(r'invoice="([^"]+)"', l402)
    if not macaroon or not invoice:
        raise RuntimeError(f"unexpected L402 challenge: {l402[:300]}")
    paid = client.post("/api/dev/pay", json={"invoice": invoice.group(1)})
    if paid.status_code != 200:
        raise RuntimeError(f"POST /api/dev/pay: {paid.status_code} {paid.text[:500]}")
    return f"L402 {macaroon.group(1)}:{paid.json()['preimage']}"


def check_routes(setup: Setup) -> None:
    """The proxied answer is the upstream's, byte for byte, and every path opens with the credential."""
    direct = httpx.get(f"http://127.0.0.1:{setup.upstream_port}/data")
    headers = {"Authorization": setup.authorization}
    with httpx.Client(base_url=f"http://127.0.0.1:{setup.gateway_port}", headers=headers) as client:
        proxied = client.get(f"{setup.proxy_path}/data")
        small = client.get(f"{setup.proxy_path}/big", params={"size": 1000})
    if proxied.status_code != 200 or proxied.content != direct.content:
        raise RuntimeError(f"proxied /data: {proxied.status_code} {proxied.text[:300]!r}")
    if small.status_code != 200 or small.content != bytes(1000):
        raise RuntimeError(f"proxied /big?size=1000: {small.status_code}, {len(small.content)} bytes")


def start_servers(work: Path, servers: list[Server]) -> Setup:
    upstream_port, gateway_port = free_port(), free_port()
    upstream_env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTGATE_")}
    argv = [sys.executable, str(UPSTREAM_SCRIPT), str(upstream_port)]
    upstream = start("upstream", argv, upstream_env, work, servers)
    data_dir = work / "data"
    data_dir.mkdir()
    env = gateway_env(data_dir, gateway_port)
    key = merchant_key(env, data_dir)
    gateway = start("gateway", [str(VENV_BIN / "boltgate"), "serve"], env, work, servers)
    wait_ready(upstream, f"http://127.0.0.1:{upstream_port}/data")
    wait_ready(gateway, f"http://127.0.0.1:{gateway_port}/healthz")
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30) as client:
        proxy_path = create_proxy(client, key, upstream_port)
        authorization = buy_credential(client, proxy_path)
    setup = Setup(gateway, upstream, gateway_port, upstream_port, proxy_path, authorization)
    check_routes(setup)
    return setup


# -------------------------------------------------------------------------------------------- client


class Answer(NamedTuple):
    status: int
    size: int  # body bytes read
    body: bytes  # kept only when asked for


def request_bytes(method: str, port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection:
    """One keep-alive HTTP/1.1 connection: a request written whole, its answer read (and dropped).

    Understands Content-Length and chunked bodies; a body with neither is read to the end of the
    connection, which then is not reused.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True
        self.last_used = time.perf_counter()

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    def close(self) -> None:
        self.reusable = False
        self.writer.close()

    @property
    def stale(self) -> bool:
        """Closed by the server, or idle long enough that the server may be closing it now."""
        idle = time.perf_counter() - self.last_used
        return self.reader.at_eof() or self.writer.is_closing() or idle > IDLE_REUSE_SECONDS

    async def exchange(self, request: bytes, keep: bool = False) -> Answer:
        self.writer.write(request)
        answer = await self.answer(keep)
        self.last_used = time.perf_counter()
        return answer

    async def answer(self, keep: bool) -> Answer:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"\r\nconnection: close" in lower:
            self.reusable = False
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
            return Answer(status, *await self._fixed(length, keep))
        if re.search(rb"\r\ntransfer-encoding:[^\r]*chunked", lower):
            return Answer(status, *await self._chunked(keep))
        if status in (204, 304) or 100 <= status < 200:
            return Answer(status, 0, b"")
        self.reusable = False
        body = await self.reader.read(-1)
        return Answer(status, len(body), body if keep else b"")

    async def _fixed(self, length: int, keep: bool) -> tuple[int, bytes]:
        if length <= CHUNK:
            body = await self.reader.readexactly(length)
            return length, body if keep else b""
        parts: list[bytes] = []
        left = length
        while left:
            piece = await self.reader.read(min(left, CHUNK))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            if keep:
                parts.append(piece)
        return length, b"".join(parts)

    async def _chunked(self, keep: bool) -> tuple[int, bytes]:
        size = 0
        parts: list[bytes] = []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            length = int(line.split(b";", 1)[0].strip(), 16)
            if length == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return size, b"".join(parts)
            got, data = await self._fixed(length, keep)
            size += got
            parts.append(data)
            await self.reader.readexactly(2)

    async def upload(self, head: bytes, size: int) -> Answer:
        """Send ``head`` (with a Content-Length of ``size``) and ``size`` bytes, chunk by chunk."""
        self.writer.write(head)
        for piece in zero_chunks(size):
            self.writer.write(piece)
            await self.writer.drain()
        return await self.answer(keep=True)


def zero_chunks(size: int) -> Iterator[bytes]:
    """``size`` zero bytes in CHUNK-sized pieces (one buffer, sliced: nothing accumulates)."""
    zeros = bytes(CHUNK)
    left = size
    while left > 0:
        yield zeros if left >= CHUNK else zeros[:left]
        left -= CHUNK


class Pool:
    """Keep-alive connections opened beforehand, the most recently used taken first.

    One idle for longer than the servers' keep-alive timeout allows (uvicorn's: 5 s) is replaced by
    a new connection when its turn comes, rather than sending on a socket the server is closing.
    """

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self.idle: asyncio.LifoQueue[Connection | None] = asyncio.LifoQueue()

    async def open(self) -> Pool:
        for _ in range(self.size):
            self.idle.put_nowait(await Connection.open(self.port))
        return self

    def close(self) -> None:
        while not self.idle.empty():
            conn = self.idle.get_nowait()
            if conn is not None:
                conn.close()

    async def exchange(self, request: bytes) -> tuple[Answer, float]:
        """The answer, and when the request was written (a broken connection is replaced)."""
        conn = await self.idle.get()
        if conn is not None and conn.stale:
            conn.close()
            conn = None
        ok = False
        try:
            if conn is None:
                conn = await Connection.open(self.port)
            sent = time.perf_counter()
            answer = await conn.exchange(request)
            ok = conn.reusable
            return answer, sent
        finally:
            if not ok and conn is not None:
                conn.close()
            self.idle.put_nowait(conn if ok else None)


# ------------------------------------------------------------------------------------------ measures


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan when there are none)."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Cell:
    """One measured run: latencies in ms (sorted), errors by kind."""

    route: str
    rate: float | None  # None: closed loop
    connections: int
    round: int
    latencies: list[float]
    lags: list[float]
    errors: Counter[str]
    achieved: float
    cpu_us: dict[str, float] = field(default_factory=dict)  # server name -> CPU µs per request

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True)
class Route:
    name: str  # direct / proxy
    port: int
    request: bytes


def _error_kind(exc: BaseException) -> str:
    return type(exc).__name__


async def open_loop(pool: Pool, route: Route, rate: float, seconds: float, round_: int) -> Cell:
    """Request i sent at start + i / rate; latency from that scheduled time to the end of the answer.

    A server that falls behind gets DRAIN_GRACE (at least) after the last scheduled send to catch
    up; requests still unanswered then are abandoned, counted as errors ("unfinished") and enter
    the latencies with the time they had waited (a lower bound of theirs).
    """
    total = max(2, round(rate * seconds))
    latencies: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()
    done_times: list[float] = []
    pending: dict[asyncio.Task[None], float] = {}

    async def one(at: float) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                answer, sent = await pool.exchange(route.request)
        except READ_ERRORS as exc:
            errors[_error_kind(exc)] += 1
            return
        done = time.perf_counter()
        done_times.append(done)
        # a timer may fire a little early: never count less than the time since the send
        latencies.append((done - min(at, sent)) * 1000)
        lags.append(max(0.0, sent - at) * 1000)
        if answer.status != 200:
            errors[f"HTTP {answer.status}"] += 1

    begin = time.perf_counter() + 0.005
    for i in range(total):
        at = begin + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(at))
        pending[task] = at
        task.add_done_callback(lambda t: pending.pop(t, None))
    grace = max(DRAIN_GRACE, seconds / 2)
    if pending:
        await asyncio.wait(
            list(pending), timeout=max(0.0, begin + total / rate + grace - time.perf_counter())
        )
    if pending:
        now = time.perf_counter()
        abandoned = dict(pending)
        for task, at in abandoned.items():
            task.cancel()
            latencies.append((now - at) * 1000)
        errors["unfinished"] += len(abandoned)
        await asyncio.gather(*abandoned, return_exceptions=True)
    span = max(done_times) - min(done_times) if len(done_times) > 1 else 0.0
    achieved = (len(done_times) - 1) / span if span > 0 else 0.0
    return Cell(route.name, rate, pool.size, round_, sorted(latencies), sorted(lags), errors, achieved)


async def closed_loop(route: Route, connections: int, seconds: float, pids: dict[str, int]) -> Cell:
    """``connections`` connections, each sending its next request as soon as the answer is in."""
    conns = [await Connection.open(route.port) for _ in range(connections)]
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def worker(index: int, stop_at: float) -> None:
        while (sent := time.perf_counter()) < stop_at:
            conn = conns[index]
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    answer = await conn.exchange(route.request)
            except READ_ERRORS as exc:
                errors[_error_kind(exc)] += 1
                conn.close()
                conns[index] = await Connection.open(route.port)
                continue
            latencies.append((time.perf_counter() - sent) * 1000)
            if answer.status != 200:
                errors[f"HTTP {answer.status}"] += 1
            if not conn.reusable:
                conn.close()
                conns[index] = await Connection.open(route.port)

    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    begin = time.perf_counter()
    try:
        await asyncio.gather(*(worker(i, begin + seconds) for i in range(connections)))
    finally:
        for conn in conns:
            conn.close()
    elapsed = time.perf_counter() - begin
    count = max(1, len(latencies))
    cpu_us = {name: (cpu_seconds(pid) - cpu_before[name]) / count * 1e6 for name, pid in pids.items()}
    return Cell(
        route.name, None, connections, 1, sorted(latencies), [], errors, len(latencies) / elapsed, cpu_us
    )


@dataclass
class Transfer:
    """One large body through the proxy or straight to the upstream."""

    what: str  # download / upload
    route: str
    size: int
    seconds: float
    received: int  # bytes counted by the receiving side
    status: int
    rss: RssSampler | None  # the gateway's, for proxied transfers

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.received == self.size


async def download(port: int, path: str, headers: dict[str, str], size: int) -> tuple[Answer, float]:
    conn = await Connection.open(port)
    try:
        begin = time.perf_counter()
        answer = await conn.exchange(request_bytes("GET", port, f"{path}?size={size}", headers))
        return answer, time.perf_counter() - begin
    finally:
        conn.close()


async def upload(port: int, path: str, headers: dict[str, str], size: int) -> tuple[Answer, float, int]:
    """POST ``size`` bytes; the answer, the time, and the byte count the upstream reports."""
    head = request_bytes(
        "POST",
        port,
        path,
        {**headers, "Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    conn = await Connection.open(port)
    try:
        begin = time.perf_counter()
        answer = await conn.upload(head, size)
        elapsed = time.perf_counter() - begin
    finally:
        conn.close()
    found = re.search(rb'"size":\s*(\d+)', answer.body)
    return answer, elapsed, int(found.group(1)) if found else -1


async def transfer(setup: Setup, what: str, route: str, size: int) -> Transfer:
    proxied = route == "proxy"
    port = setup.gateway_port if proxied else setup.upstream_port
    prefix = setup.proxy_path if proxied else ""
    headers = {"Authorization": setup.authorization} if proxied else {}
    sampler = RssSampler(setup.gateway.pid) if proxied else None
    with sampler if sampler is not None else contextlib.nullcontext():
        if what == "download":
            answer, seconds = await download(port, f"{prefix}/big", headers, size)
            received = answer.size
        else:
            answer, seconds, received = await upload(port, f"{prefix}/upload", headers, size)
    return Transfer(what, route, size, seconds, received, answer.status, sampler)


async def memory_section(setup: Setup, download_size: int, upload_size: int) -> list[Transfer]:
    progress("memory: warming the streaming paths (16 MiB down, 4 MiB up, through the proxy)")
    await transfer(setup, "download", "proxy", 16 << 20)
    await transfer(setup, "upload", "proxy", 4 << 20)
    await asyncio.sleep(1.0)
    results = []
    for what, size in (("download", download_size), ("upload", upload_size)):
        for route in ("proxy", "direct"):
            progress(f"memory: {what} {size:,} bytes, {route}")
            results.append(await transfer(setup, what, route, size))
            await asyncio.sleep(1.0)
    return results


async def latency_section(setup: Setup, opts: Options) -> list[Cell]:
    routes = (
        Route("direct", setup.upstream_port, request_bytes("GET", setup.upstream_port, "/data")),
        Route(
            "proxy",
            setup.gateway_port,
            request_bytes(
                "GET", setup.gateway_port, f"{setup.proxy_path}/data", {"Authorization": setup.authorization}
            ),
        ),
    )
    pools = {r.name: await Pool(r.port, opts.connections).open() for r in routes}
    cells: list[Cell] = []
    try:
        for round_ in range(1, opts.rounds + 1):
            ordered = routes if round_ % 2 else routes[::-1]
            for rate in opts.rates:
                for route in ordered:
                    progress(f"latency: round {round_}, {rate}/s, {route.name}")
                    pool = pools[route.name]
                    if opts.warmup > 0:
                        await open_loop(pool, route, rate, opts.warmup, round_)
                    await asyncio.sleep(PAUSE)
                    cell = await open_loop(pool, route, rate, opts.seconds, round_)
                    await asyncio.sleep(PAUSE)
                    progress(
                        f"  p50 {cell.p(50):.2f} ms  p99 {cell.p(99):.2f} ms  "
                        f"{cell.achieved:.1f}/s  errors {cell.error_count}"
                    )
                    cells.append(cell)
                    if cell.errors["unfinished"] or cell.achieved < 0.95 * rate:
                        # the next cell starts from a server that has caught up and let the upstream
                        # connections the backlog opened expire (httpx's keep-alive expiry is 5 s)
                        progress(f"  fell behind: {RECOVERY:g} s for the servers to recover")
                        await asyncio.sleep(RECOVERY)
    finally:
        for pool in pools.values():
            pool.close()
    return cells


async def peak_section(setup: Setup, opts: Options) -> list[Cell]:
    routes = (
        Route("direct", setup.upstream_port, request_bytes("GET", setup.upstream_port, "/data")),
        Route(
            "proxy",
            setup.gateway_port,
            request_bytes(
                "GET", setup.gateway_port, f"{setup.proxy_path}/data", {"Authorization": setup.authorization}
            ),
        ),
    )
    pids = {"gateway": setup.gateway.pid, "upstream": setup.upstream.pid}
    cells = []
    for connections in opts.concurrencies:
        for route in routes:
            progress(f"peak: {route.name}, {connections} connections")
            if opts.warmup > 0:
                await closed_loop(route, connections, opts.warmup, pids)
            await asyncio.sleep(PAUSE)
            cell = await closed_loop(route, connections, opts.seconds, pids)
            await asyncio.sleep(PAUSE)
            progress(f"  {cell.achieved:,.0f}/s  p50 {cell.p(50):.2f} ms  p99 {cell.p(99):.2f} ms")
            cells.append(cell)
    return cells


@dataclass
class Report:
    transfers: list[Transfer]
    latency: list[Cell]
    peak: list[Cell]


async def measure(setup: Setup, opts: Options) -> Report:
    gc.collect()
    gc.freeze()
    gc.disable()  # no collector pauses in the client while it times requests (nothing here cycles)
    try:
        transfers = await memory_section(setup, opts.download_bytes, opts.upload_bytes)
        latency = await latency_section(setup, opts)
        peak = await peak_section(setup, opts)
    finally:
        gc.enable()
    return Report(transfers, latency, peak)


# -------------------------------------------------------------------------------------------- output


@dataclass
class Table:
    title: str
    columns: list[str]
    right: list[bool]  # right-aligned columns (numbers)
    rows: list[list[str]] = field(default_factory=list)

    def render(self, markdown: bool) -> str:
        if markdown:
            lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |"]
            lines.append("|" + "|".join("---:" if r else "---" for r in self.right) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in self.rows]
            return "\n".join(lines)
        widths = [max(len(c), *(len(row[i]) for row in self.rows)) for i, c in enumerate(self.columns)]

        def line(cells: list[str]) -> str:
            parts = [
                c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, self.right, strict=True)
            ]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([self.title, "", line(self.columns), rule, *(line(row) for row in self.rows)])


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.2f}"


def signed_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+,.2f}"


def mb(value: float) -> str:
    return f"{value / MB:,.1f}"


def errors_text(cell: Cell) -> str:
    return str(cell.error_count)


def latency_table(cells: list[Cell]) -> Table:
    table = Table(
        "Latency at a constant request rate (open loop, GET /data), ms from the scheduled send",
        ["rate/s", "round", "route", "p50", "p90", "p99", "max", "achieved/s", "lag p99", "errors"],
        [True, True, False, True, True, True, True, True, True, True],
    )
    for c in sorted(cells, key=lambda c: (c.rate or 0, c.round, c.route)):
        table.rows.append(
            [
                f"{c.rate:,.0f}",
                str(c.round),
                c.route,
                ms(c.p(50)),
                ms(c.p(90)),
                ms(c.p(99)),
                ms(c.p(100)),
                f"{c.achieved:,.1f}",
                ms(percentile(c.lags, 99)),
                errors_text(c),
            ]
        )
    return table


def added(cells: list[Cell], rates: Sequence[int]) -> dict[int, list[tuple[int, float, float]]]:
    """Per rate: (round, added p50, added p99) for each round that has both routes."""
    out: dict[int, list[tuple[int, float, float]]] = {}
    for rate in rates:
        rounds = sorted({c.round for c in cells if c.rate == rate})
        for round_ in rounds:
            pair = {c.route: c for c in cells if c.rate == rate and c.round == round_}
            if {"direct", "proxy"} <= pair.keys():
                d, p = pair["direct"], pair["proxy"]
                out.setdefault(rate, []).append((round_, p.p(50) - d.p(50), p.p(99) - d.p(99)))
    return out


def median_added(rows: list[tuple[int, float, float]]) -> tuple[float, float]:
    return statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)


def added_table(by_rate: dict[int, list[tuple[int, float, float]]]) -> Table:
    table = Table(
        "Latency added by the proxy (proxy - direct), ms",
        ["rate/s", "round", "added p50", "added p99"],
        [True, False, True, True],
    )
    for rate, rows in by_rate.items():
        for round_, p50, p99 in rows:
            table.rows.append([f"{rate:,}", str(round_), signed_ms(p50), signed_ms(p99)])
        p50, p99 = median_added(rows)
        table.rows.append([f"{rate:,}", f"median of {len(rows)}", signed_ms(p50), signed_ms(p99)])
    return table


def peak_table(cells: list[Cell]) -> Table:
    table = Table(
        "Peak throughput (closed loop, GET /data)",
        [
            "route",
            "connections",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "gateway CPU µs/req",
            "upstream CPU µs/req",
        ],
        [False, True, True, True, True, True, True, True],
    )
    for c in cells:
        gateway = f"{c.cpu_us['gateway']:,.0f}" if c.route == "proxy" else "-"
        table.rows.append(
            [
                c.route,
                str(c.connections),
                f"{c.achieved:,.0f}",
                ms(c.p(50)),
                ms(c.p(99)),
                errors_text(c),
                gateway,
                f"{c.cpu_us['upstream']:,.0f}",
            ]
        )
    return table


def transfer_table(transfers: list[Transfer]) -> Table:
    table = Table(
        "Streaming large bodies (gateway RSS in MB, sampled every 50 ms)",
        [
            "transfer",
            "route",
            "bytes",
            "seconds",
            "MB/s",
            "RSS before",
            "RSS peak",
            "growth",
            "RSS after",
            "check",
        ],
        [False, False, True, True, True, True, True, True, True, False],
    )
    for t in transfers:
        rss = t.rss
        memory = (
            [mb(rss.before), mb(rss.peak), f"{(rss.peak - rss.before) / MB:+,.1f}", mb(rss.after)]
            if rss is not None
            else ["-", "-", "-", "-"]
        )
        check = "ok" if t.ok else f"FAILED: HTTP {t.status}, {t.received:,} bytes counted"
        table.rows.append(
            [
                t.what,
                t.route,
                f"{t.size:,}",
                f"{t.seconds:.2f}",
                f"{t.size / MB / t.seconds:,.0f}",
                *memory,
                check,
            ]
        )
    return table


def header(opts: Options, argv: Sequence[str]) -> list[str]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join([".venv/bin/python", "bench/proxy.py", *argv])
    load = Path("/proc/loadavg").read_text().split()[:3]
    return [
        f"Run {now}: `{command}` (boltgate at {commit or '?'}{' + uncommitted changes' if dirty else ''})",
        "",
        f"Machine: {os.cpu_count()} cores shared by the 3 processes (client, gateway, upstream); "
        f"Python {sys.version.split()[0]}; load average before the run {' '.join(load)}. "
        f"boltgate serve: 1 worker, SQLite, dev Lightning node, log level WARNING, "
        f"`BOLTGATE_RATE_LIMIT=1000000/second`. Upstream: raw ASGI under uvicorn (httptools, uvloop). "
        f"Client: asyncio + uvloop, hand-written HTTP/1.1 over keep-alive connections "
        f"({opts.connections} in the open-loop pool). Cells: {opts.seconds:g} s measured after a "
        f"{opts.warmup:g} s warm-up; {opts.rounds} round(s) of alternating direct/proxy cells per rate. "
        f"One paid L402 credential (1 sat) reused by every proxied request.",
    ]


def verdicts(report: Report, opts: Options) -> tuple[list[str], bool]:
    lines = []
    by_rate = added(report.latency, opts.rates)
    passed = True
    if TARGET_RATE in by_rate:
        _, p99 = median_added(by_rate[TARGET_RATE])
        ok = p99 <= TARGET_ADDED_P99_MS
        passed &= ok
        rounds = len(by_rate[TARGET_RATE])
        lines.append(
            f"p99 added by the proxy at {TARGET_RATE} requests/s: {p99:+.2f} ms (median of {rounds} "
            f"round(s); target ≤ {TARGET_ADDED_P99_MS:g} ms): {'PASS' if ok else 'FAIL'}"
        )
    else:
        lines.append(f"p99 added at {TARGET_RATE} requests/s: not measured (--rates)")
    streamed = [t for t in report.transfers if t.route == "proxy" and t.what == "download"]
    for t in streamed:
        assert t.rss is not None
        growth = (t.rss.peak - t.rss.before) / MB
        ok = growth < TARGET_RSS_GROWTH_MB and t.ok
        passed &= ok
        lines.append(
            f"gateway RSS growth while {t.size:,} bytes stream through the proxy: {growth:+.1f} MB "
            f"(target < {TARGET_RSS_GROWTH_MB:g} MB{'' if t.ok else '; the transfer failed'}): "
            f"{'PASS' if ok else 'FAIL'}"
        )
    failures = [c for c in report.latency + report.peak if c.error_count]
    for c in failures:
        kinds = ", ".join(f"{kind} x{n}" for kind, n in c.errors.most_common())
        where = f"{c.rate:g}/s round {c.round}" if c.rate else f"closed loop, {c.connections} connections"
        lines.append(f"errors, {c.route} ({where}): {kinds}")
    return lines, passed


def print_report(report: Report, opts: Options, argv: Sequence[str]) -> None:
    tables = [
        transfer_table(report.transfers),
        latency_table(report.latency),
        added_table(added(report.latency, opts.rates)),
        peak_table(report.peak),
    ]
    lines, passed = verdicts(report, opts)
    out = [*header(opts, argv), ""]
    for table in tables:
        out += [table.render(opts.markdown), ""]
    out += [f"- {line}" if opts.markdown else line for line in lines]
    out += ["", f"Overall: {'PASS' if passed else 'FAIL'}"]
    print("\n".join(out), flush=True)


# ---------------------------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup: float
    rounds: int
    rates: tuple[int, ...]
    concurrencies: tuple[int, ...]
    connections: int
    download_bytes: int
    upload_bytes: int
    markdown: bool


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each cell (2)")
    parser.add_argument("--rounds", type=int, default=2, help="direct/proxy pairs per rate (2)")
    parser.add_argument("--rates", type=_ints, default=RATES, help="open-loop rates (50,200,500)")
    parser.add_argument(
        "--concurrency", type=_ints, default=CONCURRENCIES, help="closed-loop connections (16,64)"
    )
    parser.add_argument(
        "--connections", type=int, default=POOL_CONNECTIONS, help="open-loop connection pool (64)"
    )
    parser.add_argument("--download-mib", type=int, default=DOWNLOAD_BYTES >> 20, help="download (1024)")
    parser.add_argument("--upload-mib", type=int, default=UPLOAD_BYTES >> 20, help="upload (100)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1 or args.connections < 1:
        parser.error("--seconds > 0, --warmup ≥ 0, --rounds ≥ 1, --connections ≥ 1")
    return Options(
        seconds=args.seconds,
        warmup=args.warmup,
        rounds=args.rounds,
        rates=args.rates,
        concurrencies=args.concurrency,
        connections=args.connections,
        download_bytes=args.download_mib << 20,
        upload_bytes=args.upload_mib << 20,
        markdown=args.markdown,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    busy = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True, text=True, check=False).stdout
    if busy.strip():
        progress(f"warning: pytest is running (pids {' '.join(busy.split())}): the numbers will suffer")
    work = Path(tempfile.mkdtemp(prefix="boltgate-proxy-bench-"))
    servers: list[Server] = []
    try:
        progress(f"starting the upstream and boltgate serve in {work}")
        setup = start_servers(work, servers)
        progress(f"proxy {setup.proxy_path} -> upstream :{setup.upstream_port}, credential paid")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            report = runner.run(measure(setup, opts))
        for server in servers:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited ({server.proc.returncode}) during the run")
        print_report(report, opts, argv)
        return 0
    except KeyboardInterrupt:
        progress("interrupted: stopping the servers")
        return 130
    except Exception:
        for server in servers:
            progress(f"--- last lines of the {server.name} log ---\n{server.log_tail()}")
        raise
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
