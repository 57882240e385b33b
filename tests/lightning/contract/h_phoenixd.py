"""phoenixd in the contract suite: the backend against the fake phoenixd of
:mod:`tests.lightning.fakes.phoenixd` (real HTTP and websocket on 127.0.0.1).

Every fault can be injected. An outgoing payment can be settled (or cut after paying) only when
the fake knows the invoice's preimage: the fake stands for the network, and the contract's
foreign invoices keep their preimages in the test. When the shared harness publishes them
(``harness.PREIMAGES``: payment hash hex -> preimage hex) the ``settled`` and ``drop`` cases run;
until then they are skipped here and covered by ``tests/lightning/test_phoenixd.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from boltgate.lightning.base import LightningBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract import harness as harness_module
from tests.lightning.contract.harness import FAULTS, Harness
from tests.lightning.fakes.phoenixd import FakePhoenixd

KIND = "phoenixd"


def _shared_preimage(payment_hash: str) -> str | None:
    shared = getattr(harness_module, "PREIMAGES", None)
    return shared.get(payment_hash) if isinstance(shared, dict) else None


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = FakePhoenixd(preimage_of=_shared_preimage)
    await fake.start()
    env = BackendEnv(data_dir=tmp_path, network="regtest")
    params = "timeout=1&pay_timeout=1"
    backend = open_backend(f"phoenixd://:{fake.password}@{fake.url_host}?{params}", env)
    wrong = "wrong-" + fake.password[:16]

    def wrong_credentials() -> LightningBackend:
        return open_backend(f"phoenixd://:{wrong}@{fake.url_host}?{params}", env)

    outcomes = {"failed", "pending"}
    if isinstance(getattr(harness_module, "PREIMAGES", None), dict):
        outcomes |= {"settled", "drop"}
    try:
        yield Harness(
            kind=KIND,
            backend=backend,
            settle=fake.settle,
            fault=fake.set_fault,
            faults=frozenset(FAULTS),
            wrong_credentials=wrong_credentials,
            pay_outcome=fake.set_pay_outcome,
            outcomes=frozenset(outcomes),
            secrets=[fake.password, fake.limited_password, wrong],
        )
    finally:
        await backend.close()
        await fake.stop()
