"""What the schemathesis runs share (tests/fuzz/test_openapi.py and bench/fuzz.py): a real gateway
served over loopback from a thread of its own, a merchant's key, the checks, the exclusions, and a
guard that keeps every connection the gateway makes on 127.0.0.1.

The gateway runs in a thread with its own event loop because the fuzzer's calls are synchronous
(requests, inside Hypothesis): a gateway on the test's event loop would not answer while they wait.
It has a fresh SQLite database of its own, so the data a run generates (payments, products,
webhooks by the hundred) never meets other tests' data and a seeded run meets the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import itertools
import socket
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import schemathesis
from schemathesis import BaseSchema
from schemathesis.engine import Status, events, from_schema

from boltgate.app import create_app
from boltgate.config import Settings
from boltgate.kit.ids import new_api_key
from boltgate.merchant import service as merchant_service
from tests.conftest import Gateway, free_port, make_settings

T = TypeVar("T")
ADMIN_KEY = "fuzz-admin-key-0123456789abcdef0123456789"
# The run's merchant key, known before the gateway starts (its merchant is given it), so that the
# schema's security scheme carries it: negative cases (no key, a wrong key) go without it.
API_KEY = new_api_key()
SEED = 20261123

# No 5xx, and every response is the one documented: status code, content type, headers, body.
# Then how input is handled, as `st run --checks all` had it (tests/test_fuzz.py, which this
# replaces): invalid input, a missing required header or an unsupported method is refused (with
# `Allow` on 405), a key is not ignored, a deleted object is gone, a created one can be read.
# Not `positive_data_acceptance`: rules the document cannot express (a supported currency, exactly
# one of two fields, no control characters) rightly refuse some schema-valid input with a 400.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)

# Operations that are not fuzzed, each for a reason. None: the Server-Sent Events streams
# (`/api/payments/{invoice_id}/events`, `/checkout/{invoice_id}/events`) answer unknown ids at once
# (404) and are not linked to, the paid proxy's catch-all and every URL a merchant gives reach
# nothing but 127.0.0.1 (`loopback_only`).
EXCLUDED: dict[str, str] = {}


# -- the network guard -------------------------------------------------------------------------

_guard = threading.Event()
_guard_installed = threading.Lock()


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # a passive (bind) look-up
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in ("localhost", "localhost.", ""):
        return True
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _guard.is_set():
        return
    if event == "socket.getaddrinfo" and not _is_loopback(args[0]):
        raise socket.gaierror(socket.EAI_NONAME, "fuzz run: only 127.0.0.1 is reachable")
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"fuzz run: only 127.0.0.1 is reachable, not {address[0]}")


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While active, no thread of this process resolves a name or connects anywhere but loopback:
    the URLs the fuzzer invents (webhook receivers, proxy upstreams, Lightning nodes, Shopify
    stores, Lightning addresses) fail as an unreachable host does, and nothing leaves the machine.
    (An audit hook cannot be removed: outside the block it does nothing.)"""
    with _guard_installed:
        if not getattr(sys, "_boltgate_fuzz_guard", False):
            sys.addaudithook(_audit)
            sys._boltgate_fuzz_guard = True  # type: ignore[attr-defined]
    _guard.set()
    try:
        yield
    finally:
        _guard.clear()


# -- the gateway -------------------------------------------------------------------------------


