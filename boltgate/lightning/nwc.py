"""Nostr Wallet Connect (NIP-47): a wallet service the merchant connects through Nostr relays.

``nostr+walletconnect://<wallet pubkey hex>?relay=wss://…[&relay=…]&secret=<64 hex>[&lud16=…]``
(``nwc://`` too; ``lud16`` and unknown parameters are ignored). Optional: ``timeout=`` seconds a
request may take (15), ``pay_timeout=`` seconds to wait for the outcome of a payment (60).
The protocol (kinds, tags, NIP-44 v2 encryption) is in :mod:`boltgate.nostr.nip47`.

- The wallet's info event (kind 13194) is read first and again every :data:`INFO_TTL` seconds: it
  must offer NIP-44 v2 (a NIP-04-only wallet is :class:`LightningUnsupported`), and a method it
  does not list is :class:`LightningUnsupported` without asking (a receive-only connection asked
  to pay).
- ``make_invoice`` (``amount`` msat, ``description`` / ``description_hash`` hex, ``expiry``); the
  returned invoice is decoded and checked (:func:`boltgate.lightning.verify.created_invoice`).
- ``lookup_invoice`` by ``payment_hash``: ``state`` ``pending``/``accepted`` → open (canceled once
  past ``expires_at``), ``settled``, ``expired``/``failed`` → canceled; ``NOT_FOUND`` → unknown.
  An outgoing payment is looked up the same way (a ``type: "outgoing"`` transaction).
- Settlements: ``payment_received`` notifications (kind 23197). Each is only a hint, confirmed by
  ``lookup_invoice`` before it becomes a :class:`Settlement`. The stream starts with the incoming
  payments of the last hour (``list_transactions``, when offered) and is not resumable; it raises
  :class:`LightningUnavailable` once no relay is connected. A wallet without notifications is
  :class:`LightningUnsupported` (the gateway then asks about open invoices).
- ``pay_invoice`` is published once. ``PAYMENT_FAILED`` (and ``INSUFFICIENT_BALANCE``,
  ``QUOTA_EXCEEDED``) is FAILED; no answer within ``pay_timeout``, a dropped relay, an unreadable
  answer or any other error after the request left is UNKNOWN (:meth:`lookup_payment` tells).
  NIP-47 has no fee limit: the wallet's own fee policy applies, ``max_fee_msat`` is not enforced.
- ``get_info`` (when offered) for :meth:`node_info`.
- Relays of a merchant's connection string (``Connection.guard`` set) are reached only at public
  addresses and the guard's networks (:func:`boltgate.kit.netguard.allowed`, checked on every
  address a relay's name resolves to, when connecting).
- Wallet error codes: ``UNAUTHORIZED``/``RESTRICTED`` → :class:`LightningRejected`,
  ``NOT_IMPLEMENTED``/``UNSUPPORTED_ENCRYPTION`` → :class:`LightningUnsupported`,
  ``RATE_LIMITED``/``INTERNAL`` → :class:`LightningUnavailable`; no relay reachable →
  :class:`LightningUnavailable`; no answer in ``timeout`` → :class:`LightningTimeout`.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NoReturn

import structlog

from boltgate.agent.nostr import NostrError, parse_pubkey, pubkey_of
from boltgate.kit import netguard
from boltgate.lightning import bolt11, verify
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    LightningProtocolError,
    LightningRejected,
    LightningTimeout,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
    network_named,
)
from boltgate.lightning.connection import Connection, ConnectionUrlError
from boltgate.lightning.registry import BackendEnv
from boltgate.nostr.nip47 import BadAnswer, NoInfo, WalletClient, WalletError, WalletInfo
from boltgate.nostr.relay import AddressRule, EventRejected, RelayError, RelayPool, check_relay_url

KIND = "nwc"
INFO_TTL = 600.0
PAY_TIMEOUT = 60.0
EXPIRATION_SLACK = 30  # seconds a request stays valid beyond our wait (clock skew)
REPLAY_WINDOW = 3600
# small pages: an answer must stay under the relays' event size limits (and boltgate's 64 KiB)
REPLAY_PAGE = 10
REPLAY_PAGES = 30
_REJECTED = frozenset({"UNAUTHORIZED", "RESTRICTED"})
_UNSUPPORTED = frozenset({"NOT_IMPLEMENTED", "UNSUPPORTED_ENCRYPTION"})
_UNAVAILABLE = frozenset({"RATE_LIMITED", "INTERNAL"})
_PAY_FAILED = frozenset({"PAYMENT_FAILED", "INSUFFICIENT_BALANCE", "QUOTA_EXCEEDED"})
_PUBKEY = re.compile(r"0[23][0-9a-f]{64}")
log = structlog.get_logger(__name__)


def _wallet_failure(exc: WalletError) -> LightningError:
    said = f"the wallet service answered {exc}"
    if exc.code in _REJECTED:
        return LightningRejected(said, backend=KIND)
    if exc.code in _UNSUPPORTED:
        return LightningUnsupported(said, backend=KIND)
    if exc.code in _UNAVAILABLE:
        return LightningUnavailable(said, backend=KIND)
    return LightningRejected(said, backend=KIND)


def _failure(exc: Exception) -> LightningError:
    """The error-tree exception for anything a request can end with (raised ``from None``)."""
    if isinstance(exc, LightningError):
        return exc
    if isinstance(exc, WalletError):
        return _wallet_failure(exc)
    if isinstance(exc, TimeoutError):
        return LightningTimeout("the wallet service did not answer in time", backend=KIND)
    if isinstance(exc, EventRejected):
        return LightningUnavailable(f"every relay refused the request ({exc})", backend=KIND)
    if isinstance(exc, RelayError):
        return LightningUnavailable(f"no relay can be used ({exc})", backend=KIND)
    if isinstance(exc, NoInfo):
        return LightningUnavailable(f"{exc}: is the connection string complete and current?", backend=KIND)
    if isinstance(exc, BadAnswer):
        return LightningProtocolError(str(exc), backend=KIND)
    if isinstance(exc, NostrError):  # our own request could not be made into an event (its size)
        return LightningRejected(f"the request cannot be sent as a Nostr event ({exc.detail})", backend=KIND)
    return LightningUnavailable(f"request failed ({type(exc).__name__})", backend=KIND)


def _protocol(message: str) -> NoReturn:
    raise LightningProtocolError(message, backend=KIND)


def _int(body: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _protocol(f"answered without a valid {name!r}")
    return value


def _when(body: dict[str, Any], name: str) -> datetime | None:
    value = _int(body, name)
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _hash_of(body: dict[str, Any], asked: str) -> None:
    value = body.get("payment_hash")
    if value is not None and (not isinstance(value, str) or value.lower() != asked):
        _protocol("answered about another payment hash")


def _state(body: dict[str, Any]) -> str:
    """The transaction's ``state``, inferred the way older wallets imply it when absent."""
    state = body.get("state")
    if isinstance(state, str) and state in {"pending", "settled", "accepted", "expired", "failed"}:
        return state
    if state is not None:
        _protocol("answered with an unknown transaction state")
    if body.get("settled_at"):
        return "settled"
    expires = _int(body, "expires_at")
    return "expired" if expires is not None and expires <= time.time() else "pending"


