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

import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds modules (bolt11.py) that shadow packages: keep it off the path, and put the
# repository root first so "boltgate" is this checkout.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

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
    # HTTP section: added by the server work (paid route vs unprotected route), printed here.
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