def gateway_settings(data_dir: Path, port: int, **overrides: Any) -> Settings:
    """Dev mode (the /api/dev routes exist, the dev node pays), the workers running (payments paid
    through the dev node become paid; the webhooks the fuzzer registers are delivered to nothing:
    private addresses are refused by the gateway, the others by :func:`loopback_only`), the
    operator's key set so that the admin route can be reached."""
    return make_settings(
        data_dir,
        f"sqlite+aiosqlite:///{data_dir / 'fuzz.db'}",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        auto_migrate=True,
        run_workers=True,
        webhook_allow_private=False,
        admin_api_key=ADMIN_KEY,
        **overrides,
    )


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI document, built without serving it (the served one is compared with
    it when the gateway starts)."""
    with tempfile.TemporaryDirectory() as folder:
        document: dict[str, Any] = create_app(gateway_settings(Path(folder), 8402)).openapi()
    return document


# The fuzzer's own API keys: a request to revoke one (the stateful runs find the id in
# `GET /api/merchant/keys`) is sent for an id that does not exist instead, or every later request
# of the run would be a 401.
PROTECTED_KEYS: set[str] = set()


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case[Any], kwargs: dict[str, Any]) -> None:
    parameters = case.path_parameters or {}
    if case.path == "/api/merchant/keys/{key_id}" and parameters.get("key_id") in PROTECTED_KEYS:
        case.path_parameters = {**parameters, "key_id": "key_not_the_fuzzers_own"}


@dataclass
class FuzzTarget:
    base_url: str
    api_key: str
    gateway: Gateway


class ThreadedGateway:
    """A :class:`tests.conftest.Gateway` on an event loop in a thread of its own."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.settings = gateway_settings(data_dir, free_port(), **overrides)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzz-gateway", daemon=True)
        self.gateway: Gateway | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> FuzzTarget:
        self._thread.start()
        self.gateway = self.run(self._start())
        key_id, key = self.run(self._merchant())
        PROTECTED_KEYS.add(key_id)
        return FuzzTarget(self.gateway.base_url, key, self.gateway)

    async def _start(self) -> Gateway:
        gateway = Gateway(self.settings)
        await gateway.start()
        return gateway

    async def _merchant(self) -> tuple[str, str]:
        assert self.gateway is not None
        with mock.patch.object(merchant_service, "new_api_key", return_value=API_KEY):
            async with self.gateway.ctx.db.writing() as session:
                _, issued = await merchant_service.create_merchant(session, "Fuzz Shop")
        return issued.key.id, issued.secret

    def stop(self) -> None:
        if self.gateway is not None:
            self.run(self.gateway.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def running_gateway(data_dir: Path, **overrides: Any) -> Iterator[FuzzTarget]:
    """A :class:`ThreadedGateway` (``overrides``: other settings) while the block runs."""
    server = ThreadedGateway(data_dir, **overrides)
    try:
        yield server.start()
    finally:
        server.stop()


# -- schemathesis ------------------------------------------------------------------------------

# Links: an object is created, then read, used, changed and deleted by the ids its answer gave.
# Our own document has no OpenAPI links; the linked runs follow these (the test suite's directly,
# bench/fuzz.py's through schemathesis's stateful phase, with them added to a copy of the document).
# The Server-Sent Events streams are left out: on an object that exists they do not end.
# A parameter's value: an OpenAPI runtime expression, or a function of the answer's body.
Expression = str | Callable[[Any], Any]
_PAYMENT: dict[str, Expression] = {"invoice_id": "$response.body#/invoiceId"}
_ORDER: dict[str, Expression] = {"order_id": "$response.body#/orderId"}
_KEY: dict[str, Expression] = {"key_id": "$response.body#/id"}
_PRODUCT: dict[str, Expression] = {"product_id": "$response.body#/productId"}
_WEBHOOK: dict[str, Expression] = {"endpoint_id": "$response.body#/id"}
_ITEM: dict[str, Expression] = {"item_id": "$response.body#/id"}
_PROXY: dict[str, Expression] = {"proxy_id": "$response.body#/proxyId"}
_REFUND: dict[str, Expression] = {"refund_id": "$response.body#/refundId"}
_CLAIM: dict[str, Expression] = {**_REFUND, "tag": lambda body: body["claim"]["url"].rsplit("/", 1)[-1]}
FOLLOW: dict[str, list[tuple[str, dict[str, Expression]]]] = {
    "POST /api/payments": [
        ("GET /api/payments/{invoice_id}", _PAYMENT),
        ("GET /api/payments/order/{order_id}", _ORDER),
        ("GET /checkout/{invoice_id}", _PAYMENT),
        ("GET /checkout/{invoice_id}/status", _PAYMENT),
        ("POST /api/dev/payments/{invoice_id}/settle", _PAYMENT),
        # and once more, paid
        ("GET /api/payments/{invoice_id}", _PAYMENT),
        ("GET /checkout/{invoice_id}", _PAYMENT),
        ("GET /checkout/{invoice_id}/status", _PAYMENT),
    ],
    "POST /api/checkout/products": [
        ("GET /api/checkout/products/{product_id}", _PRODUCT),
        ("GET /buy/{product_id}", _PRODUCT),
        ("POST /buy/{product_id}", _PRODUCT),
        ("PUT /api/checkout/products/{product_id}", _PRODUCT),
        ("DELETE /api/checkout/products/{product_id}", _PRODUCT),
    ],
    "POST /api/webhooks": [
        ("GET /api/webhooks/{endpoint_id}", _WEBHOOK),
        ("POST /api/webhooks/{endpoint_id}/test", _WEBHOOK),
        ("GET /api/webhooks/{endpoint_id}/deliveries", _WEBHOOK),
        ("POST /api/webhooks/{endpoint_id}/rotate-secret", _WEBHOOK),
        ("PUT /api/webhooks/{endpoint_id}", _WEBHOOK),
        ("DELETE /api/webhooks/{endpoint_id}", _WEBHOOK),
    ],
    "POST /api/l402/items": [
        ("GET /api/l402/items/{item_id}", _ITEM),
        ("PUT /api/l402/items/{item_id}", _ITEM),
        ("DELETE /api/l402/items/{item_id}", _ITEM),
    ],
    "POST /api/proxy": [
        ("GET /api/proxy/{proxy_id}", _PROXY),
        ("GET /l402/proxy/{proxy_id}/{path}", _PROXY),
        ("POST /l402/proxy/{proxy_id}/{path}", _PROXY),
        ("GET /l402/proxy/{proxy_id}/openapi.json", _PROXY),
        ("GET /l402/proxy/{proxy_id}/.well-known/l402-manifest.json", _PROXY),
        ("POST /api/proxy/{proxy_id}/manifest/endpoints", _PROXY),
        ("GET /api/proxy/{proxy_id}/manifest/endpoints", _PROXY),
        ("GET /api/proxy/{proxy_id}/manifest/settings", _PROXY),
        ("PUT /api/proxy/{proxy_id}/manifest/settings", _PROXY),
        ("GET /api/proxy/{proxy_id}/stats", _PROXY),
        ("PUT /api/proxy/{proxy_id}", _PROXY),
        ("POST /api/proxy/{proxy_id}/unpublish", _PROXY),
        ("DELETE /api/proxy/{proxy_id}", _PROXY),
    ],
    "POST /api/merchant/keys": [("DELETE /api/merchant/keys/{key_id}", _KEY)],
    # claim-link refunds of paid payments (the test pays them first: see PAID)
    "POST /api/refunds": [
        ("GET /api/refunds/{refund_id}", _REFUND),
        ("GET /lnurlw/{refund_id}/{tag}", _CLAIM),
        ("GET /lnurlw/{refund_id}/{tag}/callback", _CLAIM),
    ],
}

# What the gateway needs of a creating request that the document cannot say (a supported currency,
# an absolute URL, a slug's alphabet, exactly one of two fields): the linked runs put these values
# in the generated bodies, or random text would seldom create anything to follow a link from.
_SERIAL = itertools.count(1)
CREATE_WITH: dict[str, Callable[[int], dict[str, Any]]] = {
    "POST /api/payments": lambda n: {"orderId": f"fuzz-{n}", "amount": "12.50", "currency": "USD"},
    "POST /api/checkout/products": lambda n: {"name": f"Item {n}", "price": "4.20", "currency": "EUR"},
    "POST /api/webhooks": lambda n: {"url": f"https://receiver.invalid/{n}"},
    "POST /api/l402/items": lambda n: {
        "slug": f"item-{n}",
        "title": "Item",
        "body": "text",
        "fileBase64": None,
    },
    "POST /api/proxy": lambda n: {"name": f"Proxy {n}", "targetBaseUrl": "https://upstream.invalid"},
    "POST /api/merchant/keys": lambda n: {"name": f"key {n}"},
    # with a paid payment's invoiceId and currency (``extra``): a claim link for one cent
    "POST /api/refunds": lambda n: {
        "amount": "0.01",
        "lightningInvoice": None,
        "lightningAddress": None,
        "bitcoinAddress": None,
    },
}
# the creating operations whose objects need a paid payment (``creating``'s ``extra``)
PAID = {"POST /api/refunds"}
# ... and these where the generated body has the field at all
_IF_PRESENT = {
    "successUrl": "https://shop.invalid/thanks",
    "cancelUrl": "https://shop.invalid/cart",
    "imageUrl": "https://shop.invalid/image.png",
    "customerEmail": "payer@shop.invalid",
}


def creating(context: Any, body: Any, extra: dict[str, Any] | None = None) -> Any:
    """A ``map_body`` hook: :data:`CREATE_WITH`'s values (and ``extra``) in a creating request's body."""
    values = CREATE_WITH.get(context.operation.label)
    if values is None or not isinstance(body, dict):
        return body
    present = {key: value for key, value in _IF_PRESENT.items() if key in body}
    merged = {**body, **present, **values(next(_SERIAL)), **(extra or {})}
    return {key: value for key, value in merged.items() if value is not None}


def evaluate(expression: Expression, request_path: dict[str, Any], body: Any) -> Any:
    """A parameter's value in :data:`FOLLOW`: a function of the body, or an OpenAPI runtime
    expression of the two kinds used there."""
    if callable(expression):
        return expression(body)
    if expression.startswith("$request.path."):
        return request_path[expression.removeprefix("$request.path.")]
    value = body
    for part in expression.removeprefix("$response.body#/").split("/"):
        value = value[part]
    return value


def with_links(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with :data:`FOLLOW` as OpenAPI links from every 2xx answer."""
    linked = copy.deepcopy(document)
    for source, targets in FOLLOW.items():
        method, path = source.split(" ", 1)
        responses = linked["paths"][path][method.lower()]["responses"]
        for index, (target, parameters) in enumerate(targets):
            if not all(isinstance(expression, str) for expression in parameters.values()):
                continue  # not expressible as a link
            target_method, target_path = target.split(" ", 1)
            pointer = (
                "#/paths/" + target_path.replace("~", "~0").replace("/", "~1") + "/" + target_method.lower()
            )
            for status, response in responses.items():
                if status.startswith("2"):
                    links = response.setdefault("links", {})
                    links[f"{index}-{target}"] = {"operationRef": pointer, "parameters": parameters}
    return linked


# A reverse proxy, a Shopify store or a merchant's Lightning node that cannot be reached (nothing but
# 127.0.0.1 can be, in these runs) is answered with the 502/503/504 the operation documents:
# those are the right answers there, not server errors. A 500 is a failure everywhere.
DEPENDENCY_STATUSES = ("502", "503", "504")


def _dependency_failures(document: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            documented = [
                status for status in DEPENDENCY_STATUSES if status in operation.get("responses", {})
            ]
            if documented:
                expected = ["2XX", "3XX", "4XX", *documented]
                entries.append(
                    {
                        "include-path": path,
                        "include-method": method.upper(),
                        "checks": {"not_a_server_error": {"expected-statuses": expected}},
                    }
                )
    return entries


def config(
    document: dict[str, Any],
    *,
    examples: int,
    seed: int = SEED,
    base_url: str | None = None,
    max_time: int | None = None,
    stateful: bool = False,
    steps: int = 8,
) -> schemathesis.Config:
    """A fixed seed and deterministic generation, no deadline, no "too slow" health check, only
    :data:`CHECKS`; the merchant's key as the security scheme's, the operator's on the admin route.
    Either the per-operation phases (examples, boundary values, random data; valid and invalid)
    or, with ``stateful``, only sequences of valid requests that follow links (``examples`` of
    them, of at most ``steps``)."""
    phases: dict[str, Any] = {"stateful": {"enabled": False}}
    if stateful:
        phases = {
            "examples": {"enabled": False},
            "coverage": {"enabled": False},
            "fuzzing": {"enabled": False},
            "stateful": {"enabled": True, "max-steps": steps, "generation": {"mode": "positive"}},
        }
    data: dict[str, Any] = {
        "seed": seed,
        "color": False,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "auth": {"openapi": {"ApiKeyAuth": {"api_key": API_KEY}}},
        "request-timeout": 10,
        "generation": {"max-examples": examples, "deterministic": True, "database": "none", "mode": "all"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": phases,
        "operations": [
            {"include-path": "/api/admin/merchants", "headers": {"X-Admin-Key": ADMIN_KEY}},
            *({"include-path": path, "enabled": False} for path in EXCLUDED),
            *_dependency_failures(document),
        ],
    }
    if base_url is not None:
        data["base-url"] = base_url
    if max_time is not None:
        data["max-time"] = max_time
    return schemathesis.Config.from_dict(data)


def linked_schema(document: dict[str, Any], target: FuzzTarget, **options: Any) -> BaseSchema:
    """The stateful run's schema: :data:`FOLLOW` as links, :func:`creating` as its ``map_body`` hook."""
    schema = schemathesis.openapi.from_dict(
        with_links(document),
        config=config(document, base_url=target.base_url, stateful=True, **options),
    )

    def map_body(context: Any, body: Any) -> Any:
        return creating(context, body)

    schema.hook(map_body)
    return schema


# -- a run by schemathesis's engine (what `st run` runs), tallied per operation -----------------


@dataclass
class Row:
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    errors: int = 0


@dataclass
class Tally:
    rows: dict[str, Row] = field(default_factory=lambda: defaultdict(Row))
    # (operation, check, title) -> the failure's message and a curl command that reproduces it
    distinct: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stopped: str = ""

    @property
    def ok(self) -> bool:
        return not self.distinct and not self.errors

    def scenario(self, recorder: Any) -> None:
        for case_id, node in recorder.cases.items():
            label = node.value.operation.label
            row = self.rows[label]
            if case_id in recorder.interactions:
                row.requests += 1
            for check in recorder.checks.get(case_id, ()):
                if check.status != Status.FAILURE or check.failure_info is None:
                    continue
                row.failures[check.name] += 1
                failure = check.failure_info.failure
                key = (label, check.name, failure.title)
                self.distinct.setdefault(key, (failure.message.strip(), check.failure_info.code_sample))

    def problems(self) -> str:
        lines = [
            f"{label}: {check}: {title}\n{message}\n    {curl}"
            for (label, check, title), (message, curl) in sorted(self.distinct.items())
        ]
        return "\n\n".join(lines + [f"error: {error}" for error in self.errors])


def run_engine(schema: BaseSchema, tally: Tally | None = None) -> Tally:
    tally = tally or Tally()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            tally.scenario(event.recorder)
        elif isinstance(event, events.NonFatalError):
            tally.rows[event.label].errors += 1
            tally.errors.append(f"{event.label} ({event.phase}): {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            tally.stopped = str(event.stop_reason)
    return tally
