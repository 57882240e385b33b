"""What the custodial API backends (OpenNode, Strike) share.

Both are HTTPS JSON APIs authenticated with one API key in the ``Authorization`` header, opened
from ``<kind>://?key=<api key>`` (their public API host) or ``<kind>://host:port?key=…&tls=0``
(another host: a proxy, a test double). Both count in whole satoshis or in BTC decimal strings, so
an amount that is not a whole number of satoshis cannot be asked for
(:class:`~boltgate.lightning.base.LightningUnsupported`) and every amount they answer with is
converted exactly (:class:`decimal.Decimal`, never a float). Neither pushes settlements to a
gateway without a public webhook URL: :meth:`CustodialBackend.settlements` raises
:class:`~boltgate.lightning.base.LightningUnsupported` at once and the gateway polls the open
invoices.

Network: the public hosts issue mainnet invoices (``dev-api.opennode.com``: testnet). The
gateway's configured network (``BackendEnv.network``) is the one every invoice is checked
against; a public host whose network is not that one is refused when the backend is opened
(:class:`~boltgate.lightning.connection.ConnectionUrlError`), another host is taken to use the
configured network.

A payment's id at the custodian is known only from the answer to the request that made it. The
backends keep the ids they learn in a bounded in-memory map (:class:`Recent`) for the life of the
process; what they can find again after a restart is documented per backend.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from boltgate.lightning import bolt11
from boltgate.lightning import http as lnhttp
from boltgate.lightning.amounts import MSAT_PER_SAT, whole_sats
from boltgate.lightning.base import (
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    PaymentResult,
    PaymentStatus,
    Settlement,
)
from boltgate.lightning.connection import Connection, ConnectionUrlError

MSAT_PER_BTC = 100_000_000_000
URL_PARAMS = frozenset({"key", "tls", "timeout", "cert"})
MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class Api:
    """Where a custodial API lives and how it is asked."""

    kind: str
    base_url: str
    key: str
    network: str
    public: bool  # one of the custodian's own hosts (not an override)


def open_api(connection: Connection, network: str, public_hosts: Mapping[str, str]) -> Api:
    """The API a ``<kind>://[host[:port]]?key=…`` URL names; ``public_hosts`` maps each of the
    custodian's own hosts to the network it issues invoices on (the first is the default)."""
    kind = connection.kind
    if connection.username is not None or connection.password is not None:
        raise ConnectionUrlError(f"{kind}: the URL takes the API key as ?key=, not as a user or password")
    if connection.path not in ("", "/"):
        raise ConnectionUrlError(f"{kind}: the URL must not have a path")
    unknown = sorted(set(connection.params) - URL_PARAMS)
    if unknown:
        raise ConnectionUrlError(f"{kind}: unknown URL parameter {unknown[0][:32]!r}")
    key = connection.param("key")
    if not key:
        raise ConnectionUrlError(f"{kind}: the URL needs the API key as ?key=")
    if len(key) > MAX_KEY_LENGTH or any(c.isspace() or not c.isprintable() for c in key):
        raise ConnectionUrlError(f"{kind}: the API key (key=) is not a valid key")
    host = (connection.host or next(iter(public_hosts))).lower()
    public = host in public_hosts
    tls = connection.tls
    if public and not tls:
        raise ConnectionUrlError(f"{kind}: {host} is reached over HTTPS only (leave out tls=0)")
    if public and public_hosts[host] != network:
        raise ConnectionUrlError(
            f"{kind}: {host} issues {public_hosts[host]} invoices but the gateway's network is "
            f"{network}; set the gateway's network to {public_hosts[host]}"
        )
    base = connection.base_url(443 if tls else 80, default_host=host)
    return Api(kind=kind, base_url=base, key=key, network=network, public=public)


class Recent:
    """A bounded map of what this process learnt (payment hash -> the custodian's id)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def put(self, payment_hash: str, value: str) -> None:
        self._items[payment_hash.lower()] = value
        self._items.move_to_end(payment_hash.lower())
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, payment_hash: str) -> str | None:
        return self._items.get(payment_hash.lower())


def btc_text(kind: str, amount_msat: int) -> str:
    """An amount as the BTC decimal string the API expects (8 decimals, whole satoshis only)."""
    sats = whole_sats(kind, amount_msat)
    return f"{Decimal(sats).scaleb(-8):.8f}"


def msat_of_btc(kind: str, value: Any, what: str) -> int:
    """Exact msat of a BTC decimal string the API answered with (a fraction of a msat, a
    negative amount or anything but a decimal string is :class:`LightningProtocolError`)."""
    if not isinstance(value, str):
        raise LightningProtocolError(f"answered without a valid {what}", backend=kind)
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise LightningProtocolError(f"answered an invalid {what} ({value[:32]!r})", backend=kind) from None
    msat = amount * MSAT_PER_BTC
    if not amount.is_finite() or amount < 0 or msat != msat.to_integral_value():
        raise LightningProtocolError(f"answered an invalid {what} ({value[:32]!r})", backend=kind)
    return int(msat)


def msat_of_sats(kind: str, value: Any, what: str) -> int:
    """Msat of a whole-satoshi count the API answered with."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise LightningProtocolError(f"answered without a valid {what}", backend=kind)
    return int(value) * MSAT_PER_SAT


