"""What the backend contract suite needs from each backend: a :class:`Harness`.

Each ``h_<kind>.py`` module beside this one defines ``KIND`` and an async context manager
``harness(tmp_path)`` that starts the backend's counterpart on 127.0.0.1 (a real server, or a fake
that replays the documented JSON shapes over real HTTP, a websocket or a unix socket), opens the
backend with :func:`boltgate.lightning.registry.open_backend` from a connection URL, and yields a
:class:`Harness`. ``test_contract.py`` finds the modules and runs every case against each.

Fault names a harness can inject (``faults`` lists those it supports; a case needing another is
skipped for that backend, and the skip says so):

- ``ok`` — normal service (also ends any other fault);
- ``refused`` — nothing listens: connections are refused (the stream, if any, drops);
- ``error5xx`` — every request is answered with a server error (HTTP 5xx, or the protocol's
  "internal" error);
- ``slow`` — answers come later than the backend's timeout (the harness opens the backend with
  ``timeout=1``);
- ``garbage`` — answers are malformed (not JSON, or JSON of the wrong shape);
- ``wrong_amount`` — ``create_invoice`` answers with a valid invoice for another amount.

Outgoing payment outcomes (``pay_outcome``): ``settled``, ``failed``, ``pending``, and ``drop``
(the request reaches the node, the node pays, and the connection is cut before the answer).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import coincurve

from boltgate.lightning import bolt11
from boltgate.lightning.base import LightningBackend

# payment hash (hex) -> preimage (hex) of every foreign invoice made here: a fake paying one of
# them looks its preimage up (a real network would learn it from the payee)
PREIMAGES: dict[str, str] = {}

FAULTS = ("ok", "refused", "error5xx", "slow", "garbage", "wrong_amount")
OUTCOMES = ("settled", "failed", "pending", "drop")


@dataclass
class Harness:
    kind: str
    backend: LightningBackend
    # Pay an invoice of the backend from outside (a customer paying): payment hash in hex.
    settle: Callable[[str], Awaitable[None]]
    # Bring a fault about (see the module docstring); ``ok`` ends it.
    fault: Callable[[str], Awaitable[None]]
    faults: frozenset[str]
    # The same counterpart, opened with a wrong secret (the backend must say LightningRejected).
    wrong_credentials: Callable[[], LightningBackend] | None
    # Decide what the counterpart does with the next outgoing payment; None: the backend cannot pay.
    pay_outcome: Callable[[str], Awaitable[None]] | None
    outcomes: frozenset[str] = frozenset(OUTCOMES)
    # Secrets of the connection URL: none may appear in an error message or a repr.
    secrets: list[str] = field(default_factory=list)
    network: str = "regtest"
    # Whether settlements are pushed (stream/notifications/websocket) rather than only polled.
    streams: bool = True
    # Feature gaps the backend documents (e.g. "description_hash"), skipped with the reason.
    lacks: dict[str, str] = field(default_factory=dict)


def foreign_invoice(
    amount_msat: int, *, network: str = "regtest", description: str = "outgoing"
) -> tuple[str, str]:
    """A real signed invoice of another node, to be paid by the backend: (bolt11, preimage hex)."""
    preimage = secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).digest()
    PREIMAGES[payment_hash.hex()] = preimage.hex()
    invoice = bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency=bolt11.NETWORK_PREFIXES[network],
        payment_hash=payment_hash,
        payment_secret=secrets.token_bytes(32),
        amount_msat=amount_msat,
        timestamp=int(time.time()),
        description=description,
        expiry=3600,
    )
    return invoice, preimage.hex()
