"""OpenNode as a Lightning backend: a custodial account at https://developers.opennode.com.

It speaks OpenNode's REST API (v1 and v2 paths) with the API key as ``Authorization: <key>``:

- ``POST /v1/charges`` ``{amount (satoshis), description, ttl (minutes, 10-1440)}`` answers
  ``{"data": {"id", "amount", "lightning_invoice": {"payreq", "expires_at"}, …}}`` (201). The
  charge id is the backend invoice id; the invoice is decoded and checked like every other
  backend's (:func:`boltgate.lightning.verify.created_invoice`). OpenNode gives no Lightning
  invoice above 5 BTC and cannot commit to a description hash given by the caller.
- ``GET /v2/charge/{id}`` answers ``data.status``: ``unpaid``, ``processing`` or ``underpaid``
  (open), ``paid`` (with ``price`` in satoshis and ``settled_at``), ``expired``, ``refunded`` or
  ``failed`` (can no longer be paid); 404 for a charge it does not know.
- ``GET /v1/charges`` lists the paid charges (keys with the *Read* permission): how a charge is
  found by its payment hash alone when this process did not create it. With an *Invoice* key an
  invoice that this process did not create is UNKNOWN until it is asked about by its charge id.
- ``POST /v2/withdrawals`` ``{type: "ln", address: <bolt11>}`` pays (keys with the *Withdrawals*
  permission) and answers a withdrawal ``{id, reference (the invoice), amount, fee (satoshis),
  status: pending|confirmed|error|failed, error}``; ``GET /v1/withdrawal/{id}`` follows one and
  ``GET /v1/withdrawals`` (*Read*) finds one by its invoice after a restart or a lost answer.
  OpenNode returns no preimage and takes no fee limit: a confirmed payment is SETTLED without a
  preimage, and the fee is what OpenNode reports afterwards.

Errors are ``{"success": false, "message": …}`` with HTTP 400, 401, 404 or 5xx. Webhooks
(``callback_url``) need a public URL, so settlements are found by polling (no push).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from boltgate.lightning import verify
from boltgate.lightning.amounts import MSAT_PER_SAT, whole_sats
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningProtocolError,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
)
from boltgate.lightning.connection import Connection
from boltgate.lightning.custodial import (
    Api,
    CustodialBackend,
    account_id,
    hash_of,
    msat_of_sats,
    open_api,
    time_of,
)
from boltgate.lightning.http import error_body, field
from boltgate.lightning.registry import BackendEnv

log = logging.getLogger(__name__)

PUBLIC_HOSTS = {"api.opennode.com": "mainnet", "dev-api.opennode.com": "testnet"}
TTL_MINUTES = (10, 1440)
MAX_LIGHTNING_SATS = 500_000_000  # no Lightning invoice above 5 BTC
OPEN = frozenset({"unpaid", "processing", "underpaid"})
GONE = frozenset({"expired", "refunded", "failed"})
SENT = {"confirmed": PaymentStatus.SETTLED, "error": PaymentStatus.FAILED, "failed": PaymentStatus.FAILED}
UNDER_WAY = frozenset({"pending", "initial", "processing"})


class OpenNode(CustodialBackend):
    """An OpenNode account (see the module docstring for the API it speaks)."""

    name = "opennode"

    def __init__(self, api: Api, connection: Connection) -> None:
        super().__init__(api, {"Authorization": api.key}, connection)
        self._account = account_id(self.name, api.base_url, api.key)

    def said(self, response: httpx.Response) -> str:
        body = error_body(response)
        message = body.get("message") if isinstance(body, dict) else None
        return message if isinstance(message, str) else ""

    def _data(self, response: httpx.Response, kind_of: type) -> Any:
        return field(self.name, self.json(response), "data", kind_of)

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        if description_hash is not None:
            raise LightningUnsupported(
                "a charge cannot commit to a given description hash", backend=self.name
            )
        sats = whole_sats(self.name, amount_msat, "an invoice amount")
        if sats > MAX_LIGHTNING_SATS:
            raise LightningUnsupported("gives no Lightning invoice above 5 BTC", backend=self.name)
        ttl = -(-expiry_seconds // 60)  # whole minutes, rounded up
        if not TTL_MINUTES[0] <= ttl <= TTL_MINUTES[1]:
            raise LightningUnsupported(
                f"charges live 10 minutes to 24 hours, not {expiry_seconds} seconds", backend=self.name
            )
        body = {"amount": sats, "description": description or "", "ttl": ttl}
        data = self._data(await self.send("POST", "/v1/charges", json=body), dict)
        charge_id = _charge_id(self.name, data)
        if data.get("amount") not in (None, sats):
            raise LightningProtocolError(
                f"made a charge of {data.get('amount')!r} sats, not {sats}", backend=self.name
            )
        payreq = field(self.name, field(self.name, data, "lightning_invoice", dict), "payreq", str)
        created = verify.created_invoice(
            self.name,
            payreq,
            amount_msat=amount_msat,
            description=description,
            description_hash=None,
            network=self.network,
            backend_invoice_id=charge_id,
        )
        self._invoices.put(created.payment_hash, charge_id)
        return created

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        payment_hash = payment_hash.lower()
        charge_id = backend_invoice_id or self._invoices.get(payment_hash)
        if charge_id is None:
            charge_id = await self._paid_charge(payment_hash)
            if charge_id is None:
                return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        response = await self.send("GET", f"/v2/charge/{quote(charge_id, safe='')}")
        if response.status_code == 404:
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        return self._charge_state(payment_hash, self._data(response, dict))

    async def _paid_charge(self, payment_hash: str) -> str | None:
        """The id of the paid charge with this payment hash (``GET /v1/charges``, *Read* keys)."""
        response = await self.send("GET", "/v1/charges")
        if response.status_code == 403:
            log.info(
                "opennode: the API key cannot list charges (Read permission); %s is unknown", payment_hash
            )
            return None
        found = False
        for charge in self._data(response, list):
            charge_hash = hash_of(self.name, _payreq(charge)) if isinstance(charge, dict) else None
            if charge_hash is not None:  # remembered: the next look-ups of paid charges ask by id
                self._invoices.put(charge_hash, _charge_id(self.name, charge))
                found = found or (charge_hash == payment_hash)
        return self._invoices.get(payment_hash) if found else None

    def _charge_state(self, payment_hash: str, data: dict[str, Any]) -> InvoiceState:
        if hash_of(self.name, _payreq(data)) != payment_hash:
            raise LightningProtocolError("answered with a charge that is not this invoice", backend=self.name)
        status = field(self.name, data, "status", str)
        if status in OPEN:
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.OPEN)
        if status in GONE:
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.CANCELED)
        if status != "paid":
            raise LightningProtocolError(
                f"answered an unknown charge status {status[:32]!r}", backend=self.name
            )
        lightning = _lightning(data)
        price = data.get("price", data.get("amount"))
        settled = data.get("settled_at") or lightning.get("settled_at")
        return InvoiceState(
            payment_hash=payment_hash,
            status=InvoiceStatus.SETTLED,
            amount_received_msat=msat_of_sats(self.name, price, "charge price"),
            settled_at=time_of(self.name, settled, "settlement time"),
        )

    # -- paying

    async def pay_invoice(
        self, bolt11: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        target = await self.to_pay(bolt11, amount_msat)
        if isinstance(target, PaymentResult):
            return target
        body: dict[str, Any] = {"type": "ln", "address": bolt11.strip()}
        if target.send_msat is not None:
            body["amount"] = target.send_msat // MSAT_PER_SAT
        try:
            response = await self.send("POST", "/v2/withdrawals", json=body)
        except LightningUnavailable as exc:  # it may have reached OpenNode: ask, never resend
            return PaymentResult(PaymentStatus.UNKNOWN, target.payment_hash, error=str(exc))
        if response.status_code >= 500:  # it may have been paid: ask, never resend
            return PaymentResult(
                PaymentStatus.UNKNOWN, target.payment_hash, error=f"HTTP {response.status_code}"
            )
        refused = self.refused(response, target.payment_hash, "needs the Withdrawals permission")
        if refused is not None:
            return refused
        try:
            return self._payment(target.payment_hash, self._data(response, dict))
        except LightningProtocolError as exc:
            return PaymentResult(PaymentStatus.UNKNOWN, target.payment_hash, error=str(exc))

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        payment_hash = payment_hash.lower()
        withdrawal_id = self._payments.get(payment_hash)
        if withdrawal_id is not None:
            response = await self.send("GET", f"/v1/withdrawal/{quote(withdrawal_id, safe='')}")
            if response.status_code == 404:
                return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
            return self._payment(payment_hash, self._data(response, dict))
        response = await self.send("GET", "/v1/withdrawals")
        if response.status_code == 403:
            log.info(
                "opennode: the API key cannot list withdrawals (Read permission); %s is unknown", payment_hash
            )
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        for withdrawal in self._data(response, list):
            if isinstance(withdrawal, dict) and payment_hash in (
                hash_of(self.name, withdrawal.get("reference")),
                hash_of(self.name, withdrawal.get("address")),
            ):
                return self._payment(payment_hash, withdrawal)
        return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)

    def _payment(self, payment_hash: str, data: dict[str, Any]) -> PaymentResult:
        withdrawal_id = field(self.name, data, "id", str)
        reference = data.get("reference")
        if reference is not None and hash_of(self.name, reference) != payment_hash:
            raise LightningProtocolError("answered with a withdrawal for another invoice", backend=self.name)
        self._payments.put(payment_hash, withdrawal_id)
        status = field(self.name, data, "status", str)
        fee = data.get("fee")
        fee_msat = msat_of_sats(self.name, fee, "fee") if fee is not None else 0
        if status in UNDER_WAY:
            return PaymentResult(PaymentStatus.PENDING, payment_hash, fee_msat=fee_msat)
        result = SENT.get(status, PaymentStatus.UNKNOWN)
        error = None
        if result is not PaymentStatus.SETTLED:
            reason = data.get("error")
            error = reason[:200] if isinstance(reason, str) and reason else f"withdrawal {status[:32]}"
        return PaymentResult(result, payment_hash, fee_msat=fee_msat, error=error)

    async def node_info(self) -> NodeInfo:
        """OpenNode has no node of the account's own: its identity is a hash of the API address and
        of the key (stable per account key, the key cannot be recovered from it)."""
        return NodeInfo(pubkey=self._account, alias="OpenNode", network=self.network, backend=self.name)


def _charge_id(kind: str, data: dict[str, Any]) -> str:
    charge_id: str = field(kind, data, "id", str)
    if not 0 < len(charge_id) <= 128:
        raise LightningProtocolError("answered an invalid charge id", backend=kind)
    return charge_id


def _lightning(data: dict[str, Any]) -> dict[str, Any]:
    """The Lightning part of a charge: ``lightning`` (v2) or ``lightning_invoice`` (v1)."""
    for name in ("lightning", "lightning_invoice"):
        value = data.get(name)
        if isinstance(value, dict):
            return value
    return {}


def _payreq(data: dict[str, Any]) -> Any:
    return _lightning(data).get("payreq")


def open_backend(connection: Connection, env: BackendEnv) -> OpenNode:
    """``opennode://?key=<API key>`` (api.opennode.com) or ``opennode://host:port?key=…&tls=0``."""
    return OpenNode(open_api(connection, env.network, PUBLIC_HOSTS), connection)
