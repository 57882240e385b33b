"""OpenNode in the contract suite: its fake API (tests/lightning/fakes/opennode.py) on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.lightning.contract.harness import Harness
from tests.lightning.fakes.opennode import FakeOpenNode, custodial_harness

KIND = "opennode"


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    lacks = {"description_hash": "a charge cannot commit to a description hash given by the caller"}
    async with custodial_harness(FakeOpenNode(), tmp_path, lacks=lacks) as made:
        yield made
