"""Background work of the settlement path: the watcher, the expiry sweeper and the reconciler.

- The **watcher** follows the backend's settlement stream from a persisted cursor and marks
  payments paid. It is idempotent (conditional updates), so a replay after a crash is harmless.
- The **sweeper** expires unpaid payments past their expiry, asking the backend first: a payment
  settled in its last second is marked paid, not expired.
- The **reconciler** runs at start-up and every N seconds, asks the backend about every open (and
  recently expired) payment, and repairs anything the stream missed (a crash, a dropped stream,
  a settlement made while the gateway was stopped).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from boltgate.db.engine import Database
from boltgate.kit.clock import Clock
from boltgate.lightning.base import InvoiceStatus, LightningBackend, Settlement
from boltgate.payment import repository, service
from boltgate.worker import cursors

log = structlog.get_logger(__name__)
LATE_SETTLEMENT_WINDOW = timedelta(hours=24)


async def record_settlement(db: Database, settlement: Settlement, cursor: str, clock: Clock) -> bool:
    """Apply one settlement and move the stream cursor past it, in one transaction."""
    async with db.writing() as session:
        result = await service.apply_settlement(
            session, settlement.payment_hash, settlement.amount_received_msat, settlement.settled_at, clock()
        )
        await cursors.advance(session, cursor, settlement.settle_index)
    return result is not None


async def watch_settlements(db: Database, backend: LightningBackend, clock: Clock) -> None:
    """Follow the settlement stream forever, resuming from the stored cursor (one per node)."""
    while True:
        try:
            info = await backend.node_info()
            name = cursor_name(info.backend, info.pubkey)
            async with db.reading() as session:
                after = await cursors.get(session, name)
            async for settlement in backend.settlements(after):
                await record_settlement(db, settlement, name, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("settlement_stream_failed")
            await asyncio.sleep(1.0)


def cursor_name(backend: str, pubkey: str) -> str:
    return f"settle_index:{backend}:{pubkey}"


async def reconcile_once(db: Database, backend: LightningBackend, clock: Clock, batch: int = 200) -> int:
    """Ask the backend about every open payment; returns how many were found paid."""
    repaired = 0
    since = clock() - LATE_SETTLEMENT_WINDOW
    for status in ("unpaid", "expired"):
        after = ""
        while True:
            async with db.reading() as session:
                page = await repository.open_for_reconcile(session, status, since, after, batch)
            for _id, payment_hash in page:
                state = await backend.lookup_invoice(payment_hash)
                if state.status is InvoiceStatus.SETTLED and state.settled_at is not None:
                    async with db.writing() as session:
                        result = await service.apply_settlement(
                            session, payment_hash, state.amount_received_msat, state.settled_at, clock()
                        )
                    repaired += result is not None
            if len(page) < batch:
                break
            after = page[-1][0]
    if repaired:
        log.info("reconciled", repaired=repaired)
    return repaired


async def expire_due(db: Database, backend: LightningBackend, clock: Clock, batch: int = 200) -> int:
    """Expire unpaid payments past their expiry (checking the backend for a last-second payment)."""
    expired = 0
    while True:
        async with db.reading() as session:
            due = await repository.due_for_expiry(session, clock(), batch)
        for _id, payment_hash in due:
            state = await backend.lookup_invoice(payment_hash)
            async with db.writing() as session:
                if state.status is InvoiceStatus.SETTLED and state.settled_at is not None:
                    await service.apply_settlement(
                        session, payment_hash, state.amount_received_msat, state.settled_at, clock()
                    )
                    continue
                payment = await repository.get_by_hash(session, payment_hash)
                if payment is not None and await service.expire(session, payment, clock()):
                    expired += 1
        if len(due) < batch:
            return expired


async def every(interval: float, job_name: str, job: object) -> None:
    """Run ``job()`` now and then every ``interval`` seconds; failures are logged, never fatal."""
    assert callable(job)
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job_failed", job=job_name)
        await asyncio.sleep(interval)
