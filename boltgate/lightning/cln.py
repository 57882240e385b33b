"""Core Lightning, through its JSON-RPC unix socket (``cln-rpc://``) or CLNRest (``clnrest://``).

=================================  =============================================================
``cln-rpc:///path/lightning-rpc``  the node's unix socket (``<lightning-dir>/<network>/lightning-rpc``)
``clnrest://host:3010?rune=…``     CLNRest (v23.08+); ``cert=`` pins its certificate (path, PEM or
                                   base64url DER), ``tls=0`` for plain http
=================================  =============================================================

Both accept ``timeout=`` (seconds per request, 15 by default). The methods used are the same on
both (schemas in ``doc/schemas/*.json`` of ElementsProject/lightning); the transports are in
:mod:`boltgate.lightning.cln_rpc`:

- ``invoice`` (``amount_msat``, a unique ``label`` ``boltgate-<random>``, ``description``,
  ``expiry`` always given: CLN's default is a week). ``deschashonly`` commits the invoice to
  the SHA-256 of the description instead of the text (used for a description hash, and for a
  description longer than an invoice can carry); CLN needs the description itself for that.
  An invoice committing to a bare hash cannot be made: ``invoice`` hashes the description it is
  given and ``createinvoice`` refuses an invoice without a description ("Missing description in
  invoice"), so ``description_hash`` without its description is :class:`LightningUnsupported`.
- ``listinvoices`` by ``payment_hash`` (``unpaid``/``paid``/``expired``).
- ``waitanyinvoice`` (``lastpay_index``, ``timeout``): settlements, numbered by ``pay_index``, so
  the stream resumes exactly (``resumable``). Each call long-polls for at most ``WAIT`` seconds;
  the timeout error (904) just starts the next call, and a connection that dies is noticed by the
  read timeout at the latest.
- ``pay`` (``bolt11``, ``maxfee``, ``retry_for``) and ``listpays`` by ``payment_hash``.
- ``getinfo`` for the node's id, alias and network.

The unix socket is spoken by an asyncio client of our own rather than pyln-client, whose blocking
socket reads would stall the event loop during each ``waitanyinvoice`` long poll (see
:mod:`boltgate.lightning.cln_rpc`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from boltgate.lightning import verify
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
    network_named,
)
from boltgate.lightning.cln_rpc import RUNE_CODES, ClnRpcError, NotSent, RestRpc, Rpc, UnixRpc, call
from boltgate.lightning.connection import Connection, ConnectionUrlError
from boltgate.lightning.http import field
from boltgate.lightning.paying import invoice_to_pay
from boltgate.lightning.registry import BackendEnv

WAIT = 30  # seconds one waitanyinvoice call long-polls
PAY_RETRY_FOR = 60  # seconds pay keeps trying routes (CLN's default, given explicitly)
MAX_DESCRIPTION = 639  # bytes a BOLT11 d field holds (lightningd refuses longer ones in clear)
WAIT_TIMED_OUT = 904  # waitanyinvoice: the timeout was reached without a payment
# pay's definitive failures (doc/schemas/pay.json): nothing is in flight and nothing will be
PAY_FAILED = frozenset(
    {
        -32602,  # invalid parameters, e.g. an invoice of another network
        203,  # permanent failure at the destination
        205,  # unable to find a route
        206,  # route too expensive (maxfee)
        207,  # invoice expired
        210,  # timed out without a payment in progress
    }
)
_RUNE = re.compile(r"[A-Za-z0-9_\-]+={0,2}")
_MSAT = re.compile(r"(\d+)msat")
_PARAMS = {"cln-rpc": {"timeout"}, "clnrest": {"rune", "cert", "tls", "timeout"}}


def _msat(kind: str, body: dict[str, Any], name: str) -> int:
    """An amount field: an integer of msat (or the ``"<n>msat"`` string older nodes write)."""
    value = body.get(name)
    if isinstance(value, str) and (match := _MSAT.fullmatch(value)):
        return int(match.group(1))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise LightningProtocolError(f"answered without a valid {name!r}", backend=kind)


def _time(kind: str, body: dict[str, Any], name: str) -> datetime:
    value = field(kind, body, name, (int, float))
    if value < 0:
        raise LightningProtocolError(f"answered without a valid {name!r}", backend=kind)
    return datetime.fromtimestamp(value, UTC)


def _hash(kind: str, body: dict[str, Any], name: str) -> str:
    value = field(kind, body, name, str).lower()
    if not verify.is_hash(value):
        raise LightningProtocolError(f"answered without a valid {name!r}", backend=kind)
    return value


class ClnBackend:
    """A Core Lightning node; ``rpc`` is its unix socket or CLNRest (the same methods on both)."""

    resumable = True

    def __init__(self, rpc: Rpc, *, url: str, network: str, timeout: float) -> None:
        self.name = rpc.kind
        self._rpc = rpc
        self._url = url  # redacted
        self._network = network
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ClnBackend({self._url})"

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            result = await call(self._rpc, method, params, seconds=self._timeout)
        except ClnRpcError as exc:
            raise self._error(method, exc) from None
        if not isinstance(result, dict):
            raise LightningProtocolError(
                f"answered {method} with something other than an object", backend=self.name
            )
        return result

    def _error(self, method: str, exc: ClnRpcError) -> LightningError:
        """The error tree's view of a JSON-RPC error object."""
        if exc.code in RUNE_CODES:
            return LightningRejected(f"the rune does not allow {method} ({exc.message})", backend=self.name)
        if exc.code == -32601:
            return LightningUnsupported(f"the node has no {method} method ({exc.message})", backend=self.name)
        if exc.code is None or exc.code == -32603:  # JSON-RPC's internal error
            return LightningUnavailable(f"{method} failed inside the node ({exc.message})", backend=self.name)
        return LightningRejected(f"{method} refused ({exc.code}: {exc.message})", backend=self.name)

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        if amount_msat <= 0:
            raise LightningRejected("an invoice needs a positive amount", backend=self.name)
        text = description or ""
        if description_hash is not None and hashlib.sha256(text.encode()).digest() != description_hash:
            raise LightningUnsupported(
                "Core Lightning commits to a description hash only when given the description itself"
                " (invoice with deschashonly); an invoice for a bare hash cannot be made",
                backend=self.name,
            )
        # a description too long for the invoice's d field is committed to by its hash
        hashed = description_hash is not None or len(text.encode()) > MAX_DESCRIPTION
        params: dict[str, Any] = {
            "amount_msat": amount_msat,
            "label": f"boltgate-{secrets.token_hex(12)}",
            "description": text,
            "expiry": expiry_seconds,
        }
        if hashed:
            params["deschashonly"] = True
        created = await self._call("invoice", params)
        return verify.created_invoice(
            self.name,
            field(self.name, created, "bolt11", str),
            amount_msat=amount_msat,
            description=None if description_hash else text,  # its hash is fine for a long one
            description_hash=description_hash,
            network=self._network,
            payment_hash=_hash(self.name, created, "payment_hash"),
            backend_invoice_id=params["label"],
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        wanted = payment_hash.lower()
        if not verify.is_hash(wanted):
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        found = await self._call("listinvoices", {"payment_hash": wanted})
        invoices = field(self.name, found, "invoices", list)
        for invoice in invoices:
            if isinstance(invoice, dict) and invoice.get("payment_hash") == wanted:
                return self._invoice_state(payment_hash, invoice)
        return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)

    def _invoice_state(self, payment_hash: str, invoice: dict[str, Any]) -> InvoiceState:
        status = field(self.name, invoice, "status", str)
        if status == "paid":
            return InvoiceState(
                payment_hash=payment_hash,
                status=InvoiceStatus.SETTLED,
                amount_received_msat=_msat(self.name, invoice, "amount_received_msat"),
                settled_at=_time(self.name, invoice, "paid_at"),
            )
        if status == "expired":
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.CANCELED)
        if status == "unpaid":
            expired = _time(self.name, invoice, "expires_at").timestamp() <= time.time()
            return InvoiceState(
                payment_hash=payment_hash, status=InvoiceStatus.CANCELED if expired else InvoiceStatus.OPEN
            )
        raise LightningProtocolError(f"answered an unknown invoice status {status[:20]!r}", backend=self.name)

    async def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        cursor = max(0, after_index)
        while True:
            try:
                paid = await call(
                    self._rpc,
                    "waitanyinvoice",
                    {"lastpay_index": cursor, "timeout": WAIT},
                    seconds=WAIT + self._timeout,
                )
            except ClnRpcError as exc:
                if exc.code == WAIT_TIMED_OUT:
                    continue
                raise self._error("waitanyinvoice", exc) from None
            if not isinstance(paid, dict):
                raise LightningProtocolError(
                    "answered waitanyinvoice with something other than an object", backend=self.name
                )
            index = field(self.name, paid, "pay_index", int)
            if index <= cursor:
                raise LightningProtocolError(
                    "answered waitanyinvoice with an old pay_index", backend=self.name
                )
            cursor = index
            if paid.get("status") != "paid":  # an expired invoice carries no payment
                continue
            yield Settlement(
                payment_hash=_hash(self.name, paid, "payment_hash"),
                amount_received_msat=_msat(self.name, paid, "amount_received_msat"),
                settled_at=_time(self.name, paid, "paid_at"),
                settle_index=index,
            )

    # -- paying

    async def pay_invoice(
        self, bolt11_invoice: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        decoded = invoice_to_pay(bolt11_invoice, amount_msat)
        if isinstance(decoded, PaymentResult):
            return decoded
        payment_hash = decoded.payment_hash.hex()
        params: dict[str, Any] = {
            "bolt11": bolt11_invoice.strip(),
            "maxfee": max(0, max_fee_msat),
            "retry_for": PAY_RETRY_FOR,
        }
        if decoded.amount_msat is None:
            params["amount_msat"] = amount_msat
        elif amount_msat is not None and amount_msat != decoded.amount_msat:
            raise LightningUnsupported(
                "Core Lightning pays an invoice's own amount (amount_msat is for invoices without one)",
                backend=self.name,
            )
        try:
            paid = await self._rpc.send("pay", params, seconds=PAY_RETRY_FOR + 2 * self._timeout)
        except NotSent as exc:
            raise exc.error from None
        except ClnRpcError as exc:
            return await self._pay_refused(payment_hash, exc)
        except (LightningRejected, LightningUnsupported):
            raise  # refused before anything was paid (credentials, permissions)
        except LightningError as exc:  # the request may have left: only a look-up can tell
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(exc))
        return self._payment(payment_hash, paid, "payment_preimage")

    async def _pay_refused(self, payment_hash: str, exc: ClnRpcError) -> PaymentResult:
        if exc.code in RUNE_CODES or exc.code == -32601:
            raise self._error("pay", exc)
        said = f"{exc.code}: {exc.message}"
        if exc.code in PAY_FAILED:
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error=said)
        # in progress (200), paid before (201) or anything else: the node's own record tells
        try:
            looked = await self.lookup_payment(payment_hash)
        except LightningError:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=said)
        if looked.status is PaymentStatus.UNKNOWN and exc.code is not None and exc.code != -32603:
            # the node refused the pay command and holds no payment for it: nothing was sent
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error=said)
        return PaymentResult(
            looked.status, payment_hash, preimage=looked.preimage, fee_msat=looked.fee_msat, error=said
        )

    def _payment(self, payment_hash: str, pay: Any, preimage_field: str) -> PaymentResult:
        """A ``pay`` result or a ``listpays`` entry as a :class:`PaymentResult`."""
        if not isinstance(pay, dict) or pay.get("payment_hash") != payment_hash:
            return PaymentResult(
                PaymentStatus.UNKNOWN, payment_hash, error="the node answered about another payment"
            )
        status = pay.get("status")
        if status == "complete":
            preimage = verify.preimage_of(payment_hash, pay.get(preimage_field))
            if preimage is None:
                return PaymentResult(
                    PaymentStatus.UNKNOWN,
                    payment_hash,
                    error="the node answered complete without the preimage",
                )
            try:
                fee = _msat(self.name, pay, "amount_sent_msat") - _msat(self.name, pay, "amount_msat")
            except LightningProtocolError:
                fee = 0
            return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage=preimage, fee_msat=max(0, fee))
        if status == "pending":
            return PaymentResult(PaymentStatus.PENDING, payment_hash)
        if status == "failed":
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error="the payment failed")
        return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error="the node answered an unknown status")

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        wanted = payment_hash.lower()
        if not verify.is_hash(wanted):
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        found = await self._call("listpays", {"payment_hash": wanted})
        pays = [p for p in field(self.name, found, "pays", list) if isinstance(p, dict)]
        results = [self._payment(wanted, p, "preimage") for p in pays if p.get("payment_hash") == wanted]
        for status in (PaymentStatus.SETTLED, PaymentStatus.PENDING, PaymentStatus.FAILED):
            for result in results:
                if result.status is status:
                    return result
        return PaymentResult(PaymentStatus.UNKNOWN, wanted)

    async def node_info(self) -> NodeInfo:
        info = await self._call("getinfo", {})
        network = field(self.name, info, "network", str)
        alias = info.get("alias")
        return NodeInfo(
            pubkey=field(self.name, info, "id", str),
            alias=alias if isinstance(alias, str) else "",
            network=network_named(network) or network,
            backend=self.name,
        )

    async def close(self) -> None:
        await self._rpc.close()


