"""Where boltgate's time goes per request: py-spy samples of ``boltgate serve --workers 1`` under wrk load.

Starts boltgate exactly as ``bench/payments.py`` does (SQLite, or a temporary PostgreSQL database
dropped afterwards) or the FastAPI ceiling app (``--system ceiling``), loads it with wrk (create or
look-up, concurrency 16 by default, after a warm-up) and records the server with py-spy (raw
collapsed stacks, idle threads left out; py-spy pauses the server for each sample, so
req/s is lower while recording). It prints the server's CPU time per request
(from ``/proc``: user + system, over the recording) and spreads it over py-spy's samples: self time
by package, then the top functions by inclusive and by self time. Time spent in C code (sqlite3,
orjson, asyncpg's protocol) counts towards the Python function that called it.

Usage: ``.venv/bin/python bench/profile_payments.py [--system boltgate|ceiling]
[--database sqlite|postgresql] [--operation create|lookup] [--concurrency 16] [--duration 10]
[--set DATABASE_POOL_SIZE=40] [--native]``
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import payments as bench

_LINE_NO = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Profile:
    """Aggregated py-spy samples."""

    total: int
    inclusive: collections.Counter[str]
    self_time: collections.Counter[str]
    by_package: collections.Counter[str]
    roots: collections.Counter[str]  # greenlets (SQLAlchemy's sync code) start stacks of their own


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(bench.VENV_BIN)) or shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy")
    return found


def package(frame: str) -> str:
    """``func (sqlalchemy/engine/base.py)`` -> ``sqlalchemy``."""
    inside = frame.rpartition("(")[2].rstrip(")")
    return inside.split("/")[0] if "/" in inside else inside.removesuffix(".py") or "?"


def aggregate(raw: Path) -> Profile:
    inclusive: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    roots: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_LINE_NO.sub(")", f) for f in stack.split(";")] if stack else ["(no Python frame)"]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        self_time[frames[-1]] += n
        by_package[package(frames[-1])] += n
        roots[frames[0]] += n
    return Profile(total, inclusive, self_time, by_package, roots)


def record(pid: int, raw: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", str(args.rate), "--duration", str(args.duration)]
    argv += ["--format", "raw", "--output", str(raw), *(["--native"] if args.native else [])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def settings(args: argparse.Namespace) -> dict[str, str]:
    """``--set POOL_SIZE=40`` -> ``{"BOLTGATE_POOL_SIZE": "40"}``."""
    pairs = (item.partition("=") for item in args.set)
    return {f"BOLTGATE_{name.removeprefix('BOLTGATE_').upper()}": value for name, _, value in pairs}


@contextlib.contextmanager
def server(args: argparse.Namespace, work: Path) -> Iterator[bench.Served]:
    """The system under test with one worker (one process: py-spy records it all)."""
    if args.system == "ceiling":
        with bench.ceiling_server(1) as served:
            yield served
    elif args.database == "sqlite":
        with bench.boltgate_server(work, 1, None, settings(args)) as served:
            yield served
    else:
        with (
            bench.temporary_database(args.pg_dsn) as url,
            bench.boltgate_server(work, 1, url, settings(args)) as served,
        ):
            yield served


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_run(args: argparse.Namespace, raw: Path) -> tuple[bench.WrkResult, float]:
    """wrk's result and the server's CPU seconds over the recording."""
    wrk = bench.ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="payments-profile-") as tmp, server(args, Path(tmp)) as served:
        work, target, pid = Path(tmp), served.target, served.proc.pid
        make = bench.create_script if args.operation == "create" else bench.lookup_script
        headers = dict(target.headers)
        if args.operation == "create":
            headers["Content-Type"] = "application/json"
        bench.run_wrk(wrk, target.base_url, make(work, target), headers, args.concurrency, 2)
        spy = record(pid, raw, args)
        time.sleep(0.5)  # py-spy attaches; wrk runs one second longer than the recording
        seconds = args.duration + 1
        cpu = cpu_seconds(pid)
        out = bench.run_wrk(wrk, target.base_url, make(work, target), headers, args.concurrency, seconds)
        cpu = cpu_seconds(pid) - cpu
        _, err = spy.communicate(timeout=args.duration + 30)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        return bench.parse_wrk(out), cpu / seconds * args.duration


def print_top(title: str, counts: collections.Counter[str], per_request: float, total: int, top: int) -> None:
    print(f"\n{title}\n| µs/request | % of CPU | function |\n| ---: | ---: | --- |")
    for name, n in counts.most_common(top):
        print(f"| {n * per_request:,.1f} | {100 * n / total:.1f} | `{name}` |")


def report(args: argparse.Namespace, result: bench.WrkResult, cpu: float, prof: Profile, raw: Path) -> None:
    requests = result.rps * args.duration
    cpu_us = 1e6 * cpu / requests
    per_request = cpu_us / max(prof.total, 1)  # µs of CPU per request that one sample stands for
    name = "FastAPI ceiling" if args.system == "ceiling" else f"boltgate {args.database}"
    print(
        f"\n{name} workers=1 {args.operation} c={args.concurrency}: {result.rps:,.0f} req/s, "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, errors {result.errors}; "
        f"server CPU {cpu_us:,.0f} µs per request ({100 * cpu / args.duration:.0f} % of a core), "
        f"{prof.total} py-spy samples at {args.rate} Hz. Raw stacks: {raw}"
    )
    print_top("Stacks by root frame", prof.roots, per_request, prof.total, 8)
    print_top("Self time by package", prof.by_package, per_request, prof.total, args.top)
    boltgate_only = collections.Counter({k: v for k, v in prof.inclusive.items() if package(k) == "boltgate"})
    print_top("boltgate functions, inclusive", boltgate_only, per_request, prof.total, args.top)
    print_top("All functions, self", prof.self_time, per_request, prof.total, args.top)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--system", choices=("boltgate", "ceiling"), default="boltgate")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--operation", choices=("create", "lookup"), default="lookup")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=int, default=10, help="seconds recorded (default 10)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (default 200)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a boltgate setting for the run, e.g. --set DATABASE_POOL_SIZE=40 (repeatable)",
    )
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--top", type=int, default=30, help="rows per table (default 30)")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    bench.LOG_DIR.mkdir(parents=True, exist_ok=True)
    label = "ceiling" if args.system == "ceiling" else args.database
    raw = bench.LOG_DIR / f"profile-{label}-{args.operation}-c{args.concurrency}.txt"
    result, cpu = profile_run(args, raw)
    report(args, result, cpu, aggregate(raw), raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
