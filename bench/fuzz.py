"""Schemathesis against our own OpenAPI with a larger budget than the test suite's
(``tests/fuzz/test_openapi.py``): the same gateway (in-process, on loopback, a fresh SQLite
database, nothing reachable but 127.0.0.1), key, checks and links (``tests/fuzz/harness.py``), run
by schemathesis's engine, what ``st run`` runs. Two passes:

1. every operation: the examples, coverage (boundary values, invalid input) and fuzzing phases,
   ``--examples`` random examples of each;
2. sequences: the stateful phase, following the harness's links (a payment created, then read,
   paid, looked up by its order id; products, webhooks, paid content, proxies, API keys) and those
   schemathesis infers, with valid requests; ``--scenarios`` of them.

Run from the repository root::

    .venv/bin/python bench/fuzz.py                            # 200 examples, 15 minutes at most
    .venv/bin/python bench/fuzz.py --examples 50 --seconds 120
    .venv/bin/python bench/fuzz.py --seed 7                   # another seed (default: the suite's)

Prints one row per operation (requests sent; requests failing each check of the harness: 5xx,
undocumented status, content type, headers, body schema, invalid input accepted, ...; errors), then
each distinct failure with a curl command that reproduces it. Exits 1 on any failure or error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import schemathesis

from tests.fuzz.harness import (
    CHECKS,
    EXCLUDED,
    SEED,
    Tally,
    config,
    linked_schema,
    loopback_only,
    run_engine,
    running_gateway,
)

SHORT = {  # column headings, in the order of CHECKS
    "not_a_server_error": "5xx",
    "status_code_conformance": "status",
    "content_type_conformance": "type",
    "response_headers_conformance": "headers",
    "response_schema_conformance": "body",
    "negative_data_rejection": "invalid accepted",
    "missing_required_header": "no header",
    "unsupported_method": "method",
    "allow_header_conformance": "allow",
    "ignored_auth": "auth",
    "use_after_free": "after delete",
    "ensure_resource_availability": "after create",
}


def report(tally: Tally, seconds: float) -> None:
    heads = [SHORT[name] for name in CHECKS]
    print("| operation | requests | " + " | ".join(heads) + " | errors |")
    print("|---|---:|" + "---:|" * len(heads) + "---:|")
    for label in sorted(tally.rows, key=lambda text: (text.split(" ", 1)[-1], text)):
        row = tally.rows[label]
        cells = [str(row.failures.get(name, "")) for name in CHECKS]
        print(f"| {label} | {row.requests} | " + " | ".join(cells) + f" | {row.errors or ''} |")
    total = sum(row.requests for row in tally.rows.values())
    print(
        f"\n{len(tally.rows)} operations, {total} requests in {seconds:.0f} s; "
        f"{len(tally.distinct)} distinct failures, {len(tally.errors)} errors"
    )
    if not tally.ok:
        print("\n" + tally.problems())
    for path, why in EXCLUDED.items():
        print(f"not fuzzed: {path} ({why})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="random examples per operation")
    parser.add_argument("--scenarios", type=int, default=500, help="linked sequences (stateful phase)")
    parser.add_argument("--steps", type=int, default=10, help="requests per sequence, at most")
    parser.add_argument("--seconds", type=int, default=900, help="time limit; 3/4 for the first pass")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        loopback_only(),
        running_gateway(Path(folder), log_level="ERROR") as target,
    ):
        document = httpx.get(f"{target.base_url}/openapi.json", timeout=10).json()
        started = time.monotonic()
        first = max(1, args.seconds * 3 // 4)
        operations = schemathesis.openapi.from_dict(
            document,
            config=config(
                document,
                examples=args.examples,
                seed=args.seed,
                base_url=target.base_url,
                max_time=first,
            ),
        )
        tally = run_engine(operations)
        print(f"pass 1 (operations): {tally.stopped}", file=sys.stderr)
        rest = max(1, args.seconds - int(time.monotonic() - started))
        sequences = linked_schema(
            document, target, examples=args.scenarios, steps=args.steps, seed=args.seed, max_time=rest
        )
        tally = run_engine(sequences, tally)
        print(f"pass 2 (sequences): {tally.stopped}", file=sys.stderr)
        report(tally, time.monotonic() - started)
    return 0 if tally.ok else 1


if __name__ == "__main__":
    sys.exit(main())