def _preimage(body: dict[str, Any], payment_hash: str) -> str | None:
    value = body.get("preimage")
    if not value:
        return None
    if not verify.is_hash(value):
        _protocol("answered with a malformed preimage")
    preimage = verify.preimage_of(payment_hash, value)
    if preimage is None:
        _protocol("answered with a preimage that is not the payment hash's")
    return preimage


def _invoice_state(body: dict[str, Any], payment_hash: str) -> InvoiceState:
    _hash_of(body, payment_hash)
    if body.get("type") == "outgoing":
        return InvoiceState(payment_hash, InvoiceStatus.UNKNOWN)
    state = _state(body)
    if state == "settled":
        settled_at = _when(body, "settled_at") or datetime.now(UTC)
        amount = _int(body, "amount", required=True) or 0
        return InvoiceState(payment_hash, InvoiceStatus.SETTLED, amount, settled_at)
    expires = _int(body, "expires_at")
    if state in ("expired", "failed") or (expires is not None and expires <= time.time()):
        return InvoiceState(payment_hash, InvoiceStatus.CANCELED)
    return InvoiceState(payment_hash, InvoiceStatus.OPEN)


def _payment(body: dict[str, Any], payment_hash: str) -> PaymentResult:
    _hash_of(body, payment_hash)
    if body.get("type") == "incoming":  # one of our own invoices, not a payment we made
        return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
    state = _state(body)
    fee = _int(body, "fees_paid") or 0
    if state == "settled":
        preimage = _preimage(body, payment_hash)
        if preimage is None:
            _protocol("reported a settled payment without its preimage")
        return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage, fee)
    if state in ("failed", "expired"):
        return PaymentResult(
            PaymentStatus.FAILED, payment_hash, error=f"the wallet reports the payment {state}"
        )
    return PaymentResult(PaymentStatus.PENDING, payment_hash)


