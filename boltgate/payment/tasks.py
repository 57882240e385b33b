"""Background work of the settlement path: the watcher, the poller, the expiry sweeper and the
reconciler.

- The **watcher** follows each backend's settlement stream and marks payments paid. Where the
  backend numbers its settlements (``resumable``) it resumes from a persisted cursor; where it
  does not, every (re)connection is followed by a catch-up that asks about the open payments, so
  what was settled while the stream was down is found. A dropped stream is reconnected with
  backoff (0.5 s doubling to 30 s). Marking paid is idempotent (conditional updates), so a replay
  or two watchers on two replicas never credit a payment twice.
- The **poller** replaces the watcher on a backend without any push (custodial APIs): it asks
  about the open payments every few seconds.
- The **sweeper** expires unpaid payments past their expiry, asking the backend first: a payment
  settled in its last second is marked paid, not expired. While the backend cannot answer,
  nothing is expired.
- The **reconciler** runs at start-up and every N seconds, asks the backend about every open (and
  recently expired) payment, and repairs anything the stream missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from boltgate.db.engine import Database
from boltgate.db.errors import log_failure
from boltgate.kit.clock import Clock
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningBackend,
    LightningError,
    LightningUnsupported,
    Settlement,
)
from boltgate.payment import repository, service
from boltgate.worker import cursors

log = structlog.get_logger(__name__)
LATE_SETTLEMENT_WINDOW = timedelta(hours=24)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
STABLE_SECONDS = 60.0  # a stream up this long resets the backoff
CATCH_UP_DELAY = 1.0  # after a (re)connection of a stream without indexes


async def record_settlement(db: Database, settlement: Settlement, cursor: str | None, clock: Clock) -> bool:
    """Apply one settlement and move the stream cursor past it, in one transaction."""
    async with db.writing() as session:
        result = await service.apply_settlement(
            session, settlement.payment_hash, settlement.amount_received_msat, settlement.settled_at, clock()
        )
        if cursor is not None and settlement.settle_index > 0:
            await cursors.advance(session, cursor, settlement.settle_index)
    return result is not None


Resolve = Callable[[str | None], Awaitable[LightningBackend]]


def legs_of(backend: LightningBackend) -> tuple[LightningBackend, ...]:
    """The backends to watch: both of a failover pair, else the backend itself."""
    legs = getattr(backend, "legs", None)
    return tuple(legs) if legs else (backend,)


async def watch_settlements(
    db: Database, backend: LightningBackend, clock: Clock, *, poll_interval: float = 2.0
) -> None:
    """Watch every leg of the gateway's ``backend`` forever (a stream each, or polling where
    there is none); its payments are those without a merchant backend."""
    await asyncio.gather(
        *(watch_leg(db, leg, backend, clock, poll_interval, ref=None) for leg in legs_of(backend))
    )


async def watch_merchant_backends(
    db: Database,
    resolve: Resolve,
    clock: Clock,
    *,
    poll_interval: float = 2.0,
    every_seconds: float = 15.0,
    wake: asyncio.Event | None = None,
    watched: set[str] | None = None,
) -> None:
    """Watch the merchants' own backends that have open payments (a watcher each, started when a
    payment is made on it and stopped when none is open any more). ``wake`` set: look now (a
    payment was just made on a backend not watched yet); ``watched`` is kept up to date."""
    watching: dict[str, asyncio.Task[None]] = {}
    wake = wake or asyncio.Event()
    try:
        while True:
            try:
                async with db.reading() as session:
                    refs = set(await repository.open_backend_refs(session, clock() - timedelta(minutes=10)))
                for ref in refs - watching.keys():
                    leg = await resolve(ref)
                    watching[ref] = asyncio.create_task(
                        watch_leg(db, leg, leg, clock, poll_interval, ref=ref), name=f"watcher-{ref}"
                    )
                for ref in watching.keys() - refs:
                    watching.pop(ref).cancel()
                if watched is not None:
                    watched.clear()
                    watched.update(watching)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "merchant_watchers_failed", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), every_seconds)
            if wake.is_set():
                wake.clear()
                await asyncio.sleep(0.5)  # the payment that woke us is committed by then
    finally:
        for task in watching.values():
            task.cancel()


async def watch_leg(
    db: Database,
    leg: LightningBackend,
    top: LightningBackend,
    clock: Clock,
    poll_interval: float,
    *,
    ref: str | None = None,
) -> None:
    """Follow one backend's settlements. ``top`` is the backend the payments of ``ref`` (None:
    the gateway's) are looked up through when catching up or polling."""
    delay = BACKOFF_FIRST
    while True:
        started = time.monotonic()
        catch_up: asyncio.Task[int] | None = None
        try:
            info = await leg.node_info()
            name = cursor_name(info.backend, info.pubkey) if leg.resumable else None
            after = 0
            if name is not None:
                async with db.reading() as session:
                    after = await cursors.get(session, name)
            else:
                catch_up = asyncio.create_task(
                    _later(CATCH_UP_DELAY, lambda: poll_open(db, top, clock, ref=ref))
                )
            async for settlement in leg.settlements(after):
                await record_settlement(db, settlement, name, clock)
            raise LightningError("the settlement stream ended", backend=leg.name)
        except asyncio.CancelledError:
            raise
        except LightningUnsupported:
            log.info("settlements_polled", backend=leg.name, every_seconds=poll_interval)
            await poll_forever(db, top, clock, poll_interval, ref=ref)
        except LightningError as exc:
            if time.monotonic() - started > STABLE_SECONDS:
                delay = BACKOFF_FIRST
            log.warning("settlement_stream_dropped", backend=leg.name, error=str(exc), retry_in=delay)
        except Exception as exc:
            log_failure(log, "settlement_stream_failed", exc, backend=leg.name)
        finally:
            if catch_up is not None and not catch_up.done():
                catch_up.cancel()
        await asyncio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)


