"""Payments benchmark: boltgate's create / look-up throughput beside a FastAPI ceiling and LNbits.

What is measured, over loopback, with wrk (``--latency``, one wrk thread, a warm-up run of the same
kind before each measured run, every duration bounded):

* boltgate ``POST /api/payments`` (a unique orderId per request, built by a wrk Lua script) and
  ``GET /api/payments/{invoiceId}`` (ids picked at random from a pool created beforehand), on SQLite
  and on PostgreSQL (a temporary database, dropped afterwards), with ``--workers 1`` and ``2``;
* the framework ceiling: ``bench/ceiling_app.py`` (the same two routes doing no work) under uvicorn
  with boltgate's settings (uvloop, httptools, access log off), with the same worker counts;
* LNbits from PyPI (pinned, in its own venv under ``bench/.peers``) with its FakeWallet on SQLite:
  ``POST /api/v1/payments`` and ``GET /api/v1/payments/{payment_hash}``, same worker counts, no
  fiat currency on the wallet and every outbound fetch (rates, extension manifests) switched off.

Each cell (system, database, workers, operation, concurrency 16 / 64) reports req/s, p50 / p99
latency, errors (wrk's non-2xx/3xx responses plus socket errors) and its req/s as a percentage of the
ceiling's for the same workers, operation and concurrency. The table goes to stdout and, on a full
run, to the "payments" section of ``bench/RESULTS.md``. Every server runs in its own process group
and is killed on exit, Ctrl-C, SIGTERM or error; server logs are kept in ``bench/out/payments``.

Usage: ``.venv/bin/python bench/payments.py [--duration 10] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import httpx

BENCH = Path(__file__).resolve().parent
LNBITS_SHIM = (
    BENCH / "lnbits_shim"
)  # its own --app-dir: bench/ holds modules (bolt11.py) that shadow packages
VENV_BIN = Path(sys.executable).parent
LOG_DIR = BENCH / "out" / "payments"
RESULTS = BENCH / "RESULTS.md"
SECTION = "payments"

LNBITS_VERSION = "1.6.2"
LNBITS_VENV = BENCH / ".peers" / f"lnbits-{LNBITS_VERSION}-venv"  # shared with the test suite

CONCURRENCIES = (16, 64)
POOL_SIZE = 200
WRK_THREADS = 1
START_TIMEOUT = 90.0
TARGETS = (
    "Targets: create ≥ 1,000/s and look-up ≥ 2,000/s at concurrency 16 with p99 < 50 ms "
    "(≥ 40 % and ≥ 60 % of the framework ceiling)."
)
NOTES = (
    "boltgate runs with its defaults (dev Lightning node, JSON logs, in-process workers) and "
    "`BOLTGATE_RATE_LIMIT=1000000/second`; PostgreSQL 127.0.0.1, one fresh database per worker count. "
    f"LNbits {LNBITS_VERSION} from PyPI: FakeWallet on SQLite, headless (`LNBITS_ADMIN_UI=false`), rate "
    "limit raised, exchange-rate providers / price aggregator / extension manifests off, wallet fiat "
    "currency cleared, uvicorn with the same flags and worker count (access log off). Lookups pick "
    f"random ids among {POOL_SIZE} pre-created payments. errors = non-2xx/3xx + socket errors; "
    "% of ceiling = req/s / the FastAPI ceiling's req/s for the same workers, operation and concurrency. "
    "This machine's speed drifts: the same cell varies by 20-40 % between runs minutes apart (the "
    "ceiling too), so compare rows of one run, or the % column, rather than runs."
)
TARGET_RPS = {"create": 1000.0, "lookup": 2000.0}
TARGET_PCT = {"create": 40.0, "lookup": 60.0}
TARGET_P99_MS = 50.0

CREATE_BODY = '{"orderId": "%s", "amount": 25.00, "currency": "USD", "description": "bench"}'
LNBITS_BODY = '{"out": false, "amount": 25, "memo": "bench"}'

CREATE_LUA = """
nonce = "{nonce}"
counter = 0
tid = 0
template = [[{body}]]
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
function request()
  counter = counter + 1
  return wrk.format("POST", "{path}", nil, string.format(template, nonce .. "-" .. tid .. "-" .. counter))
end
"""

LOOKUP_LUA = """
ids = {{}}
tid = 0
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
function init(args)
  for line in io.lines("{ids_file}") do
    if #line > 0 then ids[#ids + 1] = line end
  end
  math.randomseed(os.time() * 1000 + tid)
