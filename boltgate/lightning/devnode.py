"""The built-in dev Lightning node: real signed BOLT11 invoices and real preimages, no network.

It keeps a persisted secp256k1 node key and its invoices in ``<data_dir>/devnode/`` (a key file
and a small SQLite file of its own, separate from the gateway's database so that it behaves like
a separate node: ``boltgate dev pay`` settles invoices while the gateway is stopped, and the
gateway learns about it from the settlement stream or the reconciler, as with a real node).

Settling is "paying": :meth:`DevNode.pay_invoice` pays an invoice this node issued and returns
its preimage, which lets L402 flows run end to end. Invoices of other nodes fail with no route.
Each settlement gets a ``settle_index`` (as LND numbers them) that orders the settlement stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import coincurve

from boltgate.db.sqlite_inline import retry_busy
from boltgate.lightning import bolt11
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
)
from boltgate.lightning.connection import Connection
from boltgate.lightning.registry import BackendEnv

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    payment_hash TEXT PRIMARY KEY,
    preimage TEXT NOT NULL,
    bolt11 TEXT NOT NULL,
    amount_msat INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    settled_at REAL,
    settle_index INTEGER UNIQUE,
    amount_received_msat INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outgoing (
    payment_hash TEXT PRIMARY KEY,
    bolt11 TEXT NOT NULL,
    amount_msat INTEGER NOT NULL,
    status TEXT NOT NULL,
    preimage TEXT,
    created_at REAL NOT NULL
);
"""


_INSERT_INVOICE = (
    "INSERT INTO invoices (payment_hash, preimage, bolt11, amount_msat, created_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _load_or_create_key(path: Path) -> coincurve.PrivateKey:
    if path.exists():
        return coincurve.PrivateKey(bytes.fromhex(path.read_text().strip()))
    key = coincurve.PrivateKey()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.secret.hex())
    return key