async def _later(seconds: float, job: Callable[[], Awaitable[int]]) -> int:
    await asyncio.sleep(seconds)
    return await job()


async def poll_forever(
    db: Database, backend: LightningBackend, clock: Clock, interval: float, *, ref: str | None = None
) -> None:
    while True:
        try:
            await poll_open(db, backend, clock, ref=ref)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_failure(log, "settlement_poll_failed", exc, backend=backend.name)
        await asyncio.sleep(interval)


def cursor_name(backend: str, pubkey: str) -> str:
    return f"settle_index:{backend}:{pubkey}"


async def poll_open(
    db: Database, backend: LightningBackend, clock: Clock, batch: int = 200, *, ref: str | None = None
) -> int:
    """Ask ``backend`` about the unpaid payments of ``ref`` (None: the gateway's own)."""
    return await _reconcile(db, _only(backend), clock, ("unpaid",), batch, ref=ref)


async def reconcile_once(
    db: Database, backend: LightningBackend, clock: Clock, batch: int = 200, *, resolve: Resolve | None = None
) -> int:
    """Ask about every open (and recently expired) payment, each through the backend that made
    it; returns how many were found paid. A backend that fails is skipped for this pass."""
    return await _reconcile(db, resolve or _only(backend), clock, ("unpaid", "expired"), batch)


def _only(backend: LightningBackend) -> Resolve:
    async def resolve(_ref: str | None) -> LightningBackend:
        return backend

    return resolve


async def _reconcile(
    db: Database,
    resolve: Resolve,
    clock: Clock,
    statuses: tuple[str, ...],
    batch: int,
    *,
    ref: str | repository.AnyBackend | None = repository.ANY_BACKEND,
) -> int:
    repaired = 0
    failing: set[str | None] = set()
    since = clock() - LATE_SETTLEMENT_WINDOW
    for status in statuses:
        after = ""
        while True:
            async with db.reading() as session:
                page = await repository.open_for_reconcile(
                    session,
                    status,
                    since,
                    after,
                    batch,
                    ref=ref,
                )
            for _id, payment_hash, backend_id, row_ref in page:
                if row_ref in failing:
                    continue
                try:
                    backend = await resolve(row_ref)
                    state = await backend.lookup_invoice(payment_hash, backend_invoice_id=backend_id)
                except LightningError as exc:
                    failing.add(row_ref)
                    log.warning("reconcile_skipped_backend", backend=exc.backend, ref=row_ref, error=str(exc))
                    continue
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


async def expire_due(
    db: Database, backend: LightningBackend, clock: Clock, batch: int = 200, *, resolve: Resolve | None = None
) -> int:
    """Expire unpaid payments past their expiry, asking the backend that made each first (a
    last-second payment is marked paid). A payment whose backend cannot answer is not expired
    in this pass."""
    resolve = resolve or _only(backend)
    expired = 0
    failing: set[str | None] = set()
    after: tuple[datetime, str] | None = None
    while True:
        async with db.reading() as session:
            due = await repository.due_for_expiry(session, clock(), batch, after)
        for (payment_id, payment_hash, backend_id, row_ref), expires_at in due:
            after = (expires_at, payment_id)
            if row_ref in failing:
                continue
            try:
                state = await (await resolve(row_ref)).lookup_invoice(
                    payment_hash, backend_invoice_id=backend_id
                )
            except LightningError as exc:
                failing.add(row_ref)
                log.warning("expiry_postponed", backend=exc.backend, ref=row_ref, error=str(exc))
                continue
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
        except Exception as exc:
            log_failure(log, "job_failed", exc, job=job_name)
        await asyncio.sleep(interval)