def _unix_rpc(connection: Connection) -> UnixRpc:
    if connection.host or connection.port:
        raise ConnectionUrlError(
            "cln-rpc: the URL names a socket path, not a host: cln-rpc:///path/to/lightning-rpc"
        )
    path = connection.path
    if not path.startswith("/") or path.endswith("/"):
        raise ConnectionUrlError(
            "cln-rpc: give the absolute path of the node's socket: cln-rpc:///path/to/lightning-rpc"
        )
    if len(path.encode()) >= 108:
        raise ConnectionUrlError(
            "cln-rpc: the socket path is longer than a unix socket path may be (107 bytes)"
        )
    return UnixRpc(connection.kind, path)


def _rest_rpc(connection: Connection) -> RestRpc:
    if connection.path not in ("", "/"):
        raise ConnectionUrlError("clnrest: the URL has no path: clnrest://host:3010?rune=…")
    rune = connection.param("rune")
    if not rune:
        raise ConnectionUrlError(
            "clnrest: the URL needs a rune (?rune=…, made with lightning-cli createrune)"
        )
    if not _RUNE.fullmatch(rune):
        raise ConnectionUrlError("clnrest: the rune is not a rune (base64url text)")
    connection.base_url(3010)  # a host is required
    return RestRpc(connection, rune)


def open_backend(connection: Connection, env: BackendEnv) -> ClnBackend:
    """``cln-rpc://`` or ``clnrest://``: the same backend over the node's socket or CLNRest."""
    connection.check_params(_PARAMS[connection.kind])
    rpc: Rpc = _unix_rpc(connection) if connection.kind == "cln-rpc" else _rest_rpc(connection)
    return ClnBackend(rpc, url=connection.redacted(), network=env.network, timeout=connection.timeout)
