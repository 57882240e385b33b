"""Failover: a second backend takes new invoices while the first is down.

- New invoices go to the primary. When it is unavailable (:class:`LightningUnavailable`, which
  includes timeouts), the invoice is made on the secondary at once, the switch is logged
  (``lightning_failover_switched``) and later invoices go straight to the secondary. The primary
  is probed (``node_info``) at most every ``probe_seconds``; when it answers again, new invoices
  return to it (``lightning_failover_returned``).
- An invoice made on the secondary carries ``s:`` before its backend id, so look-ups go to the
  backend that made it. A look-up without an id (or an older one) asks the primary, then the
  secondary if the primary does not know the invoice.
- Settlements are watched on both: :attr:`legs` lists them and the watcher follows each with its
  own cursor (``boltgate.payment.tasks``).
- Outgoing payments are made by the primary only (money leaves the wallet the operator chose);
  while it is down they are refused as unavailable, never moved to the other wallet.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import structlog

from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningBackend,
    LightningError,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
)

log = structlog.get_logger(__name__)
SECONDARY = "s:"


class FailoverBackend:
    resumable = False

    def __init__(
        self, primary: LightningBackend, secondary: LightningBackend, *, probe_seconds: float = 10.0
    ):
        self.primary = primary
        self.secondary = secondary
        self.name = f"{primary.name}+{secondary.name}"
        self.legs: tuple[LightningBackend, ...] = (primary, secondary)
        self.probe_seconds = probe_seconds
        self.on_secondary = False
        self._next_probe = 0.0
        self.switches = 0

    # -- state

    def status(self) -> dict[str, Any]:
        return {
            "active": "secondary" if self.on_secondary else "primary",
            "primary": self.primary.name,
            "secondary": self.secondary.name,
            "switches": self.switches,
        }

    def _switch(self, error: LightningError) -> None:
        if not self.on_secondary:
            self.on_secondary = True
            self.switches += 1
            log.warning(
                "lightning_failover_switched",
                primary=self.primary.name,
                secondary=self.secondary.name,
                error=str(error),
            )
        self._next_probe = time.monotonic() + self.probe_seconds

    async def _maybe_return(self) -> None:
        if not self.on_secondary or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + self.probe_seconds
        try:
            await self.primary.node_info()
        except LightningError:
            return
        self.on_secondary = False
        log.warning("lightning_failover_returned", primary=self.primary.name)

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        args: dict[str, Any] = {
            "amount_msat": amount_msat,
            "description": description,
            "description_hash": description_hash,
            "expiry_seconds": expiry_seconds,
        }
        await self._maybe_return()
        if not self.on_secondary:
            try:
                return await self.primary.create_invoice(**args)
            except LightningUnavailable as exc:
                self._switch(exc)
        created = await self.secondary.create_invoice(**args)
        return CreatedInvoice(
            payment_hash=created.payment_hash,
            payment_request=created.payment_request,
            backend_invoice_id=SECONDARY + created.backend_invoice_id,
            amount_msat=created.amount_msat,
            expires_at=created.expires_at,
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        if backend_invoice_id is not None and backend_invoice_id.startswith(SECONDARY):
            return await self.secondary.lookup_invoice(
                payment_hash, backend_invoice_id=backend_invoice_id.removeprefix(SECONDARY)
            )
        if backend_invoice_id is not None:
            return await self.primary.lookup_invoice(payment_hash, backend_invoice_id=backend_invoice_id)
        state = await self.primary.lookup_invoice(payment_hash)
        if state.status is InvoiceStatus.UNKNOWN:
            return await self.secondary.lookup_invoice(payment_hash)
        return state

    def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        raise LightningUnsupported("each backend of a failover pair is watched on its own", backend=self.name)

    # -- paying

    async def pay_invoice(
        self, bolt11: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        return await self.primary.pay_invoice(bolt11, amount_msat=amount_msat, max_fee_msat=max_fee_msat)

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        result = await self.primary.lookup_payment(payment_hash)
        if result.status is PaymentStatus.UNKNOWN:
            return await self.secondary.lookup_payment(payment_hash)
        return result

    async def node_info(self) -> NodeInfo:
        """The info of the backend taking new invoices (unavailable only when both are)."""
        await self._maybe_return()
        if not self.on_secondary:
            try:
                return await self.primary.node_info()
            except LightningUnavailable as exc:
                self._switch(exc)
        return await self.secondary.node_info()

    async def close(self) -> None:
        try:
            await self.primary.close()
        finally:
            await self.secondary.close()
