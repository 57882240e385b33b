"""A fake Core Lightning node: its JSON-RPC unix socket and CLNRest, in front of one node state.

Built from ElementsProject/lightning's ``doc/schemas/{getinfo,invoice,listinvoices,
waitanyinvoice,pay,listpays,checkrune}.json``, ``common/jsonrpc_errors.h`` and CLNRest's
``plugins/rest-plugin/src/{handlers,shared}.rs``:

- the socket takes JSON-RPC 2.0 requests (several per connection, as lightningd does) and answers
  each with one JSON object followed by a blank line; ``split_writes`` sends answers a few bytes
  at a time, as a busy socket may deliver them;
- CLNRest answers ``POST /v1/<method>`` with 201 and the result; a missing ``Rune`` header is 403
  ``{"code": 1501, "message": "Not authorized: Missing rune"}``, a rune the node did not make is
  401 with code 1501, a rune whose restrictions forbid the method is 401 with code 1502; an
  unknown method is 404 (-32601); any other error of the method is 500 with lightningd's error
  object, and 500 with only a ``message`` when lightningd cannot be reached (the ``error5xx``
  fault; on the socket that fault answers JSON-RPC's internal error, -32603).

Invoices are real BOLT11 signed with the fake node's own key; the ``payment_secret`` is derived
from the preimage as lightningd derives it. Runes are opaque random base64url strings with the
methods they allow (rune cryptography is lightningd's business, not the client's).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import coincurve
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from boltgate.lightning import bolt11
from boltgate.lightning.base import LightningBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import FAULTS, Harness
from tests.lightning.fakes.tls import server_context

SLOW = 2.5  # seconds: beyond the harness's timeout=1
_HEX64 = re.compile(r"[0-9a-f]{64}")
CLN_NETWORKS = {"mainnet": "bitcoin", "testnet": "testnet", "signet": "signet", "regtest": "regtest"}
INVOICE_PARAMS = {
    "amount_msat",
    "label",
    "description",
    "expiry",
    "fallbacks",
    "preimage",
    "exposeprivatechannels",
    "cltv",
    "deschashonly",
}
PAY_PARAMS = {
    "bolt11",
    "amount_msat",
    "label",
    "riskfactor",
    "maxfeepercent",
    "retry_for",
    "maxdelay",
    "exemptfee",
    "localinvreqid",
    "exclude",
    "maxfee",
    "description",
    "partial_msat",
}


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class Drop(Exception):
    """Cut the connection instead of answering."""


def _params(method: str, params: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise RpcError(-32602, f"{method}: params must be an object here")
    for name in params:
        if name not in known:
            raise RpcError(-32602, f"unknown parameter: {name}")
    return params


def _u64(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RpcError(-32602, f"{name}: should be an unsigned 64 bit integer: invalid token '{value}'")
    return value


def _hash_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RpcError(-32602, f"{name}: should be a 32 byte hex value: invalid token '{value}'")
    return value


def clnrest_certs(directory: Path, rest_host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """CLNRest's certificates as its ``certs.rs`` makes them: a CA (``ca.pem``) and a server
    certificate it signs (``server.pem``), P-256 keys; the SAN of the server certificate names the
    ``clnrest-host`` address. Returns (ca.pem, server.pem, server-key.pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(n) for n in ("cln", "localhost")]

    def build(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cln Root REST CA")])
    ca = (
        build("cln Root REST CA", ca_key, ca_name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        build("cln rest server", server_key, ca_name)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([*names, x509.IPAddress(ipaddress.ip_address(rest_host))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def invoice_secret(preimage: bytes) -> bytes:
    """lightningd's payment_secret: SHA-256 of the preimage with its first bit flipped."""
    return hashlib.sha256(bytes([preimage[0] ^ 1]) + preimage[1:]).digest()


class FakeCln:
    def __init__(self, directory: Path, *, network: str = "regtest", tls: bool = True) -> None:
        self.directory = directory
        self.socket_path = str(directory / "lightning-rpc")
        self.network = network
        self.key = coincurve.PrivateKey()
        self.pubkey = self.key.public_key.format(compressed=True).hex()
        self.invoices: list[dict[str, Any]] = []
        self.pays: list[dict[str, Any]] = []
        self.pay_index = 0
        self.created_index = 0
        self.fault = "ok"
        self.outcome = "settled"
        self.split_writes = False
        self.preimages: dict[str, str] = {}  # payment hash -> preimage of other nodes' invoices
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (transport, method, params)
        self.runes: dict[str, frozenset[str] | None] = {}
        self.rune = self.make_rune()
        self.port = 0
        self.tls = tls
        self.cert_path: Path | None = None  # what an operator pins: CLNRest's ca.pem
        self._ssl = None
        if tls:
            self.cert_path, server_pem, server_key = clnrest_certs(directory / "regtest")
            self._ssl = server_context(server_pem, server_key)
        self._changed = asyncio.Event()
        self._unix: asyncio.Server | None = None
        self._unix_writers: set[asyncio.StreamWriter] = set()
        self._http_transports: set[asyncio.BaseTransport] = set()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- lifecycle and faults

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/{method}", self._http_rpc)
        # a client that goes away cancels its handler (a long-polling waitanyinvoice), as in CLNRest
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        self._unix = await asyncio.start_unix_server(self._serve_unix, path=self.socket_path)
        assert self._runner is not None
        self._site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=self._ssl, reuse_address=True
        )
        await self._site.start()
        server = self._site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _unlisten(self) -> None:
        if self._unix is not None:
            self._unix.close()
            self._unix = None
        for writer in list(self._unix_writers):
            writer.transport.abort()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        for transport in list(self._http_transports):
            transport.abort()

    async def stop(self) -> None:
        await self._unlisten()
        if self._runner is not None:
            await self._runner.cleanup()

    async def set_fault(self, name: str) -> None:
        listening = self._unix is not None
        if name == "refused" and listening:
            await self._unlisten()
        elif name != "refused" and not listening:
            await self._listen()
        self.fault = name

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def make_rune(self, methods: set[str] | None = None) -> str:
        """A rune of this node allowing ``methods`` (every method when None)."""
        rune = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
        self.runes[rune] = frozenset(methods) if methods is not None else None
        return rune

    # -- what happens on the network

    def settle(self, payment_hash: str, amount_msat: int | None = None) -> dict[str, Any]:
        """A customer pays one of this node's invoices."""
        invoice = next(i for i in self.invoices if i["payment_hash"] == payment_hash)
        assert invoice["status"] == "unpaid" and invoice["expires_at"] > time.time()
        self.pay_index += 1
        invoice.update(
            status="paid",
            pay_index=self.pay_index,
            amount_received_msat=amount_msat or invoice["amount_msat"],
            paid_at=int(time.time()),
            updated_index=self.pay_index,
        )
        self._changed.set()
        self._changed = asyncio.Event()
        return invoice

    def learn(self, preimage: str) -> None:
        """The preimage of another node's invoice, released when this node pays it."""
        self.preimages[hashlib.sha256(bytes.fromhex(preimage)).hexdigest()] = preimage

    # -- the methods

    async def dispatch(self, method: str, params: Any) -> dict[str, Any]:
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            raise RpcError(-32601, f"Unknown command '{method}'")
        result: dict[str, Any] = await handler(params)
        return result

    async def _m_getinfo(self, params: Any) -> dict[str, Any]:
        _params("getinfo", params, set())
        return {
            "id": self.pubkey,
            "alias": "FAKECLN",
            "color": "02aabb",
            "num_peers": 0,
            "num_pending_channels": 0,
            "num_active_channels": 0,
            "num_inactive_channels": 0,
            "address": [],
            "binding": [{"type": "ipv4", "address": "127.0.0.1", "port": 9735}],
            "version": "v25.02",
            "blockheight": 110,
            "network": CLN_NETWORKS[self.network],
            "fees_collected_msat": 0,
            "lightning-dir": f"{self.directory}/{CLN_NETWORKS[self.network]}",
            "our_features": {
                "init": "08a0000a8a5961",
                "node": "88a0000a8a5961",
                "channel": "",
                "invoice": "02000002024100",
            },
        }

    async def _m_invoice(self, params: Any) -> dict[str, Any]:
        p = _params("invoice", params, INVOICE_PARAMS)
        for name in ("amount_msat", "label", "description"):
            if name not in p:
                raise RpcError(-32602, f"missing required parameter: {name}")
        amount = p["amount_msat"]
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise RpcError(
                -32602, f"amount_msat|msatoshi: should be positive msat or 'any': invalid token '{amount}'"
            )
        label = str(p["label"])
        if any(i["label"] == label for i in self.invoices):
            raise RpcError(900, "Duplicate label")
        description = p["description"]
        if not isinstance(description, str):
            raise RpcError(-32602, "description: should be a string")
        expiry = _u64(p, "expiry", 604800)
        assert expiry is not None
        hashed = p.get("deschashonly", False) is True
        if len(description.encode()) >= 640 and not hashed:  # BOLT11_FIELD_BYTE_LIMIT
            raise RpcError(-1, "Descriptions greater than 639 bytes not yet supported")
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        now = int(time.time())
        self.created_index += 1
        signed_amount = amount + 1000 if self.fault == "wrong_amount" else amount
        invoice = bolt11.encode(
            private_key=self.key,
            currency=bolt11.NETWORK_PREFIXES[self.network],
            payment_hash=payment_hash,
            payment_secret=invoice_secret(preimage),
            amount_msat=signed_amount,
            timestamp=now,
            description=None if hashed else description,
            description_hash=hashlib.sha256(description.encode()).digest() if hashed else None,
            expiry=expiry,
            min_final_cltv_expiry=18,
        )
        self.invoices.append(
            {
                "label": label,
                "bolt11": invoice,
                "payment_hash": payment_hash.hex(),
                "amount_msat": amount,
                "status": "unpaid",
                "description": description,
                "expires_at": now + expiry,
                "created_index": self.created_index,
                "payment_preimage": preimage.hex(),
            }
        )
        return {
            "payment_hash": payment_hash.hex(),
            "expires_at": now + expiry,
            "bolt11": invoice,
            "payment_secret": invoice_secret(preimage).hex(),
            "created_index": self.created_index,
            "warning_capacity": "Insufficient incoming channel capacity to pay invoice",
        }

    @staticmethod
    def _listed(invoice: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in invoice.items() if k != "payment_preimage"}
        if out["status"] == "unpaid" and out["expires_at"] <= time.time():
            out["status"] = "expired"
        if out["status"] == "paid":
            out["payment_preimage"] = invoice["payment_preimage"]
        return out

    async def _m_listinvoices(self, params: Any) -> dict[str, Any]:
        p = _params(
            "listinvoices",
            params,
            {"label", "invstring", "payment_hash", "offer_id", "index", "start", "limit"},
        )
        given = [
            name for name in ("label", "invstring", "payment_hash", "offer_id") if p.get(name) is not None
        ]
        if len(given) > 1:
            raise RpcError(
                -32602, "Can only specify one of {label}, {invstring}, {payment_hash} or {offer_id}"
            )
        payment_hash = _hash_param(p, "payment_hash")
        found = [
            self._listed(i)
            for i in self.invoices
            if (payment_hash is None or i["payment_hash"] == payment_hash)
            and (p.get("label") is None or i["label"] == str(p["label"]))
            and (p.get("invstring") is None or i["bolt11"] == p["invstring"])
            and p.get("offer_id") is None
        ]
        return {"invoices": found}

    async def _m_waitanyinvoice(self, params: Any) -> dict[str, Any]:
        p = _params("waitanyinvoice", params, {"lastpay_index", "timeout"})
        after = _u64(p, "lastpay_index", 0)
        timeout = _u64(p, "timeout")
        assert after is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            paid = [i for i in self.invoices if i.get("pay_index", 0) > after]
            if paid:
                return self._listed(min(paid, key=lambda i: i["pay_index"]))
            changed = self._changed
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise RpcError(904, "Timed out while waiting for invoice to be paid")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    async def _m_pay(self, params: Any) -> dict[str, Any]:
        p = _params("pay", params, PAY_PARAMS)
        if "bolt11" not in p:
            raise RpcError(-32602, "missing required parameter: bolt11")
        if "maxfee" in p and ("maxfeepercent" in p or "exemptfee" in p):
            raise RpcError(-32602, "If you specify maxfee, cannot specify maxfeepercent or exemptfee.")
        try:
            decoded = bolt11.decode(p["bolt11"])
        except bolt11.Bolt11Error as exc:
            raise RpcError(-32602, f"Invalid bolt11: {exc}") from None
        if decoded.currency != bolt11.NETWORK_PREFIXES[self.network]:
            raise RpcError(
                -32602, f"Invalid bolt11: Prefix {decoded.currency} is not for {CLN_NETWORKS[self.network]}"
            )
        payment_hash = decoded.payment_hash.hex()
        earlier = [x for x in self.pays if x["payment_hash"] == payment_hash]
        if any(x["status"] == "complete" for x in earlier):
            done = next(x for x in earlier if x["status"] == "complete")
            return self._pay_result(done)
        amount = decoded.amount_msat or p.get("amount_msat")
        fee = min(3, p.get("maxfee", 3))
        entry: dict[str, Any] = {
            "created_index": len(self.pays) + 1,
            "payment_hash": payment_hash,
            "status": "pending",
            "destination": decoded.payee.hex(),
            "created_at": int(time.time()),
            "bolt11": p["bolt11"],
            "amount_msat": amount,
            "amount_sent_msat": amount + fee,
        }
        self.pays.append(entry)
        outcome = self.outcome
        preimage = self.preimages.get(payment_hash)
        if outcome == "pending":
            raise RpcError(200, "Payment is pending with full amount already commited")
        if outcome == "failed" or preimage is None:
            entry["status"] = "failed"
            raise RpcError(210, "Ran out of routes to try after 1 attempt: see `paystatus`", {"attempts": []})
        entry.update(status="complete", preimage=preimage, completed_at=int(time.time()))
        if outcome == "drop":
            raise Drop
        return self._pay_result(entry)

    @staticmethod
    def _pay_result(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "destination": entry["destination"],
            "payment_hash": entry["payment_hash"],
            "created_at": entry["created_at"],
            "parts": 1,
            "amount_msat": entry["amount_msat"],
            "amount_sent_msat": entry["amount_sent_msat"],
            "payment_preimage": entry["preimage"],
            "status": "complete",
        }

    async def _m_listpays(self, params: Any) -> dict[str, Any]:
        p = _params("listpays", params, {"bolt11", "payment_hash", "status", "index", "start", "limit"})
        payment_hash = _hash_param(p, "payment_hash")
        found = [
            dict(x)
            for x in self.pays
            if (payment_hash is None or x["payment_hash"] == payment_hash)
            and (p.get("bolt11") is None or x["bolt11"] == p["bolt11"])
            and (p.get("status") is None or x["status"] == p["status"])
        ]
        for entry in found:
            if entry["status"] != "complete":
                entry.pop("amount_msat", None)
        return {"pays": found}

    # -- the unix socket

    async def _serve_unix(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._unix_writers.add(writer)
        decoder = json.JSONDecoder()
        text = ""
        tasks: set[asyncio.Task[None]] = set()
        try:
            while chunk := await reader.read(65536):
                text += chunk.decode()
                while text.strip():
                    text = text.lstrip()
                    try:
                        request, end = decoder.raw_decode(text)
                    except ValueError:
                        break
                    text = text[end:]
                    task = asyncio.create_task(self._answer_unix(writer, request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        except (ConnectionError, OSError):
            pass
        finally:
            self._unix_writers.discard(writer)
            writer.close()

    async def _answer_unix(self, writer: asyncio.StreamWriter, request: Any) -> None:
        request_id = request.get("id") if isinstance(request, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        params = request.get("params", {}) if isinstance(request, dict) else None
        self.calls.append(("unix", str(method), params if isinstance(params, dict) else {}))
        if self.fault == "slow":
            await asyncio.sleep(SLOW)
        if self.fault == "garbage":
            await self._write(writer, b"<html><body>502 Bad Gateway</body></html>\n\n")
            return
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if self.fault == "error5xx":
            message["error"] = {"code": -32603, "message": "Internal error"}
        elif not isinstance(method, str):
            message["error"] = {"code": -32600, "message": "Expected string for method"}
        else:
            try:
                message["result"] = await self.dispatch(method, params)
            except RpcError as exc:
                message["error"] = exc.obj()
            except Drop:
                writer.transport.abort()
                return
        await self._write(writer, json.dumps(message, ensure_ascii=False).encode() + b"\n\n")

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            if not self.split_writes:
                writer.write(data)
                await writer.drain()
                return
            for start in range(0, len(data), 7):  # small pieces: the client sees many partial reads
                writer.write(data[start : start + 7])
                await writer.drain()
                await asyncio.sleep(0.002)  # long enough that each arrives in a read of its own

    # -- CLNRest

    async def _http_rpc(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            self._http_transports.add(transport)
        try:
            return await self._http_answer(request)
        except Drop:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable() from None  # never reaches the client: the connection is gone
        finally:
            if transport is not None:
                self._http_transports.discard(transport)

    async def _http_answer(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await request.read()
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            params = {}
        self.calls.append(("rest", method, params if isinstance(params, dict) else {}))
        if self.fault == "slow":
            await asyncio.sleep(SLOW)
        if self.fault == "garbage":
            return web.Response(status=201, text="<html><body>oops</body></html>", content_type="text/html")
        if self.fault == "error5xx":
            return web.json_response(
                {"code": None, "message": "No such file or directory (os error 2)"}, status=500
            )
        rune = request.headers.get("Rune")
        if rune is None:
            return web.json_response({"code": 1501, "message": "Not authorized: Missing rune"}, status=403)
        if rune not in self.runes:
            return web.json_response(
                {"code": 1501, "message": "Not authorized: Not derived from master"}, status=401
            )
        allowed = self.runes[rune]
        if allowed is not None and method not in allowed:
            said = f"Not permitted: method is not equal to {sorted(allowed)[0]}"
            return web.json_response({"code": 1502, "message": said}, status=401)
        try:
            result = await self.dispatch(method, params)
        except RpcError as exc:
            return web.json_response(exc.obj(), status=404 if exc.code == -32601 else 500)
        return web.Response(
            status=201, text=json.dumps(result, ensure_ascii=False), content_type="application/json"
        )


# -- the contract harnesses (h_cln_rpc.py, h_clnrest.py)


def learn_from_caller(fake: FakeCln) -> None:
    """Teach the fake the preimages of the contract's foreign invoices (``harness.PREIMAGES``):
    a node that pays learns the preimage from the payee, which here is the test itself."""
    from tests.lightning.contract.harness import PREIMAGES

    for preimage in PREIMAGES.values():
        fake.learn(preimage)


@contextlib.asynccontextmanager
async def cln_harness(kind: str, tmp_path: Path) -> AsyncIterator[Harness]:
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="cln-"))  # a unix socket path is short
    fake = FakeCln(directory, tls=kind == "clnrest")
    await fake.start()
    env = BackendEnv(data_dir=tmp_path)
    if kind == "cln-rpc":
        url = f"cln-rpc://{fake.socket_path}?timeout=1"
        wrong = None
        secrets_of: list[str] = []
    else:
        url = f"clnrest://127.0.0.1:{fake.port}?rune={fake.rune}&cert={fake.cert_path}&timeout=1"
        stranger = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
        wrong_url = url.replace(fake.rune, stranger)
        secrets_of = [fake.rune, stranger]

        def wrong() -> LightningBackend:
            return open_backend(wrong_url, env)

    backend = open_backend(url, env)

    async def settle(payment_hash: str) -> None:
        fake.settle(payment_hash)

    async def pay_outcome(outcome: str) -> None:
        learn_from_caller(fake)
        fake.outcome = outcome

    try:
        yield Harness(
            kind=kind,
            backend=backend,
            settle=settle,
            fault=fake.set_fault,
            faults=frozenset(FAULTS),
            wrong_credentials=wrong,
            pay_outcome=pay_outcome,
            secrets=secrets_of,
            lacks={
                "description_hash": "Core Lightning's invoice commits to the hash of a description it is"
                " given (deschashonly); an invoice for a bare description hash cannot be made"
            },
        )
    finally:
        await backend.close()
        await fake.stop()
        shutil.rmtree(directory, ignore_errors=True)
