"""A fake OpenNode API (https://developers.opennode.com) on 127.0.0.1, and what the fake custodial
APIs share (:class:`CustodialFake`, also the base of :mod:`tests.lightning.fakes.strike`).

What it serves, as OpenNode documents it (``Authorization: <API key>``; JSON ``{"data": …}``,
errors ``{"success": false, "message": …}``):

- ``POST /v1/charges`` ``{amount (sats), description, ttl (minutes 10-1440)}`` → 201 a charge
  with ``lightning_invoice: {payreq, expires_at}`` (a real BOLT11 signed with the fake's node key);
- ``GET /v2/charge/{id}`` → the v2 charge (``price``, ``status`` unpaid|paid|expired,
  ``settled_at``, ``lightning: {payreq, status, settled_at}``), 404 when unknown;
- ``GET /v1/charges`` → the paid charges (*Read* permission);
- ``POST /v2/withdrawals`` ``{type: "ln", address: <bolt11>, amount?}`` → 201 a withdrawal
  (*Withdrawals* permission); ``GET /v1/withdrawal/{id}``, ``GET /v1/withdrawals`` (*Read*).

Keys carry OpenNode's permission levels: ``invoice`` (create and fetch charges), ``read`` (also
list charges and withdrawals), ``withdrawals`` (also pay). Faults and pay outcomes are those of
:mod:`tests.lightning.contract.harness`, plus ``wrong_shape`` (JSON of the wrong shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

import coincurve
from aiohttp import web

from boltgate.lightning import bolt11
from boltgate.lightning.base import LightningBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import FAULTS, Harness

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
B = TypeVar("B", bound=LightningBackend)
SLOW_SECONDS = 5.0
GRANTED = web.RequestKey("granted", frozenset)


@dataclass
class Seen:
    """A request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Signed:
    invoice: str
    payment_hash: str
    preimage: str
    expires_at: int


