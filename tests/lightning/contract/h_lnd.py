"""LND's REST API in the contract suite, against the fake node of :mod:`tests.lightning.fakes.lnd`
(HTTPS pinned to its own certificate, real macaroons, LND's JSON over real HTTP on 127.0.0.1).

Every fault and every payment outcome can be brought about: the fake stands for the network and
pays the contract's foreign invoices with the preimages the harness keeps (``PREIMAGES``).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from boltgate.lightning.base import LightningBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import FAULTS, PREIMAGES, Harness
from tests.lightning.fakes.lnd import ADMIN, FakeLnd

KIND = "lnd-rest"


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = FakeLnd(tmp_path, preimage_of=PREIMAGES.get)
    await fake.start()
    env = BackendEnv(data_dir=tmp_path, network="regtest")
    params = {"timeout": 1, "pay_timeout": 1, "heartbeat": 2}
    backend = open_backend(fake.url(**params), env)
    forged = fake.bake(ADMIN, root_key=secrets.token_bytes(32))  # the same rights, another node's key

    def wrong_credentials() -> LightningBackend:
        return open_backend(fake.url(forged, **params), env)

    async def settle(payment_hash: str) -> None:
        fake.settle(payment_hash)

    async def pay_outcome(outcome: str) -> None:
        fake.pay_outcome = outcome

    macaroons = [fake.admin_macaroon, fake.invoice_macaroon, forged]
    try:
        yield Harness(
            kind=KIND,
            backend=backend,
            settle=settle,
            fault=fake.set_fault,
            faults=frozenset(FAULTS),
            wrong_credentials=wrong_credentials,
            pay_outcome=pay_outcome,
            secrets=[m.hex() for m in macaroons]
            + [base64.urlsafe_b64encode(m).decode().rstrip("=") for m in macaroons],
        )
    finally:
        await backend.close()
        await fake.stop()
