"""A NIP-47 wallet service, connected to relays as a client of its own (nostr-protocol/nips ``47.md``).

It publishes its info event (kind 13194: methods in ``content``, ``["encryption", "nip44_v2"]``,
``["notifications", "payment_received payment_sent"]``), subscribes to requests (kind 23194,
``#p`` = its key) on every relay, answers each request once (kind 23195, tags ``p`` and ``e``,
NIP-44 v2) on every relay, and sends ``payment_received`` notifications (kind 23197). Requests
past their ``expiration`` tag are ignored; unknown client keys get ``UNAUTHORIZED``, methods a
connection may not use ``RESTRICTED``, unknown methods ``NOT_IMPLEMENTED``. Invoices are real
BOLT11 invoices signed with a node key of its own. It reconnects (and republishes its info)
whenever a relay comes back.

Faults (``mode``): ``error5xx`` answers ``INTERNAL`` (``error:<CODE>`` any NIP-47 code); ``slow`` answers after :data:`SLOW` seconds;
``garbage`` answers with content that is not a NIP-44 payload; ``garbage_json`` with a payload
that decrypts to something that is not a NIP-47 response; ``wrong_amount`` signs invoices for
1 sat more than asked. ``decoys`` lists answers sent before the real one: ``forged`` (the wallet's
key, a broken signature), ``impostor`` (signed by another key), ``other_request`` (answering
another request id); each says ``RESTRICTED``, so a client taking one would fail.

Payments (``pay_outcome``, for the next ``pay_invoice``): ``settled`` (the preimage must be
known: :meth:`learn`, as a payee reveals it), ``failed`` (``PAYMENT_FAILED``), ``pending`` and
``drop`` (recorded pending / settled, but no answer is ever sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import coincurve
from websockets.asyncio.client import ClientConnection, connect

from boltgate.agent.nostr import Event, NostrError, parse_event, pubkey_of, sign_event
from boltgate.lightning import bolt11
from boltgate.nostr import nip44

SLOW = 2.5
FEE_MSAT = 500
ALL_METHODS = frozenset(
    {
        "pay_invoice",
        "make_invoice",
        "lookup_invoice",
        "list_transactions",
        "get_balance",
        "get_info",
        "notifications",
    }
)


class FakeWallet:
    def __init__(
        self,
        relays: list[str],
        *,
        network: str = "regtest",
        methods: frozenset[str] = ALL_METHODS,
        encryption: str | None = "nip44_v2",
        notifications: bool = True,
    ) -> None:
        self.relays = list(relays)
        self.network = network
        self.methods = methods
        self.encryption = encryption
        self.notifications = notifications
        self.secret = secrets.token_bytes(32)
        self.pubkey = pubkey_of(self.secret)
        self.node_key = coincurve.PrivateKey()
        self.clients: dict[str, frozenset[str]] = {}
        self.mode = "ok"
        self.decoys: list[str] = []
        self.pay_outcome = "settled"
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.preimages: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (method, params) in arrival order
        self._connections: dict[str, ClientConnection] = {}
        self._subscribed: dict[str, asyncio.Event] = {url: asyncio.Event() for url in self.relays}
        self._handled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    # -- set-up

    def connect_client(self, methods: frozenset[str] | None = None) -> str:
        """A new connection's client secret (hex), allowed ``methods`` (all by default)."""
        secret = secrets.token_bytes(32)
        self.clients[pubkey_of(secret)] = self.methods if methods is None else methods
        return secret.hex()

    def url(self, client_secret: str, *, relays: list[str] | None = None, **extra: Any) -> str:
        query = [("relay", relay) for relay in relays or self.relays]
        query += [("secret", client_secret), *((k, str(v)) for k, v in extra.items())]
        return f"nostr+walletconnect://{self.pubkey}?{urlencode(query)}"

    def learn(self, preimage: str) -> None:
        """The preimage of another node's invoice (released to whoever pays it)."""
        self.preimages[hashlib.sha256(bytes.fromhex(preimage)).hexdigest()] = preimage

    async def start(self) -> None:
        self._running = True
        for url in self.relays:
            self._spawn(self._stay_connected(url))

    async def stop(self) -> None:
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def connected(self, *urls: str, seconds: float = 5.0) -> None:
        """Until the wallet listens for requests on ``urls`` (all its relays by default)."""
        async with asyncio.timeout(seconds):
            for url in urls or self.relays:
                await self._subscribed[url].wait()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- relays

    async def _stay_connected(self, url: str) -> None:
        while self._running:
            try:
                async with connect(url, proxy=None, ping_interval=None, open_timeout=2) as ws:
                    self._connections[url] = ws
                    await self._send(ws, ["EVENT", self._info().to_json()])
                    since = int(time.time()) - 10
                    await self._send(
                        ws, ["REQ", "requests", {"kinds": [23194], "#p": [self.pubkey], "since": since}]
                    )
                    async for raw in ws:
                        self._receive(url, raw)
            except Exception:  # the relay went away (or refused us): try again shortly
                pass
            finally:
                self._connections.pop(url, None)
                self._subscribed[url].clear()
            await asyncio.sleep(0.05)

    async def _send(self, ws: ClientConnection, message: list[Any]) -> None:
        await ws.send(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def _receive(self, url: str, raw: Any) -> None:
        message = json.loads(raw)
        if message[0] == "EOSE" and message[1] == "requests":
            self._subscribed[url].set()
        elif message[0] == "EVENT" and message[1] == "requests":
            try:
                event = parse_event(message[2])
            except NostrError:
                return
            if event.id not in self._handled:
                self._handled.add(event.id)
                self._spawn(self._answer(event))

    async def publish(self, event: Event) -> None:
        for ws in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await self._send(ws, ["EVENT", event.to_json()])

    def _info(self) -> Event:
        tags = []
        if self.encryption is not None:
            tags.append(["encryption", self.encryption])
        if self.notifications:
            tags.append(["notifications", "payment_received payment_sent"])
        return sign_event(self.secret, int(time.time()), 13194, tags, " ".join(sorted(self.methods)))

    # -- requests

    def _sealed(self, client: str, body: dict[str, Any], *, key: bytes | None = None) -> str:
        return nip44.encrypt(json.dumps(body), nip44.conversation_key(key or self.secret, client))

    def _response(
        self, request: Event, content: str, *, key: bytes | None = None, answer_to: str = ""
    ) -> Event:
        tags = [["p", request.pubkey], ["e", answer_to or request.id]]
        return sign_event(key or self.secret, int(time.time()), 23195, tags, content)

    async def _answer(self, request: Event) -> None:
        expiration = [t[1] for t in request.tags if t[0] == "expiration" and len(t) > 1]
        if expiration and int(expiration[0]) < time.time():
            return
        if ["encryption", "nip44_v2"] not in [list(t) for t in request.tags]:
            return  # a NIP-04 request: this wallet speaks only NIP-44
        client = request.pubkey
        try:
            body = json.loads(nip44.decrypt(request.content, nip44.conversation_key(self.secret, client)))
            method, params = body["method"], body.get("params") or {}
        except (nip44.Nip44Error, ValueError, KeyError, TypeError):
            return
        self.requests.append((method, params))
        if self.mode == "slow":
            await asyncio.sleep(SLOW)
        if client not in self.clients:
            reply: dict[str, Any] | None = _error(
                method, "UNAUTHORIZED", "no wallet is connected to this key"
            )
        elif self.mode == "error5xx":
            reply = _error(method, "INTERNAL", "the wallet's node is not answering")
        elif self.mode.startswith("error:"):
            reply = _error(method, self.mode.removeprefix("error:"), "as the test asked")
        elif method not in self.methods:
            reply = _error(method, "NOT_IMPLEMENTED", f"{method} is not implemented")
        elif method not in self.clients[client]:
            reply = _error(method, "RESTRICTED", f"this connection may not use {method}")
        else:
            reply = getattr(self, f"_{method}")(params)
        if reply is None:
            return  # a payment still in flight, or one whose answer is lost
        for decoy in self.decoys:
            await self.publish(self._decoy(decoy, request, method))
        if self.mode == "garbage":
            content = "not a NIP-44 payload at all"
        elif self.mode == "garbage_json":
            content = self._sealed(client, {"result_type": method, "outcome": "fine"})
        else:
            content = self._sealed(client, {"result_type": method, "error": None, **reply})
        await self.publish(self._response(request, content))

    def _decoy(self, decoy: str, request: Event, method: str) -> Event:
        refusal = _error(method, "RESTRICTED", f"a {decoy} answer")
        if decoy == "impostor":
            impostor = secrets.token_bytes(32)
            return self._response(request, self._sealed(request.pubkey, refusal, key=impostor), key=impostor)
        if decoy == "other_request":
            return self._response(
                request, self._sealed(request.pubkey, refusal), answer_to=secrets.token_hex(32)
            )
        assert decoy == "forged"
        genuine = self._response(request, self._sealed(request.pubkey, refusal))
        broken = bytes.fromhex(genuine.sig)
        return Event(genuine.id, genuine.pubkey, genuine.created_at, genuine.kind, genuine.tags, genuine.content,
                     (bytes([broken[0] ^ 1]) + broken[1:]).hex())  # fmt: skip

    async def settle(self, payment_hash: str) -> None:
        """A customer pays one of the wallet's invoices: settled, then notified."""
        invoice = self.invoices[payment_hash]
        invoice.update(state="settled", settled_at=int(time.time()))
        if self.notifications:
            await self.notify(payment_hash)

    async def notify(self, payment_hash: str) -> None:
        """A ``payment_received`` notification about the invoice, whatever its state."""
        invoice = self.invoices[payment_hash]
        notification = {"notification_type": "payment_received", "notification": _public(invoice)}
        for client, methods in self.clients.items():
            if "notifications" in methods:
                content = self._sealed(client, notification)
                await self.publish(sign_event(self.secret, int(time.time()), 23197, [["p", client]], content))

    # -- methods (each returns {"result": …}, an error, or None for no answer)

    def _make_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = params.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            return _error("make_invoice", "OTHER", "amount (msat) is required")
        signed = amount + 1000 if self.mode == "wrong_amount" else amount
        description_hash = params.get("description_hash")
        description = params.get("description")
        expiry = int(params.get("expiry") or 86400)
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        now = int(time.time())
        invoice = bolt11.encode(
            private_key=self.node_key,
            currency=bolt11.NETWORK_PREFIXES[self.network],
            payment_hash=bytes.fromhex(payment_hash),
            payment_secret=secrets.token_bytes(32),
            amount_msat=signed,
            timestamp=now,
            description=None if description_hash else (description or ""),
            description_hash=bytes.fromhex(description_hash) if description_hash else None,
            expiry=expiry,
        )
        self.invoices[payment_hash] = {
            "type": "incoming",
            "state": "pending",
            "invoice": invoice,
            "description": description,
            "description_hash": description_hash,
            "preimage": preimage.hex(),
            "payment_hash": payment_hash,
            "amount": signed,
            "fees_paid": 0,
            "created_at": now,
            "expires_at": now + expiry,
            "settled_at": None,
            "metadata": {},
        }
        return {"result": _public(self.invoices[payment_hash])}

    def _lookup_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        payment_hash = params.get("payment_hash")
        if payment_hash is None and isinstance(params.get("invoice"), str):
            payment_hash = bolt11.decode(params["invoice"]).payment_hash.hex()
        found = self.invoices.get(payment_hash) or self.payments.get(payment_hash)  # type: ignore[arg-type]
        if found is None:
            return _error("lookup_invoice", "NOT_FOUND", "invoice not found")
        return {"result": _public(found)}

    def _list_transactions(self, params: dict[str, Any]) -> dict[str, Any]:
        since, until = params.get("from", 0), params.get("until", int(time.time()))
        kind, unpaid = params.get("type"), params.get("unpaid", False)
        found = [
            _public(tx)
            for tx in [*self.invoices.values(), *self.payments.values()]
            if since <= tx["created_at"] <= until
            and (kind is None or tx["type"] == kind)
            and (unpaid or tx["state"] == "settled")
        ]
        found.sort(key=lambda tx: tx["created_at"], reverse=True)
        offset, limit = params.get("offset", 0), params.get("limit", len(found))
        return {"result": {"transactions": found[offset : offset + limit], "total_count": len(found)}}

    def _pay_invoice(self, params: dict[str, Any]) -> dict[str, Any] | None:
        outcome, self.pay_outcome = self.pay_outcome, "settled"
        try:
            decoded = bolt11.decode(params["invoice"])
        except (KeyError, bolt11.Bolt11Error):
            return _error("pay_invoice", "OTHER", "not a valid invoice")
        payment_hash = decoded.payment_hash.hex()
        preimage = self.preimages.get(payment_hash)
        now = int(time.time())
        record = {
            "type": "outgoing",
            "state": "pending",
            "invoice": params["invoice"],
            "payment_hash": payment_hash,
            "amount": decoded.amount_msat or params.get("amount"),
            "fees_paid": 0,
            "created_at": now,
            "expires_at": decoded.expires_at,
            "settled_at": None,
        }
        self.payments[payment_hash] = record
        if outcome == "failed" or (preimage is None and outcome != "pending"):
            record["state"] = "failed"
            return _error("pay_invoice", "PAYMENT_FAILED", "no route found")
        if outcome == "pending":
            return None
        record.update(state="settled", preimage=preimage, fees_paid=FEE_MSAT, settled_at=now)
        return None if outcome == "drop" else {"result": {"preimage": preimage, "fees_paid": FEE_MSAT}}

    def _get_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "result": {
                "alias": "fake nwc wallet",
                "color": "#3399ff",
                "pubkey": self.node_key.public_key.format().hex(),
                "network": self.network,
                "block_height": 840000,
                "block_hash": "00" * 32,
                "methods": sorted(self.methods),
                "notifications": ["payment_received", "payment_sent"] if self.notifications else [],
            }
        }

    def _get_balance(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"result": {"balance": 21_000_000}}


def _error(method: str, code: str, message: str) -> dict[str, Any]:
    return {"result_type": method, "error": {"code": code, "message": message}, "result": None}


def _public(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction as NIP-47 shows it: the preimage only once settled, no empty fields."""
    shown = {k: v for k, v in tx.items() if v is not None}
    if tx["state"] != "settled":
        shown.pop("preimage", None)
    return shown