def time_of(kind: str, value: Any, what: str) -> datetime:
    """An aware datetime of an ISO 8601 string or a unix time the API answered with."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise LightningProtocolError(f"answered without a valid {what}", backend=kind)


def hash_of(kind: str, payment_request: Any) -> str | None:
    """The payment hash of a BOLT11 invoice the API answered with, None if it is not one."""
    if not isinstance(payment_request, str):
        return None
    try:
        return bolt11.decode(payment_request.strip(), require_payment_secret=False).payment_hash.hex()
    except bolt11.Bolt11Error:
        return None


def account_id(kind: str, base_url: str, key: str) -> str:
    """A stable identity of an account that has no public id: a hash of the API's address and of
    the key's hash (the key cannot be recovered from it)."""
    digest = hashlib.sha256(key.encode()).digest()
    return hashlib.sha256(f"{kind}\0{base_url}\0".encode() + digest).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """An invoice about to be paid, checked before anything is sent."""

    payment_hash: str
    invoice_msat: int | None  # None: a zero-amount invoice
    send_msat: int | None  # what to send for a zero-amount invoice


def outgoing(kind: str, invoice: str, amount_msat: int | None, network: str) -> Outgoing | PaymentResult:
    """The invoice to pay, or a FAILED result when it cannot be paid as asked (nothing was sent)."""
    try:
        decoded = bolt11.decode(invoice.strip())
    except bolt11.Bolt11Error as exc:
        return PaymentResult(PaymentStatus.FAILED, "", error=f"invalid invoice: {exc}")
    payment_hash = decoded.payment_hash.hex()
    if decoded.network != network:
        return PaymentResult(
            PaymentStatus.FAILED, payment_hash, error=f"invoice for {decoded.network}, not {network}"
        )
    if decoded.amount_msat is not None:
        if amount_msat is not None and amount_msat != decoded.amount_msat:
            return PaymentResult(
                PaymentStatus.FAILED,
                payment_hash,
                error=f"{kind} pays an invoice's own amount only ({decoded.amount_msat} msat)",
            )
        return Outgoing(payment_hash, decoded.amount_msat, None)
    if amount_msat is None:
        return PaymentResult(
            PaymentStatus.FAILED, payment_hash, error="zero-amount invoice: amount_msat needed"
        )
    whole_sats(kind, amount_msat, "a payment amount")
    return Outgoing(payment_hash, None, amount_msat)


def status_error(kind: str, status: int, said: str) -> Exception:
    """The error-tree exception for a non-2xx answer described by the API's own ``said``."""
    detail = f": {said[:200]}" if said else ""
    if status in (401, 403):
        return LightningRejected(f"refused the credentials (HTTP {status}{detail})", backend=kind)
    if status == 429 or status >= 500:
        return LightningUnavailable(f"answered HTTP {status}{detail}", backend=kind)
    return LightningRejected(f"refused the request (HTTP {status}{detail})", backend=kind)


class CustodialBackend:
    """The part of a custodial API backend that does not depend on the API's shapes."""

    name: str
    resumable = False

    def __init__(self, api: Api, headers: dict[str, str], connection: Connection) -> None:
        self.api = api
        self.network = api.network
        self._base = api.base_url
        self._http = lnhttp.client(connection, headers={**headers, "Accept": "application/json"})
        self._invoices = Recent()
        self._payments = Recent()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._base} network={self.network}>"

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures are mapped (the caller decides what a status means)."""
        return await lnhttp.send(self._http, self.name, method, f"{self._base}{path}", **kwargs)

    def json(self, response: httpx.Response) -> Any:
        """The JSON body of a 2xx answer, else the error the API's body describes."""
        if not 200 <= response.status_code < 300:
            raise status_error(self.name, response.status_code, self.said(response))
        return lnhttp.json_of(self.name, response)

    def said(self, response: httpx.Response) -> str:
        """The API's own words about a failed request (overridden per API)."""
        return ""

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        raise NotImplementedError

    async def to_pay(self, invoice: str, amount_msat: int | None) -> Outgoing | PaymentResult:
        """The invoice to pay (:func:`outgoing`), or the result to return without paying: FAILED
        when it cannot be paid as asked, or what became of this process's earlier payment of it
        unless that failed (a guard against paying twice)."""
        target = outgoing(self.name, invoice, amount_msat, self.network)
        if isinstance(target, PaymentResult) or self._payments.get(target.payment_hash) is None:
            return target
        result = await self.lookup_payment(target.payment_hash)
        return target if result.status is PaymentStatus.FAILED else result

    def refused(self, response: httpx.Response, payment_hash: str, lacking: str) -> PaymentResult | None:
        """None for a 2xx answer to a payment request; FAILED for an explicit refusal (nothing was
        paid). A key that cannot pay (``lacking`` says what it needs), refused credentials, rate
        limits and outages raise."""
        status = response.status_code
        if status == 403:
            raise LightningUnsupported(f"this API key cannot pay (it {lacking})", backend=self.name)
        if status in (401, 429) or status >= 500:  # not done: the caller may try again later
            raise status_error(self.name, status, self.said(response))
        if status >= 400:
            return PaymentResult(
                PaymentStatus.FAILED, payment_hash, error=self.said(response) or f"HTTP {status}"
            )
        return None

    def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        return self._no_push()

    async def _no_push(self) -> AsyncIterator[Settlement]:
        raise LightningUnsupported(
            "pushes settlements only to a public webhook URL: the gateway polls the open invoices",
            backend=self.name,
        )
        yield  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        await self._http.aclose()
