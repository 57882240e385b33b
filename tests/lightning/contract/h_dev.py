"""The built-in dev node in the contract suite (it cannot fail: only ``ok``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from boltgate.lightning.devnode import DevNode
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import Harness

KIND = "dev"


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    node = open_backend(f"dev://{tmp_path / 'devnode'}", BackendEnv(data_dir=tmp_path))
    assert isinstance(node, DevNode)

    async def settle(payment_hash: str) -> None:
        result = await node.pay_payment_hash(payment_hash)
        assert result.preimage, result

    async def fault(name: str) -> None:
        assert name == "ok"

    try:
        yield Harness(
            kind=KIND,
            backend=node,
            settle=settle,
            fault=fault,
            faults=frozenset({"ok"}),
            wrong_credentials=None,
            pay_outcome=None,  # it pays only its own invoices (covered by tests/lightning/test_devnode.py)
        )
    finally:
        await node.close()
