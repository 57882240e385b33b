"""Strike in the contract suite: its fake API (tests/lightning/fakes/strike.py) on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.lightning.contract.harness import Harness
from tests.lightning.fakes.opennode import custodial_harness
from tests.lightning.fakes.strike import FakeStrike

KIND = "strike"


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with custodial_harness(FakeStrike(), tmp_path) as made:
        yield made