end
function request()
  return wrk.format("GET", "{prefix}" .. ids[math.random(#ids)])
end
"""


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


@dataclass(frozen=True)
class Cell:
    """One measured row of the table."""

    system: str
    database: str
    workers: int
    operation: str
    concurrency: int
    result: WrkResult


@dataclass(frozen=True)
class Target:
    """A running server and how to create and look up a payment on it."""

    base_url: str
    headers: dict[str, str]
    create_path: str
    create_body: str  # Lua string.format template: one %s for the unique part, or none
    lookup_prefix: str
    ids: list[str]


@dataclass(frozen=True)
class Served:
    """A running server (its process group leader) and how to load it."""

    proc: subprocess.Popen[bytes]
    database: str
    target: Target


@dataclass(frozen=True)
class Options:
    """The command line, resolved."""

    duration: int
    warmup: int
    workers: tuple[int, ...]
    pg_dsn: str
    write: bool


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that every ``finally`` still cleans up."""


# ---------------------------------------------------------------------------------------------- tools


def ensure_wrk() -> str:
    """Path of wrk, installing the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: apt-get update && apt-get install -y wrk", flush=True)
    try:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"payments bench: wrk is missing and apt-get could not install it: {exc}") from exc
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("payments bench: apt-get install wrk succeeded but wrk is still not on PATH")
    return found


def lnbits_python() -> Path:
    return LNBITS_VENV / "bin" / "python"


def ensure_lnbits() -> Path:
    """LNbits' venv, installed from the test suite's full lock (tests/lightning/lnbits-requirements.lock,
    the same environment the tests run); returns LNbits' site-packages directory."""
    sys.path.insert(0, str(BENCH.parent))
    from tests.lightning.fakes.lnbits_server import ensure_lnbits as ensure_pinned

    print(f"LNbits {LNBITS_VERSION}: {LNBITS_VENV}", flush=True)
    assert ensure_pinned() == lnbits_python()
    # find_spec, not import: importing lnbits writes ./data/.lnbits_auth_key into the current directory
    probe = (
        "import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec('lnbits').origin).parent.parent)"
    )
    done = subprocess.run([lnbits_python(), "-I", "-c", probe], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


# -------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {START_TIMEOUT:.0f} s: {url}; see {log}")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End the process group this script started (the server and its uvicorn workers)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a parent that exited


@contextlib.contextmanager
def running(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, health: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group, wait for ``health`` to answer 200, stop it after."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_healthy(proc, health, log)
            yield proc
        finally:
            stop_group(proc)


def uvicorn_flags(port: int, workers: int) -> list[str]:
    """boltgate's uvicorn settings (see ``boltgate serve``)."""
    return [
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--no-server-header", "--log-level", "warning",
    ]  # fmt: skip


def clean_env(drop_prefix: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------------ wrk


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _latency_ms(output: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    if not found:
        raise ValueError(f"no {percentile}% latency in wrk output:\n{output}")
    return float(found.group(1)) * _UNIT_MS[found.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, the 50 % / 99 % latencies, non-2xx/3xx responses and socket errors."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        errors=errors,
        requests=int(total.group(1)),
    )


def run_wrk(wrk: str, url: str, script: Path, headers: dict[str, str], connections: int, seconds: int) -> str:
    argv = [wrk, "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv += ["--latency", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def create_script(work: Path, target: Target) -> Path:
    """A Lua script sending POSTs whose body gets a unique id per request (nonce-thread-counter)."""
    script = work / f"create-{uuid.uuid4().hex}.lua"
    body = target.create_body.replace("]]", "")
    script.write_text(CREATE_LUA.format(nonce=uuid.uuid4().hex, body=body, path=target.create_path))
    return script


def lookup_script(work: Path, target: Target) -> Path:
    """A Lua script sending GETs for ids picked at random from a file of pre-created ids."""
    ids_file = work / f"ids-{uuid.uuid4().hex}.txt"
    ids_file.write_text("\n".join(target.ids) + "\n")
    script = work / f"lookup-{uuid.uuid4().hex}.lua"
    script.write_text(LOOKUP_LUA.format(ids_file=ids_file, prefix=target.lookup_prefix))
    return script


def measure(
    wrk: str, work: Path, target: Target, operation: str, connections: int, opts: Options
) -> WrkResult:
    """A warm-up run, then the measured run (each with a fresh script, so create ids never repeat)."""
    make = create_script if operation == "create" else lookup_script
    headers = dict(target.headers)
    if operation == "create":
        headers["Content-Type"] = "application/json"
    run_wrk(wrk, target.base_url, make(work, target), headers, connections, opts.warmup)
    result = parse_wrk(run_wrk(wrk, target.base_url, make(work, target), headers, connections, opts.duration))
    print(
        f"    {operation:<6} c={connections:<3} {result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
        flush=True,
    )
    return result


def measure_all(
    wrk: str, work: Path, target: Target, label: tuple[str, str, int], opts: Options
) -> list[Cell]:
    system, database, workers = label
    print(f"  {system} / {database} / workers={workers}", flush=True)
    return [
        Cell(system, database, workers, operation, conc, measure(wrk, work, target, operation, conc, opts))
        for operation in ("create", "lookup")
        for conc in CONCURRENCIES
    ]


# ------------------------------------------------------------------------------------------- systems


def fill_pool(client: httpx.Client, url: str, body: str, id_field: str) -> list[str]:
    """Create POOL_SIZE payments one by one; the ids the look-up runs pick from."""
    ids = []
    for n in range(POOL_SIZE):
        response = client.post(url, content=body.replace("%s", f"pool-{uuid.uuid4().hex}-{n}"))
        if response.status_code != 201:
            raise RuntimeError(f"create for the pool: {response.status_code} {response.text[:300]}")
        ids.append(str(response.json()[id_field]))
    return ids


def check_lookup(client: httpx.Client, url: str) -> None:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"look-up check {url}: {response.status_code} {response.text[:300]}")


@contextlib.contextmanager
def ceiling_server(workers: int) -> Iterator[Served]:
    """uvicorn serving ``bench/ceiling_app.py`` with boltgate's settings, stopped after."""
    port = free_port()
    app = ["ceiling_app:app", "--app-dir", str(BENCH)]
    argv = [str(VENV_BIN / "uvicorn"), *app, *uvicorn_flags(port, workers)]
    base = f"http://127.0.0.1:{port}"
    with running(f"ceiling-w{workers}", argv, clean_env("BOLTGATE_", {}), BENCH, f"{base}/healthz") as proc:
        ids = [uuid.uuid4().hex for _ in range(POOL_SIZE)]
        yield Served(proc, "-", Target(base, {}, "/api/payments", CREATE_BODY, "/api/payments/", ids))


def ceiling_cells(wrk: str, work: Path, workers: int, opts: Options) -> list[Cell]:
    with ceiling_server(workers) as server:
        return measure_all(wrk, work, server.target, ("FastAPI ceiling", "-", workers), opts)


def merchant_key(env: dict[str, str], cwd: Path) -> str:
    argv = [str(VENV_BIN / "boltgate"), "merchant", "create", "bench"]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"boltgate merchant create failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1].strip()


def make_target(base: str, headers: dict[str, str], path: str, body: str, id_field: str) -> Target:
    """Create the lookup pool through ``path`` and check one lookup of ``path/{id}``."""
    with httpx.Client(base_url=base, headers={**headers, "Content-Type": "application/json"}) as client:
        ids = fill_pool(client, path, body, id_field)
        check_lookup(client, f"{path}/{ids[0]}")
    return Target(base, headers, path, body, f"{path}/", ids)


def boltgate_target(base: str, key: str) -> Target:
    return make_target(base, {"X-API-Key": key}, "/api/payments", CREATE_BODY, "invoiceId")


@contextlib.contextmanager
def boltgate_server(
    work: Path, workers: int, database_url: str | None, settings: dict[str, str] | None = None
) -> Iterator[Served]:
    """``boltgate serve`` on a fresh data dir (SQLite there, or ``database_url``), stopped after.

    ``settings`` adds ``BOLTGATE_*`` variables (the environment's own are not passed on).
    """
    data_dir = Path(tempfile.mkdtemp(prefix="boltgate-data-", dir=work))
    extra = {"BOLTGATE_DATA_DIR": str(data_dir), "BOLTGATE_RATE_LIMIT": "1000000/second", **(settings or {})}
    if database_url:
        extra["BOLTGATE_DATABASE_URL"] = database_url
    env = clean_env("BOLTGATE_", extra)
    key = merchant_key(env, data_dir)
    port = free_port()
    argv = [str(VENV_BIN / "boltgate"), "serve", "--port", str(port), "--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    database = "PostgreSQL" if database_url else "SQLite"
    with running(f"boltgate-{database.lower()}-w{workers}", argv, env, data_dir, f"{base}/healthz") as proc:
        yield Served(proc, database, boltgate_target(base, key))


def boltgate_cells(wrk: str, work: Path, workers: int, database_url: str | None, opts: Options) -> list[Cell]:
    with boltgate_server(work, workers, database_url) as server:
        return measure_all(wrk, work, server.target, ("boltgate", server.database, workers), opts)


@contextlib.contextmanager
def temporary_database(admin_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one boltgate run; yields its SQLAlchemy URL, drops it after."""
    name = f"boltgate_bench_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        parts = urlsplit(admin_dsn)
        yield urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", "", ""))
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def lnbits_env(data_dir: Path) -> dict[str, str]:
    """Headless LNbits with FakeWallet on SQLite, no rate limit, nothing fetched from the internet."""
    return clean_env(
        "LNBITS_",
        {
            "LNBITS_DATA_FOLDER": str(data_dir),
            "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
            "LNBITS_ADMIN_UI": "false",
            "LNBITS_RATE_LIMIT_NO": "1000000",
            "LNBITS_RATE_LIMIT_UNIT": "second",
            "LNBITS_EXCHANGE_RATE_PROVIDERS": "[]",
            "LNBITS_PRICE_AGGREGATOR_ENABLED": "false",
            "LNBITS_EXTENSIONS_MANIFESTS": "[]",
            "LNBITS_WASM_EXTENSIONS_MANIFESTS": "[]",
            "LNBITS_EXTENSIONS_DEACTIVATE_ALL": "true",
            "DEBUG": "false",
        },
    )


def lnbits_wallet(base: str) -> str:
    """Create an account + wallet, clear its fiat currency; returns the wallet's invoice key."""
    with httpx.Client(base_url=base, timeout=30) as client:
        created = client.post("/api/v1/account", json={"name": "bench"})
        created.raise_for_status()
        wallet = created.json()
        patched = client.patch(
            "/api/v1/wallet", json={"currency": ""}, headers={"X-Api-Key": wallet["adminkey"]}
        )
        patched.raise_for_status()
        if patched.json().get("currency"):
            raise RuntimeError(f"LNbits wallet still has a fiat currency: {patched.json()['currency']}")
        return str(wallet["inkey"])


def lnbits_target(base: str, inkey: str) -> Target:
    return make_target(base, {"X-Api-Key": inkey}, "/api/v1/payments", LNBITS_BODY, "payment_hash")


def lnbits_cells(wrk: str, work: Path, workers: int, site: Path, opts: Options) -> list[Cell]:
    """LNbits is first started with one worker (migrations, wallet), then with ``workers``."""
    env = lnbits_env(Path(tempfile.mkdtemp(prefix="lnbits-data-", dir=work)))
    python = str(lnbits_python())

    def serve(n: int, port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
        argv = [
            python,
            "-m",
            "uvicorn",
            "lnbits_asgi:app",
            "--app-dir",
            str(LNBITS_SHIM),
            *uvicorn_flags(port, n),
        ]
        health = f"http://127.0.0.1:{port}/api/v1/health"
        return running(f"lnbits-w{workers}-start{n}", argv, env, site, health)

    port = free_port()
    with serve(1, port):
        inkey = lnbits_wallet(f"http://127.0.0.1:{port}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(workers, port):
        target = lnbits_target(base, inkey)
        return measure_all(wrk, work, target, (f"LNbits {LNBITS_VERSION}", "SQLite", workers), opts)


# --------------------------------------------------------------------------------------------- report


def ceiling_pct(cell: Cell, cells: list[Cell]) -> float | None:
    for other in cells:
        same = (other.workers, other.operation, other.concurrency) == (
            cell.workers,
            cell.operation,
            cell.concurrency,
        )
        if other.system == "FastAPI ceiling" and same and other.result.rps > 0:
            return 100.0 * cell.result.rps / other.result.rps
    return None


def table(cells: list[Cell]) -> str:
    head = "| system | database | workers | operation | concurrency | req/s | p50 ms | p99 ms | errors "
    lines = [
        head + "| % of ceiling |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    systems = {"FastAPI ceiling": 0, "boltgate": 1}
    databases = {"SQLite": 0, "PostgreSQL": 1}

    def rank(c: Cell) -> tuple[int, int, int, str, int]:
        return (c.workers, systems.get(c.system, 2), databases.get(c.database, 2), c.operation, c.concurrency)

    ranked = sorted(cells, key=rank)
    for c in ranked:
        pct = ceiling_pct(c, cells)
        r = c.result
        lines.append(
            f"| {c.system} | {c.database} | {c.workers} | {c.operation} | {c.concurrency} | {r.rps:,.0f} "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {'-' if pct is None else f'{pct:.0f} %'} |"
        )
    return "\n".join(lines)


def verdicts(cells: list[Cell]) -> list[str]:
    """Whether each boltgate configuration meets the targets at concurrency 16."""
    out = []
    for c in cells:
        if c.system != "boltgate" or c.concurrency != 16:
            continue
        pct = ceiling_pct(c, cells) or 0.0
        ok = (
            c.result.rps >= TARGET_RPS[c.operation]
            and c.result.p99_ms < TARGET_P99_MS
            and pct >= TARGET_PCT[c.operation]
            and c.result.errors == 0
        )
        out.append(
            f"- boltgate {c.database} workers={c.workers} {c.operation} c=16: "
            f"{c.result.rps:,.0f}/s, p99 {c.result.p99_ms:.1f} ms, {pct:.0f} % of ceiling: "
            f"{'meets' if ok else 'misses'} the target"
        )
    return out


def boltgate_revision() -> str:
    """The commit boltgate ran at (``+ local changes`` when boltgate/ differs from it)."""
    git = ["git", "-C", str(BENCH.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "boltgate"], capture_output=True, text=True, check=False
    )
    return head.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")


def source_stamp() -> float:
    """Newest modification time among boltgate's sources (others edit them while benchmarks run)."""
    return max((f.stat().st_mtime for f in (BENCH.parent / "boltgate").rglob("*.py")), default=0.0)


def report(cells: list[Cell], opts: Options, wrk: str, revision: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join([".venv/bin/python", "bench/payments.py", *sys.argv[1:]])
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout
    first = (version.splitlines() or ["wrk"])[0].split(" Copyright")[0]
    return "\n".join(
        [
            f"Run {when}: `{command}` (boltgate at {revision})",
            "",
            f"Machine: {os.cpu_count()} cores (wrk and the servers share them); {first}, "
            f"{WRK_THREADS} thread, {opts.duration} s per cell after a {opts.warmup} s warm-up.",
            "",
            NOTES,
            "",
            table(cells),
            "",
            TARGETS,
            "",
            *verdicts(cells),
        ]
    )


def write_results(text: str) -> None:
    """Replace (or add) the "## payments" section of bench/RESULTS.md, leaving other sections alone."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = f"## {SECTION}\n\n{text}\n"
    pattern = re.compile(rf"^## {SECTION}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _m: section + "\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = old.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(new)


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of warm-up before each run (default 2)"
    )
    parser.add_argument(
        "--workers", default="1,2", help="uvicorn worker counts, comma-separated (default 1,2)"
    )
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL admin DSN used to create and drop the temporary database",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s cells, workers=1, no RESULTS.md")
    args = parser.parse_args(argv)
    workers = tuple(int(w) for w in args.workers.split(","))
    if args.quick:
        return Options(duration=3, warmup=1, workers=(1,), pg_dsn=args.pg_dsn, write=False)
    return Options(
        duration=args.duration, warmup=args.warmup, workers=workers, pg_dsn=args.pg_dsn, write=True
    )


def run(opts: Options, wrk: str, site: Path) -> list[Cell]:
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="payments-bench-") as tmp:
        work = Path(tmp)
        for workers in opts.workers:
            cells += ceiling_cells(wrk, work, workers, opts)
            cells += boltgate_cells(wrk, work, workers, None, opts)
            with temporary_database(opts.pg_dsn) as url:
                cells += boltgate_cells(wrk, work, workers, url, opts)
            cells += lnbits_cells(wrk, work, workers, site, opts)
    return cells


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    wrk = ensure_wrk()
    site = ensure_lnbits()
    started = time.monotonic()
    revision, stamp = boltgate_revision(), source_stamp()
    try:
        cells = run(opts, wrk, site)
    except KeyboardInterrupt:
        print("payments bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    if boltgate_revision() != revision or source_stamp() != stamp:
        revision += "; its files CHANGED during the run, so the rows may mix versions"
    text = report(cells, opts, wrk, revision)
    print(f"\n{text}\n\n(total {time.monotonic() - started:.0f} s)")
    if opts.write:
        write_results(text)
        print(f"written to {RESULTS.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