class DevNode:
    """A single-process Lightning node simulation; safe to share its directory between processes."""

    name = "dev"
    resumable = True

    def __init__(
        self,
        directory: Path,
        *,
        network: str = "regtest",
        min_final_cltv_expiry: int = 18,
        poll_interval: float = 0.1,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._key = _load_or_create_key(directory / "node.key")
        self.pubkey = self._key.public_key.format(compressed=True)
        self.network = network
        self._currency = bolt11.NETWORK_PREFIXES[network]
        self._min_final_cltv_expiry = min_final_cltv_expiry
        self._poll_interval = poll_interval
        self._db = sqlite3.connect(
            directory / "devnode.sqlite3", timeout=0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=15000")  # only while setting up, then 0:
        self._db.executescript(_SCHEMA)  # waits for other processes happen in retry_busy
        self._db.execute("PRAGMA busy_timeout=0")
        self._settled = asyncio.Event()

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        now = int(time.time())
        invoice = bolt11.encode(
            private_key=self._key,
            currency=self._currency,
            payment_hash=payment_hash,
            payment_secret=secrets.token_bytes(32),
            amount_msat=amount_msat,
            timestamp=now,
            description=None if description_hash else (description or ""),
            description_hash=description_hash,
            expiry=expiry_seconds,
            min_final_cltv_expiry=self._min_final_cltv_expiry,
        )
        row = (payment_hash.hex(), preimage.hex(), invoice, amount_msat, now, now + expiry_seconds)
        await retry_busy(lambda: self._db.execute(_INSERT_INVOICE, row))
        return CreatedInvoice(
            payment_hash=payment_hash.hex(),
            payment_request=invoice,
            backend_invoice_id=payment_hash.hex(),
            amount_msat=amount_msat,
            expires_at=datetime.fromtimestamp(now + expiry_seconds, UTC),
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        row = self._db.execute(
            "SELECT state, expires_at, settled_at, amount_received_msat FROM invoices WHERE payment_hash = ?",
            (payment_hash.lower(),),
        ).fetchone()
        if row is None:
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        state, expires_at, settled_at, received = row
        if state == "settled":
            return InvoiceState(
                payment_hash=payment_hash,
                status=InvoiceStatus.SETTLED,
                amount_received_msat=received,
                settled_at=datetime.fromtimestamp(settled_at, UTC),
            )
        status = InvoiceStatus.CANCELED if expires_at <= time.time() else InvoiceStatus.OPEN
        return InvoiceState(payment_hash=payment_hash, status=status)

    async def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        cursor = after_index
        while True:
            rows = self._db.execute(
                "SELECT payment_hash, amount_received_msat, settled_at, settle_index FROM invoices"
                " WHERE settle_index > ? ORDER BY settle_index LIMIT 500",
                (cursor,),
            ).fetchall()
            for payment_hash, received, settled_at, index in rows:
                cursor = index
                yield Settlement(
                    payment_hash=payment_hash,
                    amount_received_msat=received,
                    settled_at=datetime.fromtimestamp(settled_at, UTC),
                    settle_index=index,
                )
            if len(rows) == 500:
                continue
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self._poll_interval)

    def settle_index(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(settle_index), 0) FROM invoices").fetchone()
        return int(row[0])

    async def pay_invoice(
        self, bolt11_invoice: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        """Pay an invoice: only this node's own invoices have a route."""
        try:
            decoded = bolt11.decode(bolt11_invoice)
        except bolt11.Bolt11Error as exc:
            return PaymentResult(PaymentStatus.FAILED, "", error=f"invalid invoice: {exc}")
        payment_hash = decoded.payment_hash.hex()
        if decoded.payee != self.pubkey:
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error="no route to the payee")
        return await self._settle(payment_hash, bolt11_invoice, amount_msat)

    async def pay_payment_hash(self, payment_hash: str) -> PaymentResult:
        """Pay this node's own invoice found by its payment hash (``boltgate dev pay <hash>``)."""
        row = self._db.execute(
            "SELECT bolt11 FROM invoices WHERE payment_hash = ?", (payment_hash.lower(),)
        ).fetchone()
        if row is None:
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error="unknown payment hash")
        return await self._settle(payment_hash.lower(), row[0], None)

    async def _settle(self, payment_hash: str, invoice: str, amount_msat: int | None) -> PaymentResult:
        db = self._db
        await retry_busy(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            row = db.execute(
                "SELECT preimage, amount_msat, expires_at, state FROM invoices WHERE payment_hash = ?",
                (payment_hash,),
            ).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return PaymentResult(PaymentStatus.FAILED, payment_hash, error="unknown invoice")
            preimage, invoice_msat, expires_at, state = row
            error = None
            if state == "settled":
                error = "invoice is already paid"
            elif expires_at <= time.time():
                error = "invoice expired"
            elif amount_msat is not None and amount_msat < invoice_msat:
                error = "amount below the invoice amount"
            if error:
                db.execute("ROLLBACK")
                return PaymentResult(PaymentStatus.FAILED, payment_hash, error=error)
            paid = amount_msat or invoice_msat
            now = time.time()
            db.execute(
                "UPDATE invoices SET state = 'settled', settled_at = ?, amount_received_msat = ?,"
                " settle_index = (SELECT COALESCE(MAX(settle_index), 0) + 1 FROM invoices)"
                " WHERE payment_hash = ?",
                (now, paid, payment_hash),
            )
            db.execute(
                "INSERT OR REPLACE INTO outgoing (payment_hash, bolt11, amount_msat, status, preimage,"
                " created_at) VALUES (?, ?, ?, 'settled', ?, ?)",
                (payment_hash, invoice, paid, preimage, now),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._settled.set()
        return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage=preimage)

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        row = self._db.execute(
            "SELECT status, preimage FROM outgoing WHERE payment_hash = ?", (payment_hash.lower(),)
        ).fetchone()
        if row is None:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        return PaymentResult(PaymentStatus(row[0]), payment_hash, preimage=row[1])

    async def node_info(self) -> NodeInfo:
        return NodeInfo(pubkey=self.pubkey.hex(), alias="boltgate-dev", network=self.network, backend="dev")

    async def close(self) -> None:
        self._db.close()


def open_backend(connection: Connection, env: BackendEnv) -> DevNode:
    """``dev://``: the node lives in ``<data_dir>/devnode`` (``dev:///other/dir`` to put it elsewhere)."""
    directory = Path(connection.path) if connection.path not in ("", "/") else env.data_dir / "devnode"
    return DevNode(
        directory,
        network=env.network,
        min_final_cltv_expiry=env.min_final_cltv_expiry,
        poll_interval=env.poll_interval,
    )
