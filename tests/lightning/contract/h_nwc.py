"""Nostr Wallet Connect against a fake relay and a fake wallet service, both on 127.0.0.1.

The wallet service (tests/lightning/fakes/nwc_wallet.py) is a separate websocket client of the
relay (tests/lightning/fakes/relay.py), as a real one is. ``refused`` stops the relay (the
wallet reconnects when it is back); the other faults are the wallet's. NIP-47 answers
``pay_invoice`` only once the payment is over, so a payment still in flight when the wait ends is
UNKNOWN, not PENDING (tests/lightning/test_nwc.py shows ``lookup_payment`` telling PENDING).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from boltgate.lightning.base import LightningBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import PREIMAGES, Harness
from tests.lightning.fakes.nwc_wallet import FakeWallet
from tests.lightning.fakes.relay import FakeRelay

KIND = "nwc"
_PREIMAGE = re.compile(r"[0-9a-f]{64}")


def preimage_in_hand(wallet: FakeWallet) -> None:
    """Tell the wallet the preimages of the contract's foreign invoices (``harness.PREIMAGES``):
    the payee revealing its preimage to whoever pays is the network's part; here the test is the
    payee."""
    for preimage in PREIMAGES.values():
        wallet.learn(preimage)


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    relay = FakeRelay()
    await relay.start()
    wallet = FakeWallet([relay.url])
    await wallet.start()
    await wallet.connected()
    secret = wallet.connect_client()
    stranger = secrets.token_hex(32)
    env = BackendEnv(data_dir=tmp_path)
    backend = open_backend(wallet.url(secret, timeout=1, pay_timeout=2), env)

    async def settle(payment_hash: str) -> None:
        await wallet.settle(payment_hash)

    async def fault(name: str) -> None:
        if name == "refused":
            await relay.stop()
            return
        wallet.mode = name
        if name == "ok" and not relay.running:
            await relay.start()
            await wallet.connected()

    def wrong_credentials() -> LightningBackend:
        return open_backend(wallet.url(stranger, timeout=1), env)

    async def pay_outcome(outcome: str) -> None:
        preimage_in_hand(wallet)
        wallet.pay_outcome = outcome

    try:
        yield Harness(
            kind=KIND,
            backend=backend,
            settle=settle,
            fault=fault,
            faults=frozenset({"ok", "refused", "error5xx", "slow", "garbage", "wrong_amount"}),
            wrong_credentials=wrong_credentials,
            pay_outcome=pay_outcome,
            outcomes=frozenset({"settled", "failed", "drop"}),
            secrets=[secret, stranger],
        )
    finally:
        await backend.close()
        await wallet.stop()
        await relay.stop()
