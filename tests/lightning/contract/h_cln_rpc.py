"""Core Lightning over its JSON-RPC unix socket, against the fake node of tests/lightning/fakes/cln.py.

The socket has no credentials of its own (file permissions are its access control), so the
wrong-credentials case does not apply; a description hash alone cannot be committed to (see
boltgate/lightning/cln.py).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.lightning.contract.harness import Harness
from tests.lightning.fakes.cln import cln_harness

KIND = "cln-rpc"


def harness(tmp_path: Path) -> AbstractAsyncContextManager[Harness]:
    return cln_harness(KIND, tmp_path)