class NwcBackend:
    """One NWC connection (see the module docstring)."""

    name = KIND
    resumable = False

    def __init__(
        self,
        *,
        wallet_pubkey: str,
        secret: bytes,
        relays: list[str],
        network: str,
        timeout: float,
        pay_timeout: float = PAY_TIMEOUT,
        address_rule: AddressRule | None = None,
    ) -> None:
        pool = RelayPool(relays, open_timeout=min(timeout, 10.0), address_rule=address_rule)
        self._client = WalletClient(wallet_pubkey, secret, pool)
        self._network = network
        self._timeout = timeout
        self._pay_timeout = pay_timeout
        self._info: tuple[WalletInfo, float] | None = None
        self._info_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"NwcBackend(wallet={self._client.wallet}, relays={self._client.pool.labels})"

    # -- plumbing

    async def _wallet_info(self) -> WalletInfo:
        async with self._info_lock:
            if self._info is not None and time.monotonic() - self._info[1] < INFO_TTL:
                return self._info[0]
            try:
                async with asyncio.timeout(self._timeout):
                    info = await self._client.info()
            except Exception as exc:
                raise _failure(exc) from None
            if not info.speaks_nip44:
                raise LightningUnsupported(
                    "the wallet service offers only NIP-04 encryption; boltgate speaks NIP-44 v2 "
                    "(nip44_v2), which current wallet services support: update or switch the wallet",
                    backend=KIND,
                )
            self._info = (info, time.monotonic())
            return info

    async def _supports(self, method: str) -> WalletInfo:
        info = await self._wallet_info()
        if method not in info.methods:
            offered = " ".join(sorted(info.methods)) or "nothing"
            raise LightningUnsupported(
                f"this connection does not offer {method} (it offers: {offered})", backend=KIND
            )
        return info

    def _expires_in(self, wait: float) -> int:
        return math.ceil(wait) + EXPIRATION_SLACK

    async def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await self._supports(method)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._client.request(method, params, expires_in=self._expires_in(self._timeout))
        except WalletError as exc:
            if exc.code in _UNSUPPORTED:
                self._info = None  # the info event may have changed
            raise
        except Exception as exc:
            raise _failure(exc) from None

    async def _lookup(self, payment_hash: str) -> dict[str, Any] | None:
        """The wallet's transaction of ``payment_hash``, None when it has none."""
        if not verify.is_hash(payment_hash):
            raise LightningRejected("a payment hash is 64 hex characters", backend=KIND)
        try:
            return await self._request("lookup_invoice", {"payment_hash": payment_hash.lower()})
        except WalletError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise _failure(exc) from None

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        if amount_msat <= 0 or expiry_seconds <= 0:
            raise LightningRejected("an invoice needs a positive amount and expiry", backend=KIND)
        params: dict[str, Any] = {"amount": amount_msat, "expiry": expiry_seconds}
        if description is not None:
            params["description"] = description
        if description_hash is not None:
            params["description_hash"] = description_hash.hex()
        try:
            result = await self._request("make_invoice", params)
        except WalletError as exc:
            raise _failure(exc) from None
        invoice = result.get("invoice")
        if not isinstance(invoice, str) or not invoice:
            _protocol("answered make_invoice without an invoice")
        reported = result.get("payment_hash")
        if reported is not None and not isinstance(reported, str):
            _protocol("answered with a malformed payment hash")
        created = verify.created_invoice(
            KIND,
            invoice,
            amount_msat=amount_msat,
            description=description,
            description_hash=description_hash,
            network=self._network,
            payment_hash=reported,
        )
        if _int(result, "amount") not in (None, amount_msat):
            _protocol(f"reported an invoice amount of {result.get('amount')} msat instead of {amount_msat}")
        return created

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        found = await self._lookup(payment_hash)
        if found is None:
            return InvoiceState(payment_hash.lower(), InvoiceStatus.UNKNOWN)
        return _invoice_state(found, payment_hash.lower())

    async def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        info = await self._supports("lookup_invoice")
        if "payment_received" not in info.notifications:
            raise LightningUnsupported(
                "the wallet service sends no payment_received notifications", backend=KIND
            )
        yielded: collections.OrderedDict[str, None] = collections.OrderedDict()
        try:
            subscribed = self._client.notifications(ready_within=self._timeout)
            async with subscribed as stream:  # subscribed first: nothing settled from now on is missed
                for settlement in await self._recent_settlements(info):
                    yielded[settlement.payment_hash] = None
                    yield settlement
                while True:
                    kind, notification = await stream.next()
                    payment_hash = notification.get("payment_hash")
                    if kind != "payment_received" or not isinstance(payment_hash, str):
                        continue
                    payment_hash = payment_hash.lower()
                    if not verify.is_hash(payment_hash) or payment_hash in yielded:
                        continue
                    state = await self.lookup_invoice(payment_hash)  # a notification is only a hint
                    if state.status is not InvoiceStatus.SETTLED or state.settled_at is None:
                        continue
                    yielded[payment_hash] = None
                    while len(yielded) > 4096:
                        yielded.popitem(last=False)
                    yield Settlement(payment_hash, state.amount_received_msat, state.settled_at, 0)
        except (RelayError, TimeoutError) as exc:
            raise _failure(exc) from None

    async def _recent_settlements(self, info: WalletInfo) -> list[Settlement]:
        """Incoming payments settled in the last hour (what a restarted stream may have missed)."""
        if "list_transactions" not in info.methods:
            return []
        since = int(time.time()) - REPLAY_WINDOW
        found: list[Settlement] = []
        for page in range(REPLAY_PAGES):
            params = {"from": since, "type": "incoming", "limit": REPLAY_PAGE, "offset": page * REPLAY_PAGE}
            try:
                result = await self._request("list_transactions", params)
            except WalletError as exc:
                raise _failure(exc) from None
            transactions = result.get("transactions")
            if not isinstance(transactions, list):
                _protocol("answered list_transactions without a transactions list")
            for item in transactions:
                payment_hash = item.get("payment_hash") if isinstance(item, dict) else None
                if not verify.is_hash(payment_hash):
                    continue
                try:
                    state = _invoice_state(item, payment_hash.lower())
                except LightningProtocolError as exc:  # one bad entry must not stop the stream for good
                    log.warning("nwc_unreadable_transaction", payment_hash=payment_hash, problem=str(exc))
                    continue
                if state.status is InvoiceStatus.SETTLED and state.settled_at is not None:
                    found.append(
                        Settlement(state.payment_hash, state.amount_received_msat, state.settled_at, 0)
                    )
            if len(transactions) < REPLAY_PAGE:
                break
        return sorted(found, key=lambda s: s.settled_at)

    # -- paying

    async def pay_invoice(
        self, bolt11_invoice: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        try:
            decoded = bolt11.decode(bolt11_invoice.strip())
        except bolt11.Bolt11Error as exc:
            raise LightningRejected(f"not a payable BOLT11 invoice ({exc})", backend=KIND) from None
        payment_hash = decoded.payment_hash.hex()
        params: dict[str, Any] = {"invoice": bolt11_invoice.strip()}
        if decoded.amount_msat is None:
            if amount_msat is None or amount_msat <= 0:
                raise LightningRejected("an invoice without an amount needs amount_msat", backend=KIND)
            params["amount"] = amount_msat
        elif amount_msat is not None and amount_msat != decoded.amount_msat:
            raise LightningRejected("amount_msat differs from the invoice's amount", backend=KIND)
        await self._supports("pay_invoice")
        call = None
        try:
            async with asyncio.timeout(self._pay_timeout):
                async with self._client.call(
                    "pay_invoice", params, expires_in=self._expires_in(self._pay_timeout)
                ) as call:
                    await call.send()
                    result = await call.answer()
        except WalletError as exc:
            if exc.code in _PAY_FAILED:
                return PaymentResult(PaymentStatus.FAILED, payment_hash, error=str(exc))
            if exc.code in _REJECTED | _UNSUPPORTED or exc.code == "RATE_LIMITED":
                raise _failure(exc) from None  # refused before anything was attempted
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(exc))
        except Exception as exc:
            if call is None or not call.sent:
                raise _failure(exc) from None
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(_failure(exc)))
        return self._paid(result, payment_hash, max_fee_msat)

    def _paid(self, result: dict[str, Any], payment_hash: str, max_fee_msat: int) -> PaymentResult:
        try:
            preimage = _preimage(result, payment_hash)
            fee = _int(result, "fees_paid") or 0
        except LightningProtocolError as exc:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(exc))
        if preimage is None:
            return PaymentResult(
                PaymentStatus.UNKNOWN, payment_hash, error="the wallet answered without a preimage"
            )
        if fee > max_fee_msat:  # NIP-47 cannot pass the limit on: say so where operators look
            log.warning(
                "nwc_fee_above_limit", payment_hash=payment_hash, fee_msat=fee, max_fee_msat=max_fee_msat
            )
        return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage, fee)

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        found = await self._lookup(payment_hash)
        if found is None:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash.lower())
        return _payment(found, payment_hash.lower())

    # -- the rest

    async def node_info(self) -> NodeInfo:
        info = await self._wallet_info()
        if "get_info" not in info.methods:
            return NodeInfo(pubkey=self._client.wallet, alias="", network=self._network, backend=KIND)
        try:
            result = await self._request("get_info", {})
        except WalletError as exc:
            raise _failure(exc) from None
        alias, pubkey = result.get("alias"), result.get("pubkey")
        node = pubkey.lower() if isinstance(pubkey, str) else ""
        return NodeInfo(
            pubkey=node if _PUBKEY.fullmatch(node) else self._client.wallet,
            alias=alias[:64] if isinstance(alias, str) else "",
            network=network_named(str(result.get("network", ""))) or self._network,
            backend=KIND,
        )

    async def close(self) -> None:
        await self._client.pool.close()


