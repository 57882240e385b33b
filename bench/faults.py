"""Fault injection: the soak's traffic (bench/soak.py) while something breaks, then the same audit.

Run from the repository root, as root (it mounts a tmpfs and runs PostgreSQL as ``postgres``)::

    .venv/bin/python bench/faults.py                      # all four, 5 minutes of traffic each
    .venv/bin/python bench/faults.py --fault pg-restart --minutes 3

Faults (``--fault``, several allowed):

* ``pg-restart`` — two replicas on a PostgreSQL instance of this script's own (``initdb`` into a
  temporary directory, its own port, run as the ``postgres`` user with ``pg_ctl``), so restarting
  it disturbs no one else's database (the machine's cluster on 5432 serves other people's tests).
  At 1:00 ``pg_ctl restart -m fast``; at 2:30 ``pg_ctl stop -m immediate`` (a crash), 20 s down,
  ``pg_ctl start``. Expected: requests meanwhile fail fast with a 503 problem (never a hang, never a
  500), the replicas recover by themselves, nothing is lost.
* ``backend-drop`` — two replicas on PostgreSQL with LNbits (FakeWallet, the test suite's pinned
  LNbits from ``tests/lightning/fakes/lnbits_server.py``) as the Lightning backend, reached through
  the suite's fault-injecting TCP/HTTP proxy (``tests/lightning/fakes/faulty_proxy.py``). At 1:00
  the proxy stops listening and cuts every connection (the settlement websockets too) for 60 s:
  the gateway has lost its node, while customers keep paying invoices on LNbits. Expected: 503
  ``lightning_backend_unavailable`` with ``Retry-After`` for what needs the node, everything else
  served, and the settlements made during the cut credited after it.
* ``kill-replica`` — two replicas on PostgreSQL with the shared dev node. At 1:00 ``kill -9`` of
  replica 2 (the load balancer takes it out 2 s later), restarted at 2:00; at 3:00 ``kill -9`` of
  both, 10 open invoices paid on the node alone (``boltgate dev pay``) while no gateway runs, both
  restarted at 3:20. Expected: the survivor serves; nothing paid while a replica (or both) was down
  is lost; webhooks leased by a dead replica go out again (duplicates allowed: at-least-once).
* ``disk-full`` — one gateway on SQLite whose data directory is on a 20 MiB tmpfs (the dev node
  elsewhere). At 1:00 the tmpfs is filled to the last byte for 60 s. Expected: clear errors (a 503
  or 507 problem, not a 500), reads still served, settlements made meanwhile credited after; then
  the gateway is stopped, ``PRAGMA integrity_check`` must say ``ok``, and it restarts and works.

Each run prints the soak's report (requests, RSS, webhooks, audit) plus the fault's timeline (5 s
buckets: answers by kind, ``*`` = explained by the fault) and what was observed. Errors outside a
fault's window, or of a kind the fault does not explain (a 500, a timeout), count as errors; the
exit status is 1 when any run has errors or fails its audit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soak
from soak import AuditDB, DevLedger, Ledger, Options, Sample, Stack, Traffic, free_port, progress

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.lightning.fakes

import httpx  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
GRACE = 30.0  # seconds after a fault ends during which its errors are still explained
FAULTS = ("pg-restart", "backend-drop", "kill-replica", "disk-full")


# ==================================================================================== explaining


@dataclass
class Window:
    label: str
    start: float
    accepts: Callable[[Sample], bool]
    end: float = math.inf


@dataclass
class Explainer:
    """Which samples a fault explains: those inside one of its windows that it accepts."""

    windows: list[Window] = field(default_factory=list)
    notes: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, sample: Sample) -> str | None:
        for w in self.windows:
            if w.start <= sample.at <= w.end and w.accepts(sample):
                return w.label
        return None

    def open(self, label: str, at: float, accepts: Callable[[Sample], bool]) -> Window:
        window = Window(label, at, accepts)
        self.windows.append(window)
        return window

    def note(self, traffic: Traffic, text: str) -> None:
        self.notes.append((traffic.now(), text))
        progress(f"  fault @{traffic.now():.0f}s: {text}")


def clean_503(sample: Sample) -> bool:
    """A 503 problem (RFC 9457), or a settlement that took long to show."""
    problem = (sample.content_type or "").startswith("application/problem+json")
    return (sample.status == 503 and problem) or sample.code == "slow_settlement"


def backend_503(sample: Sample) -> bool:
    return (
        sample.status == 503 and sample.code == "lightning_backend_unavailable" and bool(sample.retry_after)
    ) or sample.code == "slow_settlement"


def storage_error(sample: Sample) -> bool:
    problem = (sample.content_type or "").startswith("application/problem+json")
    return (sample.status in (503, 507) and problem) or sample.code == "slow_settlement"


def unreachable(replicas: set[str]) -> Callable[[Sample], bool]:
    """Connection errors of a replica that is down, and settlements slow to show meanwhile."""

    def accepts(sample: Sample) -> bool:
        if sample.code == "slow_settlement":
            return True
        return sample.status is None and sample.code.startswith("transport:") and sample.replica in replicas

    return accepts


async def at(traffic: Traffic, seconds: float) -> None:
    await asyncio.sleep(max(0.0, seconds - traffic.now()))


async def readyz_probe(stack: Stack, traffic: Traffic) -> None:
    """``GET /readyz`` of every replica each second (what a load balancer's health check sees)."""
    while True:
        for replica in stack.replicas:
            if replica.proc.alive():
                await traffic.call("GET /readyz", replica, "GET", "/readyz", ok=(200,))
        await asyncio.sleep(1.0)


async def wait_recorded(db: AuditDB, hashes: set[str], bound: float) -> float | None:
    """Seconds until every payment of ``hashes`` is paid in the database (None: not within bound)."""
    begun = time.monotonic()
    while time.monotonic() - begun < bound:
        with contextlib.suppress(Exception):
            paid = {h for (h,) in await db.rows("SELECT payment_hash FROM payments WHERE status = 'paid'")}
            if hashes <= paid:
                return time.monotonic() - begun
        await asyncio.sleep(0.5)
    return None


def paid_between(traffic: Traffic, start: float, end: float) -> set[str]:
    """Payments the client paid between two traffic times."""
    lo, hi = traffic.wall0 + start, traffic.wall0 + end
    return {
        r.payment_hash for r in traffic.payments.values() if r.paid_at is not None and lo <= r.paid_at <= hi
    }


# ====================================================================================== reporting


def timeline(traffic: Traffic, explainer: Explainer, pad: float = 10.0) -> list[str]:
    """5 s buckets from just before the first fault to the end of the last window."""
    if not explainer.windows:
        return []
    first = min(w.start for w in explainer.windows) - pad
    last = max((w.end if math.isfinite(w.end) else traffic.now()) for w in explainer.windows) + pad
    lines = ["| t (s) | ok | other answers (`*` = explained by the fault) |", "|---:|---:|---|"]
    for bucket in range(max(0, int(first // 5)), int(last // 5) + 1):
        kinds = traffic.timeline.get(bucket, Counter())
        other = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()) if k != "ok")
        lines.append(f"| {bucket * 5} | {kinds.get('ok', 0)} | {other} |")
    return lines


def window_lines(traffic: Traffic, explainer: Explainer) -> list[str]:
    out = []
    for w in explainer.windows:
        inside = [s for s in traffic.samples if w.start <= s.at <= w.end]
        explained = [s for s in inside if explainer(s) == w.label]
        other = [s for s in inside if explainer(s) is None]
        kinds = Counter(f"{s.status or ''} {s.code}".strip() for s in explained)
        slowest = max((s.ms for s in explained if s.code != "slow_settlement"), default=0.0)
        last = max((s.at for s in explained if s.code != "slow_settlement"), default=math.nan)
        end = "open" if not math.isfinite(w.end) else f"{w.end:.0f}"
        out.append(
            f"- {w.label} ({w.start:.0f} s -> {end} s incl. {GRACE:.0f} s grace): {len(explained)} explained "
            f"({', '.join(f'{k} x{v}' for k, v in kinds.most_common(6)) or 'none'}), slowest of them "
            f"{slowest:,.0f} ms, last at {last:.1f} s; {len(other)} unexplained in the window"
        )
    return out


@dataclass
class FaultResult:
    name: str
    text: str
    passed: bool


def fault_report(name: str, outcome: soak.Outcome, explainer: Explainer, observed: list[str]) -> FaultResult:
    traffic = outcome.traffic
    notes = [f"- {t:.1f} s: {text}" for t, text in explainer.notes]
    text = "\n".join(
        [
            f"### Fault: {name}",
            "",
            outcome.text,
            "",
            "**Fault timeline**",
            "",
            *notes,
            "",
            *window_lines(traffic, explainer),
            "",
            *timeline(traffic, explainer),
            "",
            "**Observed**",
            "",
            *observed,
        ]
    )
    return FaultResult(name, text, outcome.passed)


def log_count(stack: Stack, needle: str) -> dict[str, int]:
    counts = {}
    for replica in stack.replicas:
        with contextlib.suppress(OSError):
            counts[replica.name] = replica.proc.log.read_text(errors="replace").count(needle)
    return counts


def log_excerpt(stack: Stack, needle: str, limit: int = 2) -> list[str]:
    found = []
    for replica in stack.replicas:
        with contextlib.suppress(OSError):
            for line in replica.proc.log.read_text(errors="replace").splitlines():
                if needle in line:
                    found.append(f"{replica.name}: {line[:400]}")
                    if len(found) >= limit:
                        return found
    return found


# =================================================================================== pg-restart


class PrivatePostgres:
    """A PostgreSQL instance of this script's own: ``initdb`` in a temporary directory, its own port,
    run by the ``postgres`` user with ``pg_ctl`` (what ``pg_ctlcluster`` wraps)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="boltgate-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        shutil.chown(self.root, "postgres", "postgres")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> float:
        """Run pg_ctl as postgres; seconds it took."""
        begun = time.monotonic()
        argv = [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
        ]
        if args[-1] == "start":  # (restart reuses what the last start was given)
            argv += [
                "-o",
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200",
            ]
        # output to a file: a pipe would be inherited by the server it starts and never close
        with (self.root / "pg_ctl.out").open("ab") as out:
            subprocess.run([*argv, *args], check=True, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        return time.monotonic() - begun

    def init(self) -> None:
        argv = ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.data)]
        subprocess.run(
            [*argv, "-U", "postgres", "--auth=trust", "-E", "UTF8"], check=True, capture_output=True
        )
        self.pg_ctl("-w", "start")

    def start(self) -> float:
        return self.pg_ctl("-w", "start")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


async def pg_restart(minutes: float) -> FaultResult:
    pg = PrivatePostgres()
    await asyncio.to_thread(pg.init)
    explainer = Explainer()
    observed: list[str] = []
    opts = fault_options("pg-restart", minutes, database="postgresql", replicas=2)
    opts.pg_admin = pg.admin_dsn
    opts.allow_duplicates = True  # a run delivered while its result could not be recorded goes out again

    async def during(stack: Stack, traffic: Traffic) -> None:
        traffic.expect = explainer
        probe = asyncio.create_task(readyz_probe(stack, traffic))
        try:
            await at(traffic, 60)
            window = explainer.open("PostgreSQL restart (fast)", traffic.now(), clean_503)
            explainer.note(traffic, "pg_ctl restart -m fast")
            took = await asyncio.to_thread(pg.pg_ctl, "-m", "fast", "-w", "restart")
            explainer.note(traffic, f"PostgreSQL accepts connections again (restart took {took:.1f} s)")
            window.end = traffic.now() + GRACE
            await at(traffic, 150)
            window = explainer.open("PostgreSQL crash + 20 s down", traffic.now(), clean_503)
            explainer.note(traffic, "pg_ctl stop -m immediate (no shutdown checkpoint: a crash)")
            await asyncio.to_thread(pg.pg_ctl, "-m", "immediate", "-w", "stop")
            await asyncio.sleep(20)
            explainer.note(traffic, "pg_ctl start")
            took = await asyncio.to_thread(pg.start)
            explainer.note(
                traffic,
                f"PostgreSQL accepts connections again (start, with crash recovery, took {took:.1f} s)",
            )
            window.end = traffic.now() + GRACE
            await at(traffic, opts.minutes * 60)
        finally:
            probe.cancel()

    try:
        outcome = await soak.soak(opts, during=during)
    finally:
        await asyncio.to_thread(pg.destroy)
    observed += recovery_lines(outcome.traffic, explainer)
    observed.append(
        f"- gateways alive after the traffic: {outcome.alive}; started "
        f"{[r.proc.starts for r in outcome.stack.replicas]} times"
    )
    observed += [f"- log: {line}" for line in log_excerpt(outcome.stack, '"level": "error"', 3)]
    return fault_report("pg-restart", outcome, explainer, observed)


def recovery_lines(traffic: Traffic, explainer: Explainer) -> list[str]:
    """Per window: when the last non-ok answer came, per replica (the recovery)."""
    out = []
    for w in explainer.windows:
        end = w.end if math.isfinite(w.end) else traffic.now()
        by_replica: dict[str, list[Sample]] = {}
        for s in traffic.samples:
            if w.start <= s.at <= end and s.code != "slow_settlement":
                by_replica.setdefault(s.replica, []).append(s)
        for replica, samples in sorted(by_replica.items()):
            statuses = Counter(f"{s.status or s.code}" for s in samples)
            out.append(
                f"- {w.label}, {replica}: non-2xx from {samples[0].at:.1f} s to {samples[-1].at:.1f} s "
                f"({dict(statuses)}); slowest {max(s.ms for s in samples):,.0f} ms"
            )
    return out


# ================================================================================= backend-drop


class LNbitsLedger(Ledger):
    """LNbits: customers pay from a wallet of the same LNbits (``POST /api/v1/payments``, out),
    settled invoices are the merchant wallet's incoming payments."""

    name = "LNbits 1.6.2 FakeWallet behind a fault-injecting proxy"

    def __init__(self, server: Any, merchant: Any) -> None:
        self.server = server
        self.merchant = merchant
        self.client = httpx.AsyncClient(base_url=server.url, timeout=30)

    async def pay(self, traffic: Traffic, invoice: str, route: str) -> str | None:
        payer = self.server.customer
        replica = soak.Replica("lnbits", 0, None)  # type: ignore[arg-type]
        what = {"extra": "an open invoice, during the cut"}.get(
            route, "L402 invoice" if "L402" in route else "payment"
        )
        label = f"LNbits: customer pays ({what})"
        started = time.perf_counter()
        try:
            answer = await self.client.post(
                "/api/v1/payments",
                json={"out": True, "bolt11": invoice},
                headers={"X-Api-Key": payer.adminkey},
            )
        except httpx.HTTPError as exc:
            traffic.record(
                label,
                replica,
                None,
                (time.perf_counter() - started) * 1000,
                f"transport:{type(exc).__name__}",
                False,
            )
            return None
        ok = answer.status_code == 201 and answer.json().get("status") == "success"
        traffic.record(label, replica, answer, (time.perf_counter() - started) * 1000, "", ok)
        return str(answer.json()["preimage"]) if ok else None

    async def settled(self) -> dict[str, int]:
        found: dict[str, int] = {}
        offset = 0
        while True:
            answer = await self.client.get(
                "/api/v1/payments/paginated",
                params={"limit": 500, "offset": offset},
                headers={"X-Api-Key": self.merchant.inkey},
            )
            answer.raise_for_status()
            page = answer.json()["data"]
            for p in page:
                if p["amount"] > 0 and p["status"] == "success":
                    found[p["payment_hash"]] = int(p["amount"])
            if len(page) < 500:
                return found
            offset += 500


async def backend_drop(minutes: float) -> FaultResult:
    from tests.lightning.fakes.faulty_proxy import FaultyProxy
    from tests.lightning.fakes.lnbits_server import LNbitsServer

    server = await asyncio.to_thread(lambda: LNbitsServer().start())
    explainer = Explainer()
    observed: list[str] = []
    proxy = await FaultyProxy(server.port).start()
    try:
        merchant = await server.new_wallet("boltgate merchant")
        ledger = LNbitsLedger(server, merchant)
        opts = fault_options("backend-drop", minutes, database="postgresql", replicas=2)
        opts.lightning_url = f"lnbits://127.0.0.1:{proxy.port}?key={merchant.inkey}&tls=0"
        opts.network = "mainnet"  # FakeWallet's invoices are lnbc
        opts.cents = (1, 50)  # 10-500 sats: the customer wallet holds 10M sats
        state: dict[str, Any] = {}

        async def during(stack: Stack, traffic: Traffic) -> None:
            traffic.expect = explainer
            probe = asyncio.create_task(readyz_probe(stack, traffic))
            trim = asyncio.create_task(trim_forwarded(proxy))
            try:
                await at(traffic, 60)
                window = explainer.open("Lightning backend cut", traffic.now(), backend_503)
                await proxy.set("refused")
                state["cut"] = traffic.now()
                explainer.note(
                    traffic, "proxy to LNbits stops listening, every connection cut (websockets too)"
                )
                await asyncio.sleep(5)
                offline = await pay_open(traffic, 20, lambda rec: ledger.pay(traffic, rec.invoice, "extra"))
                explainer.note(
                    traffic, f"customers pay {len(offline)} more open invoices on LNbits meanwhile"
                )
                await at(traffic, 120)
                await proxy.set("ok")
                state["restored"] = traffic.now()
                explainer.note(traffic, "proxy listens again")
                window.end = traffic.now() + GRACE
                hashes = paid_between(traffic, state["cut"], state["restored"])
                db = AuditDB(opts, stack.data_dir)
                took = await wait_recorded(db, hashes, 120)
                state["catch_up"] = (len(hashes), took)
                explainer.note(
                    traffic,
                    f"{len(hashes)} payments paid during the cut: all paid in the gateway "
                    f"{f'after {took:.1f} s' if took is not None else 'NOT within 120 s'}",
                )
                await at(traffic, opts.minutes * 60)
            finally:
                probe.cancel()
                trim.cancel()

        outcome = await soak.soak(opts, ledger_factory=lambda _stack: ledger, during=during)
        await ledger.client.aclose()
    finally:
        await proxy.close()
        await asyncio.to_thread(server.stop)
    count, took = state.get("catch_up", (0, None))
    observed.append(
        f"- settlements made on LNbits during the cut: {count}; all credited "
        + (f"{took:.1f} s after the backend came back" if took is not None else "NOT within 120 s")
    )
    observed += recovery_lines(outcome.traffic, explainer)
    observed += [f"- log: {line}" for line in log_excerpt(outcome.stack, "settlement_stream_dropped", 2)]
    return fault_report("backend-drop", outcome, explainer, observed)


async def trim_forwarded(proxy: Any) -> None:
    while True:
        await asyncio.sleep(10)
        proxy.forwarded.clear()


# ================================================================================= kill-replica


async def kill_replica(minutes: float) -> FaultResult:
    explainer = Explainer()
    observed: list[str] = []
    opts = fault_options("kill-replica", minutes, database="postgresql", replicas=2)
    opts.allow_duplicates = True
    state: dict[str, Any] = {}

    async def during(stack: Stack, traffic: Traffic) -> None:
        traffic.expect = explainer
        one, two = stack.replicas
        await at(traffic, 60)
        window = explainer.open("replica 2 killed", traffic.now(), unreachable({two.name}))
        two.proc.kill9()
        state["kill"] = traffic.now()
        explainer.note(traffic, f"kill -9 {two.name}")
        await asyncio.sleep(2)
        two.routable = False
        explainer.note(traffic, f"load balancer takes {two.name} out")
        await asyncio.sleep(3)
        theirs = await pay_open(
            traffic,
            10,
            lambda rec: stack.ledger.pay(traffic, rec.invoice, "POST /api/dev/pay"),
            made_on=two.name,
        )
        explainer.note(
            traffic,
            f"paid {len(theirs)} open invoices made by {two.name} (through {one.name}'s /api/dev/pay)",
        )
        await at(traffic, 120)
        state["down_paid"] = paid_between(traffic, state["kill"], traffic.now())
        created_there = {r.payment_hash for r in traffic.payments.values() if r.created_on == two.name}
        state["down_paid_theirs"] = state["down_paid"] & created_there
        two.proc.start()
        took = await two.proc.wait_ready()
        two.routable = True
        window.end = traffic.now() + 2
        explainer.note(traffic, f"{two.name} restarted, ready in {took:.1f} s, back in the load balancer")
        await at(traffic, 180)
        window = explainer.open("both replicas killed", traffic.now(), unreachable({one.name, two.name}))
        one.proc.kill9()
        two.proc.kill9()
        explainer.note(traffic, "kill -9 of both replicas")
        state["offline"] = await pay_open(traffic, 10, dev_pay_cli(stack))
        explainer.note(
            traffic,
            f"paid {len(state['offline'])} open invoices with `boltgate dev pay` (no gateway running)",
        )
        await at(traffic, 200)
        for replica in (one, two):
            replica.proc.start()
        for replica in (one, two):
            took = await replica.proc.wait_ready()
            explainer.note(traffic, f"{replica.name} restarted, ready in {took:.1f} s")
        window.end = traffic.now() + 5
        db = AuditDB(opts, stack.data_dir)
        took = await wait_recorded(db, state["offline"], 120)
        state["offline_took"] = took
        explainer.note(
            traffic,
            f"the invoices paid while no gateway ran: all paid "
            f"{f'{took:.1f} s after the restart' if took is not None else 'NOT within 120 s'}",
        )
        await at(traffic, opts.minutes * 60)

    outcome = await soak.soak(opts, during=during)
    stack = outcome.stack
    observed.append(
        "- payments paid while replica 2 was down: "
        f"{len(state.get('down_paid', ()))}, of them created on replica 2: "
        f"{len(state.get('down_paid_theirs', ()))}; all paid per the audit (replica 1's watcher follows the "
        "shared node, so they were credited at once, not by a reconciler)"
    )
    took = state.get("offline_took")
    observed.append(
        f"- invoices paid on the node while no gateway ran: {len(state.get('offline', ()))}; credited "
        + (f"{took:.1f} s after the restarts" if took is not None else "NOT within 120 s")
        + f" (log lines `reconciled`: {log_count(stack, 'reconciled')})"
    )
    observed += recovery_lines(outcome.traffic, explainer)
    return fault_report("kill-replica", outcome, explainer, observed)


async def pay_open(
    traffic: Traffic,
    count: int,
    pay: Callable[[soak.PaymentRec], Awaitable[str | None]],
    made_on: str | None = None,
) -> set[str]:
    """Pay up to ``count`` open invoices (of payments their flow leaves unpaid, young enough not to
    expire soon) as customers would during a fault; the client records them as paid for the audit."""
    now = time.time()
    candidates = [
        r
        for r in traffic.payments.values()
        if not r.will_pay
        and r.paid_at is None
        and now - r.created_at < 60
        and made_on in (None, r.created_on)
    ]
    paid: set[str] = set()
    for rec in reversed(candidates):  # the newest first
        if len(paid) >= count:
            break
        if await pay(rec) is not None:
            rec.paid_at = time.time()
            paid.add(rec.payment_hash)
    return paid


def dev_pay_cli(stack: Stack) -> Callable[[soak.PaymentRec], Awaitable[str | None]]:
    """Pay on the dev node alone: ``boltgate dev pay <hash>`` (no gateway needed)."""

    async def pay(rec: soak.PaymentRec) -> str | None:
        proc = await asyncio.create_subprocess_exec(
            soak.BOLTGATE,
            "dev",
            "pay",
            rec.payment_hash,
            env=stack.env(None),
            cwd=stack.data_dir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _err = await proc.communicate()
        return out.decode().strip().splitlines()[-1] if proc.returncode == 0 else None

    return pay


# ==================================================================================== disk-full


async def disk_full(minutes: float) -> FaultResult:
    mount = Path(tempfile.mkdtemp(prefix="boltgate-faults-tmpfs-", dir="/mnt"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    explainer = Explainer()
    observed: list[str] = []
    state: dict[str, Any] = {}
    node_dir = Path(tempfile.mkdtemp(prefix="boltgate-faults-devnode-"))
    opts = fault_options("disk-full", minutes, database="sqlite", replicas=1)
    opts.data_dir = mount / "data"
    opts.lightning_url = f"dev://{node_dir}"
    filler = mount / "filler"

    async def during(stack: Stack, traffic: Traffic) -> None:
        traffic.expect = explainer
        await at(traffic, 60)
        window = explainer.open("data directory full", traffic.now(), storage_error)
        size = await asyncio.to_thread(fill, filler)
        state["full"] = traffic.now()
        explainer.note(
            traffic, f"tmpfs filled ({size / 1e6:.1f} MB written, {shutil.disk_usage(mount).free} bytes free)"
        )
        await asyncio.sleep(5)
        extra = await pay_open(
            traffic, 10, lambda rec: stack.ledger.pay(traffic, rec.invoice, "POST /api/dev/pay")
        )
        explainer.note(
            traffic, f"paid {len(extra)} more open invoices on the dev node (its files are elsewhere)"
        )
        await at(traffic, 120)
        filler.unlink()
        state["freed"] = traffic.now()
        explainer.note(traffic, f"filler removed ({shutil.disk_usage(mount).free / 1e6:.1f} MB free)")
        window.end = traffic.now() + GRACE
        hashes = paid_between(traffic, state["full"], state["freed"])
        took = await wait_recorded(AuditDB(opts, stack.data_dir), hashes, 120)
        state["catch_up"] = (len(hashes), took)
        explainer.note(
            traffic,
            f"{len(hashes)} payments paid while full: all paid "
            f"{f'after {took:.1f} s' if took is not None else 'NOT within 120 s'}",
        )
        await at(traffic, opts.minutes * 60)

    async def before_audit(stack: Stack, traffic: Traffic) -> None:
        gateway = stack.replicas[0]
        alive = gateway.proc.alive()
        gateway.proc.stop()
        with contextlib.closing(sqlite3.connect(stack.data_dir / "boltgate.db")) as db:
            state["integrity"] = db.execute("PRAGMA integrity_check").fetchall()
        explainer.note(
            traffic,
            f"gateway {'stopped' if alive else 'had exited'}; PRAGMA integrity_check: {state['integrity']}",
        )
        gateway.proc.start()
        took = await gateway.proc.wait_ready()
        merchant = stack.merchants[0]
        async with httpx.AsyncClient(base_url=gateway.base, timeout=30) as client:
            created = await client.post(
                "/api/payments",
                headers={"X-API-Key": merchant.key},
                json={"orderId": f"after-restart-{time.time()}", "amount": "1.00", "currency": "USD"},
            )
            state["after"] = created.status_code
        explainer.note(traffic, f"restarted, ready in {took:.1f} s; a new payment: HTTP {state['after']}")

    try:
        outcome = await soak.soak(
            opts, during=during, before_audit=before_audit, ledger_factory=lambda _s: DevLedger(node_dir)
        )
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()
        shutil.rmtree(node_dir, ignore_errors=True)
    count, took = state.get("catch_up", (0, None))
    observed.append(
        f"- settlements made while the disk was full: {count}; all credited "
        + (f"{took:.1f} s after space was freed" if took is not None else "NOT within 120 s")
    )
    observed.append(
        f"- PRAGMA integrity_check after the fault: {state.get('integrity')}; after a restart a new "
        f"payment answered HTTP {state.get('after')}"
    )
    observed += recovery_lines(outcome.traffic, explainer)
    observed += [f"- log: {line}" for line in log_excerpt(outcome.stack, "full", 3)]
    return fault_report("disk-full", outcome, explainer, observed)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full; bytes written."""
    written = 0
    block = bytes(1 << 20)
    with path.open("wb", buffering=0) as out:
        while True:
            try:
                written += out.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for size in (65536, 4096, 512, 1):  # the last bytes too
            piece = bytes(size)
            while True:
                try:
                    written += out.write(piece)
                except OSError:
                    break
    os.sync()
    return written


# ========================================================================================== main


def fault_options(name: str, minutes: float, *, database: str, replicas: int) -> Options:
    return Options(
        label=f"fault-{name}",
        database=database,
        replicas=replicas,
        minutes=minutes,
        drain_seconds=300.0,
        argv=list(sys.argv[1:]),
    )


RUNS = {
    "pg-restart": pg_restart,
    "backend-drop": backend_drop,
    "kill-replica": kill_replica,
    "disk-full": disk_full,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--fault", action="append", choices=FAULTS, help="default: all four, in order")
    parser.add_argument("--minutes", type=float, default=5.0, help="traffic per fault (5)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("faults.py runs as root (tmpfs mount, PostgreSQL as the postgres user)")

    async def go() -> int:
        results = []
        for name in args.fault or FAULTS:
            progress(f"=== fault {name}")
            result = await RUNS[name](args.minutes)
            print(result.text, "\n", flush=True)
            results.append(result)
        for r in results:
            print(f"{r.name}: {'PASS' if r.passed else 'FAIL'}")
        return 0 if all(r.passed for r in results) else 1

    return soak.run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
