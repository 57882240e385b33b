"""L402 benchmark: the cost of verifying one credential, boltgate's macaroon code beside pymacaroons.

Run from the repository root::

    .venv/bin/python bench/l402.py

One Aperture-shaped macaroon (a 66-byte L402 identifier, location ``lsat`` and three caveats:
``services=``, ``<service>_capabilities=``, ``<service>_valid_until=``) sent as standard base64, the
way an ``Authorization: L402`` header carries it. Per credential:

* boltgate: ``macaroon.decode`` (base64 + V2 parse) + ``decode_identifier`` + ``signature_valid``
  (the HMAC chain from the root key) + ``caveats.check`` of the three caveats;
* pymacaroons: ``Macaroon.deserialize`` + a ``Verifier`` built for the request with one
  ``satisfy_general`` that checks the same three caveats + ``verify`` with the root key.

Each figure is the median over REPEATS runs of N credentials, in µs per credential, both measured
in the same process on the same macaroon. Prints a markdown table and a verdict line (target: at most
TARGET_US µs for boltgate) and exits 1 when the target is missed. Writes nothing.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds modules (bolt11.py) that shadow packages: keep it off the path, and put the
# repository root first so "boltgate" is this checkout.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pymacaroons  # type: ignore[import-untyped]  # noqa: E402

from boltgate.l402 import caveats, macaroon  # noqa: E402

N = 20_000
REPEATS = 5
TARGET_US = 25.0

ROOT_KEY = bytes(range(1, 33))
SERVICE = "boltgate"
CAPABILITY = "premium-data"
NOW = 1_800_000_000
IDENTIFIER = macaroon.encode_identifier(bytes(range(32)), bytes(range(32, 64)))
CAVEATS = (
    caveats.services_caveat(SERVICE),
    caveats.capabilities_caveat(SERVICE, [CAPABILITY, "reports"]),
    caveats.valid_until_caveat(SERVICE, NOW + 3600),
)
TEXT = macaroon.encode(macaroon.mint(ROOT_KEY, IDENTIFIER, "lsat", CAVEATS))
NEED = caveats.Requirement(now=NOW, service=SERVICE, capability=CAPABILITY)


def boltgate_verify() -> bool:
    """The whole check boltgate runs on a credential's macaroon."""
    m = macaroon.decode(TEXT)
    macaroon.decode_identifier(m.identifier)
    return macaroon.signature_valid(m, ROOT_KEY) and caveats.check(m.caveats, NEED) is None


def _pymacaroons_caveat(caveat: str) -> bool:
    """The same three rules, written as a pymacaroons general satisfier."""
    key, _, value = caveat.partition("=")
    if key == "services":
        return SERVICE in {entry.partition(":")[0] for entry in value.split(",")}
    if key == f"{SERVICE}_capabilities":
        return CAPABILITY in value.split(",")
    if key == f"{SERVICE}_valid_until":
        return int(value) > NOW
    return False


def pymacaroons_verify() -> bool:
    """The same check with pymacaroons (a Verifier per request, as its caveats depend on it)."""
    m = pymacaroons.Macaroon.deserialize(TEXT)
    verifier = pymacaroons.Verifier()
    verifier.satisfy_general(_pymacaroons_caveat)
    return bool(verifier.verify(m, ROOT_KEY))


def per_call_us(func: Callable[[], bool]) -> float:
    """Median over REPEATS runs of N calls of the mean time of one call, in microseconds."""
    for _ in range(N // 10):  # warm up
        func()
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(N):
            func()
        samples.append((time.perf_counter() - started) / N * 1e6)
    return statistics.median(samples)


def library_rows() -> list[tuple[str, float]]:
    """(implementation, µs per credential) for boltgate then pymacaroons, same macaroon."""
    if not (boltgate_verify() and pymacaroons_verify()):
        raise SystemExit("the credential does not verify; the comparison would be meaningless")
    return [
        ("boltgate.l402 (decode + identifier + HMAC chain + caveats)", per_call_us(boltgate_verify)),
        (
            f"pymacaroons {version('pymacaroons')} (deserialize + Verifier.verify)",
            per_call_us(pymacaroons_verify),
        ),
    ]


def library_table(rows: list[tuple[str, float]]) -> str:
    reference = rows[-1][1]
    lines = [
        "| implementation | µs per credential | target | vs pymacaroons |",
        "|---|---:|---:|---:|",
    ]
    for index, (name, micros) in enumerate(rows):
        target = f"≤ {TARGET_US:.0f} µs" if index == 0 else "-"
        lines.append(f"| {name} | {micros:,.1f} | {target} | {reference / micros:.1f}x |")
    return "\n".join(lines)


def main() -> int:
    rows = library_rows()
    ours = rows[0][1]
    passed = ours <= TARGET_US
    print(f"L402 credential verification: median of {REPEATS} runs of {N:,} credentials, 3 caveats\n")
    print(library_table(rows))
    print(
        f"\nboltgate {ours:.1f} µs per credential (target ≤ {TARGET_US:.0f} µs), "
        f"{rows[-1][1] / ours:.1f}x faster than pymacaroons: {'PASS' if passed else 'FAIL'}"
    )
    http_passed = http_section() if "--library-only" not in sys.argv else True
    return 0 if passed and http_passed else 1


# ------------------------------------------------------------------------------ HTTP: the guard's cost

HTTP_TARGET_PCT = 10.0
HTTP_SECONDS = 4
HTTP_ROUNDS = 5
HTTP_CONNECTIONS = 16


def _payments_helpers() -> Any:
    """bench/payments.py (servers in process groups, wrk) loaded by path: bench/ is off sys.path."""
    spec = importlib.util.spec_from_file_location("bench_payments", HERE / "payments.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_payments"] = module
    sys.path.insert(0, str(HERE))  # payments.py imports nothing from bench/, but keep its view
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HERE))
    return module