class Refusal(Exception):
    """Answer with this response instead (raised by handlers)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class CustodialFake:
    """An HTTP JSON API on 127.0.0.1 with API keys, faults and pay outcomes."""

    kind: ClassVar[str]
    scheme: ClassVar[str]
    permissions: ClassVar[frozenset[str]]  # all of them: what the harness key gets
    network: str = "regtest"
    fault: str = "ok"
    outcome: str = "settled"
    port: int = 0
    balance_msat: int = 10**11
    fee_msat: int = 0
    seen: list[Seen] = field(default_factory=list)
    keys: dict[str, frozenset[str]] = field(default_factory=dict)
    node_key: coincurve.PrivateKey = field(default_factory=coincurve.PrivateKey)

    def __post_init__(self) -> None:
        self._resume = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- what each API defines

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def error(self, status: int, code: str, message: str) -> web.Response:
        raise NotImplementedError

    def key_of(self, request: web.Request) -> str | None:
        raise NotImplementedError

    async def settle(self, payment_hash: str) -> None:
        raise NotImplementedError

    # -- running

    def add_key(self, *permissions: str) -> str:
        key = str(uuid.uuid4())
        self.keys[key] = frozenset(permissions or self.permissions)
        return key

    def url(self, key: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}?key={key}&tls=0&timeout=1"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        self.port = self._runner.addresses[-1][1]

    async def set_fault(self, name: str) -> None:
        assert name in (*FAULTS, "wrong_shape"), name
        if name == "refused" and self.fault != "refused":
            assert self._site is not None
            await self._site.stop()
        elif name != "refused" and self.fault == "refused":
            await self._listen()
        self.fault = name
        if name == "slow":
            self._resume.clear()
        else:
            self._resume.set()

    async def set_outcome(self, name: str) -> None:
        assert name in ("settled", "failed", "pending", "drop"), name
        self.outcome = name

    async def close(self) -> None:
        self._resume.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, **settings: Any) -> AsyncIterator[Any]:
        """A started fake of this API (stopped on exit)."""
        fake = cls(**settings)
        await fake.start()
        try:
            yield fake
        finally:
            await fake.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        if self.fault == "refused":  # a kept-alive connection: cut it
            self.cut(request)
        if self.fault == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resume.wait(), SLOW_SECONDS)
        if self.fault == "error5xx":
            return self.error(500, "INTERNAL_SERVER_ERROR", "Something went wrong")
        if self.fault == "garbage":
            return web.Response(
                status=200, text="<html><body>502 upstream</body></html>", content_type="text/html"
            )
        if self.fault == "wrong_shape":
            return web.json_response({"data": ["unexpected"]}, status=200)
        key = self.key_of(request)
        granted = self.keys.get(key) if key else None
        if granted is None:
            return self.error(401, "UNAUTHORIZED", "Unauthorized")
        request[GRANTED] = granted
        try:
            return await handler(request)
        except Refusal as refusal:
            return refusal.response

    def need(self, request: web.Request, permission: str) -> None:
        if permission not in request[GRANTED]:
            raise Refusal(self.error(403, "FORBIDDEN", "Forbidden: the API key lacks this permission"))

    def refuse(self, status: int, code: str, message: str) -> NoReturn:
        raise Refusal(self.error(status, code, message))

    @staticmethod
    def cut(request: web.Request) -> NoReturn:
        """Close the connection without an answer (the request did reach the fake)."""
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError

    # -- invoices

    def sign(
        self, amount_msat: int, *, description: str | None, description_hash: bytes | None, expiry: int
    ) -> Signed:
        if self.fault == "wrong_amount":
            amount_msat += 1_000
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        now = int(time.time())
        invoice = bolt11.encode(
            private_key=self.node_key,
            currency=bolt11.NETWORK_PREFIXES[self.network],
            payment_hash=payment_hash,
            payment_secret=secrets.token_bytes(32),
            amount_msat=amount_msat,
            timestamp=now,
            description=None if description_hash else (description or ""),
            description_hash=description_hash,
            expiry=expiry,
        )
        return Signed(invoice, payment_hash.hex(), preimage.hex(), now + expiry)

    def decode(self, request_invoice: Any) -> bolt11.Bolt11Invoice | None:
        if not isinstance(request_invoice, str):
            return None
        try:
            decoded = bolt11.decode(request_invoice)
        except bolt11.Bolt11Error:
            return None
        return decoded if decoded.network == self.network else None


def zero_amount_invoice(network: str = "regtest") -> str:
    """A real invoice of another node without an amount (the payer chooses it)."""
    return bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency=bolt11.NETWORK_PREFIXES[network],
        payment_hash=hashlib.sha256(secrets.token_bytes(32)).digest(),
        payment_secret=secrets.token_bytes(32),
        amount_msat=None,
        timestamp=int(time.time()),
        description="any amount",
    )


@contextlib.asynccontextmanager
async def backends(fake: CustodialFake, tmp_path: Path, kind_of: type[B]) -> AsyncIterator[Callable[..., B]]:
    """A maker of backends on ``fake``, each with a new key of the given permissions (all when
    none) or the given ``key=``; all are closed on exit."""
    opened: list[B] = []

    def make(*permissions: str, key: str | None = None) -> B:
        backend = open_backend(fake.url(key or fake.add_key(*permissions)), BackendEnv(data_dir=tmp_path))
        assert isinstance(backend, kind_of)
        opened.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in opened:
            await backend.close()


@contextlib.asynccontextmanager
async def custodial_harness(fake: CustodialFake, tmp_path: Path, **extra: Any) -> AsyncIterator[Harness]:
    """The contract harness of a custodial fake: a full key, a wrong one, faults and outcomes."""
    await fake.start()
    key, wrong_key = fake.add_key(), str(uuid.uuid4())
    env = BackendEnv(data_dir=tmp_path, network=fake.network)
    backend = open_backend(fake.url(key), env)
    opened: list[LightningBackend] = [backend]

    def wrong_credentials() -> LightningBackend:
        opened.append(open_backend(fake.url(wrong_key), env))
        return opened[-1]

    try:
        yield Harness(
            kind=fake.kind,
            backend=backend,
            settle=fake.settle,
            fault=fake.set_fault,
            faults=frozenset(FAULTS),
            wrong_credentials=wrong_credentials,
            pay_outcome=fake.set_outcome,
            # a custodial API returns no preimage: "settled" and "drop" need one (covered in
            # tests/lightning/test_<kind>.py without it)
            outcomes=frozenset({"failed", "pending"}),
            secrets=[key, wrong_key],
            network=fake.network,
            streams=False,
            **extra,
        )
    finally:
        for one in opened:
            await one.close()
        await fake.close()


# -- OpenNode


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix % 1 * 1000):03d}Z"


@dataclass
class Charge:
    id: str
    amount: int  # sats
    description: str
    ttl: int
    created_at: int
    signed: Signed
    status: str = "unpaid"
    settled_at: float | None = None

    def current(self) -> str:
        if self.status == "unpaid" and self.signed.expires_at <= time.time():
            return "expired"
        return self.status

    def v1(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "desc_hash": False,
            "created_at": self.created_at,
            "status": self.current(),
            "amount": self.amount,
            "callback_url": None,
            "success_url": None,
            "hosted_checkout_url": f"https://checkout.opennode.com/{self.id}",
            "order_id": None,
            "currency": "BTC",
            "source_fiat_value": 0,
            "fiat_value": 0,
            "auto_settle": False,
            "notif_email": None,
            "address": "bcrt1qfakeaddressfakeaddressfakeaddressfake",
            "metadata": {},
            "chain_invoice": {"address": "bcrt1qfakeaddressfakeaddressfakeaddressfake"},
            "ttl": self.ttl,
            "lightning_invoice": {"expires_at": self.signed.expires_at, "payreq": self.signed.invoice},
        }

    def v2(self) -> dict[str, Any]:
        status = self.current()
        return {
            "id": self.id,
            "description": self.description,
            "price": self.amount,
            "status": status,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.signed.expires_at),
            "fee": 0,
            "fiat_value": 0,
            "source_fiat_value": 0,
            "currency": "BTC",
            "auto_settle": False,
            "notes": None,
            "order_id": None,
            "onchain": [],
            "lightning": {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.id)),
                "status": status,
                "price": self.amount,
                "payreq": self.signed.invoice,
                "created_at": _iso(self.created_at),
                "expires_at": _iso(self.signed.expires_at),
                "settled_at": _iso(self.settled_at),
                "checkout_id": self.id,
            },
            "metadata": {},
            "address": "bcrt1qfakeaddressfakeaddressfakeaddressfake",
            "exchanged": False,
            "net_fiat_value": 0,
            "missing_amt": 0,
            "settled_at": _iso(self.settled_at),
            "payment_method": "lightning" if self.status == "paid" else None,
            "ttl": self.ttl,
            "desc_hash": False,
            "hosted_checkout_url": f"https://checkout.opennode.com/{self.id}",
            "customer_site_id": None,
        }


@dataclass
class FakeOpenNode(CustodialFake):
    kind: ClassVar[str] = "opennode"
    scheme: ClassVar[str] = "opennode"
    permissions: ClassVar[frozenset[str]] = frozenset({"invoice", "read", "withdrawals"})
    charges: dict[str, Charge] = field(default_factory=dict)
    withdrawals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/charges", self.create_charge),
            web.get("/v1/charges", self.list_charges),
            web.get("/v2/charge/{id}", self.charge_info),
            web.post("/v2/withdrawals", self.withdraw),
            web.get("/v1/withdrawal/{id}", self.withdrawal_info),
            web.get("/v1/withdrawals", self.list_withdrawals),
        ]

    def error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"success": False, "message": message}, status=status)

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("Authorization")

    async def create_charge(self, request: web.Request) -> web.Response:
        self.need(request, "invoice")
        body = await request.json()
        amount, ttl = body.get("amount"), body.get("ttl", 1440)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            self.refuse(400, "", "amount must be a positive number of satoshis")
        if not isinstance(ttl, int) or not 10 <= ttl <= 1440:
            self.refuse(400, "", "ttl must be between 10 and 1440 minutes")
        description = body.get("description") or ""
        signed = self.sign(amount * 1000, description=description, description_hash=None, expiry=ttl * 60)
        charge = Charge(str(uuid.uuid4()), amount, description, ttl, int(time.time()), signed)
        self.charges[charge.id] = charge
        return web.json_response({"data": charge.v1()}, status=201)

    async def charge_info(self, request: web.Request) -> web.Response:
        self.need(request, "invoice")
        charge = self.charges.get(request.match_info["id"])
        if charge is None:
            self.refuse(404, "", "Charge not found")
        return web.json_response({"data": charge.v2()})

    async def list_charges(self, request: web.Request) -> web.Response:
        self.need(request, "read")
        paid = [c.v1() for c in self.charges.values() if c.status == "paid"]
        return web.json_response({"data": paid})

    async def settle(self, payment_hash: str) -> None:
        for charge in self.charges.values():
            if charge.signed.payment_hash == payment_hash:
                assert charge.current() == "unpaid", charge.current()
                charge.status, charge.settled_at = "paid", time.time()
                return
        raise AssertionError(f"no charge with payment hash {payment_hash}")

    def expire(self, payment_hash: str) -> None:
        for charge in self.charges.values():
            if charge.signed.payment_hash == payment_hash:
                charge.status = "expired"

    async def withdraw(self, request: web.Request) -> web.Response:
        self.need(request, "withdrawals")
        body = await request.json()
        decoded = self.decode(body.get("address")) if body.get("type") == "ln" else None
        if decoded is None:
            self.refuse(400, "", "Invalid payment request")
        amount_msat = decoded.amount_msat or (body.get("amount") or 0) * 1000
        if not amount_msat:
            self.refuse(400, "", "amount is required for a zero amount invoice")
        if amount_msat + self.fee_msat > self.balance_msat:
            self.refuse(400, "", "Insufficient balance")
        status = {"settled": "confirmed", "drop": "confirmed", "failed": "error", "pending": "pending"}
        withdrawal: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": "ln",
            "amount": amount_msat // 1000,
            "reference": body["address"],
            "fee": self.fee_msat // 1000,
            "fiat_value": 0,
            "custom_id": None,
            "callback_url": None,
            "processed_at": int(time.time()) if self.outcome != "pending" else None,
            "status": status[self.outcome],
        }
        if self.outcome == "failed":
            withdrawal["error"] = "no_route"
        else:
            self.balance_msat -= amount_msat + self.fee_msat
        self.withdrawals[withdrawal["id"]] = withdrawal
        if self.outcome == "drop":
            self.cut(request)
        return web.json_response({"data": withdrawal}, status=201)

    async def withdrawal_info(self, request: web.Request) -> web.Response:
        self.need(request, "read")
        withdrawal = self.withdrawals.get(request.match_info["id"])
        if withdrawal is None:
            self.refuse(404, "", "Withdrawal not found")
        return web.json_response({"data": withdrawal})

    async def list_withdrawals(self, request: web.Request) -> web.Response:
        self.need(request, "read")
        return web.json_response({"data": list(self.withdrawals.values())})
