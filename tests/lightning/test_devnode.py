"""The dev node: real signed invoices, real preimages, a persisted key, settlement on command."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import coincurve
import pytest

from boltgate.lightning import bolt11
from boltgate.lightning.base import InvoiceStatus, PaymentStatus
from boltgate.lightning.devnode import DevNode


async def test_invoice_is_signed_by_the_persisted_node_key(tmp_path):
    node = DevNode(tmp_path / "n", network="regtest")
    created = await node.create_invoice(amount_msat=21_000, description="coffee", expiry_seconds=600)
    invoice = bolt11.decode(created.payment_request)
    assert created.payment_request.startswith("lnbcrt210n1")
    assert invoice.payee == node.pubkey
    assert invoice.amount_msat == 21_000
    assert invoice.description == "coffee"
    assert invoice.expiry == 600
    assert invoice.min_final_cltv_expiry == 18
    assert invoice.payment_secret is not None and len(invoice.payment_secret) == 32
    assert invoice.has_feature(bolt11.FEATURE_PAYMENT_SECRET)
    assert oct(os.stat(tmp_path / "n" / "node.key").st_mode & 0o777) == "0o600"
    await node.close()
    again = DevNode(tmp_path / "n")
    assert again.pubkey == node.pubkey  # the key survives a restart
    assert (await again.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
    await again.close()


@pytest.mark.parametrize(
    ("network", "prefix"), [("mainnet", "lnbc"), ("testnet", "lntb"), ("signet", "lntbs")]
)
async def test_network_is_configurable(tmp_path, network, prefix):
    node = DevNode(tmp_path / network, network=network)
    created = await node.create_invoice(amount_msat=1000)
    assert created.payment_request.startswith(prefix + "10n1")
    assert bolt11.decode(created.payment_request).currency == prefix[2:]


async def test_description_hash(tmp_path):
    node = DevNode(tmp_path / "n")
    digest = hashlib.sha256(b"a long description").digest()
    created = await node.create_invoice(amount_msat=1000, description_hash=digest)
    invoice = bolt11.decode(created.payment_request)
    assert invoice.description_hash == digest and invoice.description is None


async def test_pay_returns_the_real_preimage_and_settles_once(tmp_path):
    node = DevNode(tmp_path / "n", poll_interval=0.01)
    created = await node.create_invoice(amount_msat=5000)
    result = await node.pay_invoice(created.payment_request)
    assert result.status is PaymentStatus.SETTLED
    assert hashlib.sha256(bytes.fromhex(result.preimage)).hexdigest() == created.payment_hash
    state = await node.lookup_invoice(created.payment_hash)
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 5000
    second = await node.pay_invoice(created.payment_request)
    assert second.status is PaymentStatus.FAILED and second.preimage is None
    stream = node.settlements(0)
    first = await asyncio.wait_for(anext(stream), 1)
    assert first.payment_hash == created.payment_hash and first.settle_index == 1
    await stream.aclose()


async def test_settlement_stream_wakes_on_a_new_settlement(tmp_path):
    node = DevNode(tmp_path / "n", poll_interval=5)
    invoices = [await node.create_invoice(amount_msat=1000) for _ in range(3)]
    stream = node.settlements(0)
    waiter = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    await node.pay_payment_hash(invoices[1].payment_hash)
    settlement = await asyncio.wait_for(waiter, 1)
    assert time.monotonic() - started < 1  # woken, not polled after 5 s
    assert settlement.payment_hash == invoices[1].payment_hash
    await stream.aclose()


async def test_cannot_pay_another_nodes_invoice_or_an_expired_one(tmp_path):
    node = DevNode(tmp_path / "n")
    foreign = bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency="bcrt",
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        amount_msat=1000,
        timestamp=int(time.time()),
        description="elsewhere",
    )
    result = await node.pay_invoice(foreign)
    assert result.status is PaymentStatus.FAILED and "no route" in (result.error or "")
    expired = await node.create_invoice(amount_msat=1000, expiry_seconds=1)
    node._db.execute("UPDATE invoices SET expires_at = 0 WHERE payment_hash = ?", (expired.payment_hash,))
    result = await node.pay_invoice(expired.payment_request)
    assert result.status is PaymentStatus.FAILED and "expired" in (result.error or "")
    assert (await node.lookup_invoice(expired.payment_hash)).status is InvoiceStatus.CANCELED
    assert (await node.lookup_invoice("00" * 32)).status is InvoiceStatus.UNKNOWN
    garbage = await node.pay_invoice("lnbcrt1garbage")
    assert garbage.status is PaymentStatus.FAILED


async def test_two_processes_share_one_node_directory(tmp_path):
    one = DevNode(tmp_path / "n")
    two = DevNode(tmp_path / "n")
    created = await one.create_invoice(amount_msat=1000)
    assert (await two.pay_payment_hash(created.payment_hash)).status is PaymentStatus.SETTLED
    assert (await one.lookup_invoice(created.payment_hash)).status is InvoiceStatus.SETTLED