def http_section() -> bool:
    """The same response served free and behind the 402 guard with a valid L402 token, by wrk.

    Free and paid cells alternate on one server (ROUNDS times each, medians compared), so drift
    of this machine between runs hits both alike; then again on a server that verifies every
    request (the verified-token cache off).
    """
    helpers = _payments_helpers()
    wrk = helpers.ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="l402-bench-"))
    script = work / "get.lua"
    script.write_text('wrk.method = "GET"\n')
    print(
        f"\nThe 402 guard over HTTP: boltgate serve (1 worker, SQLite), wrk -c{HTTP_CONNECTIONS}, "
        f"{HTTP_ROUNDS} alternating {HTTP_SECONDS} s cells per route after a 2 s warm-up, medians\n"
    )
    print("| verified-token cache | route | req/s (median) | p50 ms | p99 ms | errors | overhead |")
    print("|---|---|---:|---:|---:|---:|---:|")
    verdicts = []
    for cache in ("30", "0"):
        with helpers.boltgate_server(
            work, 1, None, {"BOLTGATE_L402_VERIFIED_CACHE_SECONDS": cache}
        ) as server:
            base = server.target.base_url
            challenge = httpx.get(f"{base}/api/l402/premium-data")
            invoice = challenge.json()["invoice"]
            token = challenge.headers.get_list("www-authenticate")[0].split('"')[1]
            preimage = httpx.post(f"{base}/api/dev/pay", json={"invoice": invoice}).json()["preimage"]
            auth = {"Authorization": f"L402 {token}:{preimage}"}
            assert httpx.get(f"{base}/api/l402/premium-data", headers=auth).status_code == 200
            cells = {
                "GET /api/l402/free-data (unprotected)": ("/api/l402/free-data", {}),
                "GET /api/l402/premium-data + L402 token": ("/api/l402/premium-data", auth),
            }
            results: dict[str, list[Any]] = {name: [] for name in cells}
            for path, headers in cells.values():
                helpers.run_wrk(wrk, base + path, script, headers, HTTP_CONNECTIONS, 2)  # warm-up
            for _ in range(HTTP_ROUNDS):
                for name, (path, headers) in cells.items():
                    out = helpers.run_wrk(wrk, base + path, script, headers, HTTP_CONNECTIONS, HTTP_SECONDS)
                    results[name].append(helpers.parse_wrk(out))
        medians = {name: sorted(runs, key=lambda r: r.rps)[len(runs) // 2] for name, runs in results.items()}
        free, paid = medians.values()
        overhead_us = (1 / paid.rps - 1 / free.rps) * 1e6
        overhead_pct = (free.rps / paid.rps - 1) * 100
        errors = sum(r.errors for runs in results.values() for r in runs)
        label = f"{cache} s" if cache != "0" else "off (every request verified)"
        for (name, result), extra in zip(
            medians.items(), ("-", f"{overhead_us:.0f} µs, {overhead_pct:.1f} %"), strict=True
        ):
            cells_text = f"{result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | {errors}"
            print(f"| {label} | {name} | {cells_text} | {extra} |")
        verdicts.append((label, overhead_us, overhead_pct, errors))
    default = verdicts[0]
    ok = default[2] <= HTTP_TARGET_PCT and all(v[3] == 0 for v in verdicts)
    print(
        f"\nguard overhead with the defaults: {default[1]:.0f} µs per request, {default[2]:.1f} % of the "
        f"unprotected route's cost (target ≤ {HTTP_TARGET_PCT:.0f} %): {'PASS' if ok else 'FAIL'}; "
        f"verifying every request: {verdicts[1][1]:.0f} µs, {verdicts[1][2]:.1f} %"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