def _secret(connection: Connection) -> bytes:
    raw = connection.param("secret")
    if not raw:
        raise ConnectionUrlError("nwc: the URL needs the client secret (&secret=<64 hex>)")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        raise ConnectionUrlError("nwc: secret must be 64 hex characters (32 bytes)")
    secret = bytes.fromhex(raw)
    try:
        pubkey_of(secret)
    except ValueError:
        raise ConnectionUrlError("nwc: secret is not a valid secp256k1 secret key") from None
    return secret


def _wallet_pubkey(connection: Connection) -> str:
    if connection.username or connection.password is not None or connection.port:
        raise ConnectionUrlError("nwc: the URL is nostr+walletconnect://<wallet pubkey>?relay=…&secret=…")
    if connection.path not in ("", "/"):
        raise ConnectionUrlError("nwc: the wallet's public key is the URL's host, with no path after it")
    host = connection.host or ""
    if not host:
        raise ConnectionUrlError("nwc: the URL needs the wallet service's public key (64 hex) as its host")
    try:
        return parse_pubkey(host)
    except NostrError:
        raise ConnectionUrlError(
            "nwc: the wallet service's public key must be 64 hex characters naming a secp256k1 point"
        ) from None


def _relays(connection: Connection) -> list[str]:
    relays = [url.strip() for url in connection.params_of("relay") if url.strip()]
    if not relays:
        raise ConnectionUrlError("nwc: the URL needs at least one relay (&relay=wss://…)")
    for number, url in enumerate(relays, 1):
        try:
            check_relay_url(url)
        except ValueError as exc:
            raise ConnectionUrlError(f"nwc: relay #{number}: {exc}") from None
    return relays


def _address_rule(connection: Connection) -> AddressRule | None:
    """A merchant's connection string reaches public addresses and its ``guard`` networks only."""
    guard = getattr(connection, "guard", None)
    if guard is None:
        return None
    networks = tuple(guard)
    return lambda address: netguard.allowed(address, networks)


def open_backend(connection: Connection, env: BackendEnv) -> NwcBackend:
    """A NWC connection string: wallet pubkey as host, ``relay`` (repeatable) and ``secret``."""
    return NwcBackend(
        wallet_pubkey=_wallet_pubkey(connection),
        secret=_secret(connection),
        relays=_relays(connection),
        network=env.network,
        timeout=connection.timeout,
        pay_timeout=connection.seconds("pay_timeout", max(PAY_TIMEOUT, connection.timeout), most=600),
        address_rule=_address_rule(connection),
    )
