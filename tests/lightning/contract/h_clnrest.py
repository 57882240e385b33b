"""Core Lightning's CLNRest (TLS pinned to the node's certificate, a rune in the ``Rune`` header),
against the fake node of tests/lightning/fakes/cln.py."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.lightning.contract.harness import Harness
from tests.lightning.fakes.cln import cln_harness

KIND = "clnrest"


def harness(tmp_path: Path) -> AbstractAsyncContextManager[Harness]:
    return cln_harness(KIND, tmp_path)
