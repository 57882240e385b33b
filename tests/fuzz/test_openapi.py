"""Schemathesis against our own OpenAPI, over loopback HTTP to a real gateway, with a merchant's
key. For every operation, valid and invalid requests (boundary values, then random data). Then
links: objects created (payments, products, webhooks, paid content, proxies, API keys, refunds),
and the operations on them fuzzed with the ids their answers gave (a payment read, paid, then read
again). No 5xx, every answer documented (status code, content type, headers, body schema), invalid
input refused: ``CHECKS`` in ``tests/fuzz/harness.py``.

Only on SQLite: the gateway has a fresh database of its own (``tests/fuzz/harness.py``), so these
tests use none of the ``db`` fixtures and are not in the PostgreSQL run. Reproducible: a fixed seed
and deterministic generation. A larger run: ``bench/fuzz.py``.

Schemathesis's ``from_fixture`` loader does not work with pytest 9.2 (it sets ``Node._nodeid``,
which is gone), so the schema is built at collection time from the app itself, and the fixture
checks that the gateway serves the same document at ``/openapi.json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import (
    CREATE_WITH,
    FOLLOW,
    PAID,
    FuzzTarget,
    config,
    creating,
    evaluate,
    loopback_only,
    openapi_document,
    running_gateway,
)

EXAMPLES = int(os.environ.get("BOLTGATE_FUZZ_EXAMPLES", "20"))
CREATED = 8  # objects each creating operation is asked to make (valid requests)
LINKED = 8  # examples of each operation on them
DOCUMENT = openapi_document()
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE

schema = schemathesis.openapi.from_dict(DOCUMENT, config=config(DOCUMENT, examples=EXAMPLES))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with loopback_only(), running_gateway(tmp_path_factory.mktemp("fuzz")) as target:
        served = httpx.get(f"{target.base_url}/openapi.json", timeout=10).json()
        assert served == DOCUMENT, "the served OpenAPI document is not the one the test was built from"
        yield target
        # the run's own key still works (nothing revoked it, so no answer above was a mere 401)
        me = httpx.get(f"{target.base_url}/api/merchant/me", headers={"X-API-Key": target.api_key})
        assert me.status_code == 200


@schema.parametrize()
def test_operation(case: schemathesis.Case[Any], target: FuzzTarget) -> None:
    case.call_and_validate(base_url=target.base_url)


def _operation(label: str) -> Any:
    method, path = label.split(" ", 1)
    return schema[path][method]


def _cases(operation: Any, choice: tuple[dict[str, Any], schemathesis.GenerationMode]) -> Any:
    """The operation's cases on one known object, valid or invalid."""
    return operation.as_strategy(path_parameters=choice[0], generation_mode=choice[1])


def _hypothesis(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each request changes the server's state
    )


def _paid_payments(target: FuzzTarget, count: int) -> list[dict[str, Any]]:
    """Payments paid through the dev node: what a refund needs (``invoiceId``, ``currency``)."""
    headers = {"X-API-Key": target.api_key}
    with httpx.Client(base_url=target.base_url, headers=headers, timeout=10) as http:
        invoices = []
        for number in range(count):
            body = {"orderId": f"fuzz-paid-{number}", "amount": "10.00", "currency": "USD"}
            invoice = http.post("/api/payments", json=body).raise_for_status().json()["invoiceId"]
            http.post(f"/api/dev/payments/{invoice}/settle").raise_for_status()
            invoices.append(invoice)
        for _ in range(200):
            if all(http.get(f"/api/payments/{invoice}").json()["status"] == "paid" for invoice in invoices):
                return [{"invoiceId": invoice, "currency": "USD"} for invoice in invoices]
            time.sleep(0.05)
    raise AssertionError("the dev node's payments were not seen paid")


@pytest.mark.parametrize("source", sorted(FOLLOW))
def test_linked_operations(source: str, target: FuzzTarget) -> None:
    def call(case: schemathesis.Case[Any]) -> Any:
        return case.call_and_validate(base_url=target.base_url)

    created: list[tuple[dict[str, Any], Any]] = []
    creator = _operation(source)
    extras = _paid_payments(target, 2) if source in PAID else [{}]

    @_hypothesis(CREATED)
    @given(creator.as_strategy(generation_mode=POSITIVE), st.sampled_from(extras))
    def create(case: schemathesis.Case[Any], extra: dict[str, Any]) -> None:
        assert source in CREATE_WITH
        case.body = creating(schemathesis.HookContext(operation=creator), case.body, extra)
        response = call(case)
        if 200 <= response.status_code < 300:
            created.append((dict(case.path_parameters or {}), response.json()))

    create()
    assert created, f"{source} created nothing to follow links from"
    for label, expressions in FOLLOW[source]:
        operation = _operation(label)
        known = [
            {name: evaluate(expression, path, body) for name, expression in expressions.items()}
            for path, body in created
        ]
        cases = st.tuples(st.sampled_from(known), st.sampled_from([POSITIVE, NEGATIVE])).flatmap(
            partial(_cases, operation)
        )

        @_hypothesis(LINKED)
        @given(cases)
        def follow(case: schemathesis.Case[Any]) -> None:
            call(case)

        follow()
