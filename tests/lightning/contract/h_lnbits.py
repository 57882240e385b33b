"""LNbits in the contract suite: a real LNbits 1.6.2 (FakeWallet) behind a fault-injecting proxy.

Each harness gets a new merchant wallet (credited, so that a refused payment is refused for its
route, not for the balance) and opens the backend with its admin key, through
:class:`~tests.lightning.fakes.faulty_proxy.FaultyProxy`. A customer pays from another wallet of
the same LNbits. Faults are the proxy's; ``wrong_amount`` rewrites LNbits' answer with a valid
invoice for another amount signed by another key.

Outgoing payments: LNbits' FakeWallet pays only the invoices it issued, so the contract's invoices
of another node fail there naturally (``failed``). It never leaves a payment in flight, so
``pending`` is LNbits' answer for one (201, ``status: pending``) given by the proxy. ``settled``
and ``drop`` need a node that can pay another node's invoice and learn its preimage, which
FakeWallet cannot: tests/lightning/test_lnbits.py covers both with LNbits' own invoices.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import coincurve

from boltgate.lightning import bolt11
from boltgate.lightning.base import LightningBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import Harness
from tests.lightning.fakes import lnbits_server
from tests.lightning.fakes.faulty_proxy import FaultyProxy, Request, Response

KIND = "lnbits"
NETWORK = "mainnet"  # FakeWallet issues lnbc invoices whatever the chain


def wrong_amount(request: Request, response: Response) -> Response | None:
    """LNbits' invoice answer with its invoice replaced by one for 1 sat more, of another node."""
    body = response.json()
    if request.method != "POST" or not isinstance(body, dict) or not isinstance(body.get("bolt11"), str):
        return None
    decoded = bolt11.decode(body["bolt11"], require_payment_secret=False)
    forged = bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency=decoded.currency,
        payment_hash=decoded.payment_hash,
        payment_secret=decoded.payment_secret or secrets.token_bytes(32),
        amount_msat=(decoded.amount_msat or 0) + 1000,
        timestamp=decoded.timestamp,
        description=decoded.description,
        description_hash=decoded.description_hash,
        expiry=decoded.expiry,
    )
    return Response.json_of(response.status, {**body, "bolt11": forged, "payment_request": forged})


def url_of(port: int, key: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"key": key, "tls": "0", **params}.items())
    return f"lnbits://127.0.0.1:{port}?{query}"


@contextlib.asynccontextmanager
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    server = await lnbits_server.shared()
    merchant = await server.new_wallet("merchant", fund_sats=100_000)
    env = BackendEnv(data_dir=tmp_path, network=NETWORK)
    wrong_key = secrets.token_hex(16)
    async with FaultyProxy(server.port) as proxy:
        backend = open_backend(url_of(proxy.port, merchant.adminkey, timeout="1"), env)

        async def settle(payment_hash: str) -> None:
            await server.settle(merchant, payment_hash)

        async def fault(name: str) -> None:
            proxy.rewrite = wrong_amount if name == "wrong_amount" else None
            await proxy.set("ok" if name == "wrong_amount" else name)

        async def pay_outcome(outcome: str) -> None:
            if outcome == "pending":
                proxy.answer_next(lnbits_server.is_payment_request, lnbits_server.in_flight)
            # "failed": LNbits refuses every invoice its FakeWallet did not issue

        def wrong_credentials() -> LightningBackend:
            return open_backend(url_of(proxy.port, wrong_key, timeout="1"), env)

        try:
            yield Harness(
                kind=KIND,
                backend=backend,
                settle=settle,
                fault=fault,
                faults=frozenset({"ok", "refused", "error5xx", "slow", "garbage", "wrong_amount"}),
                wrong_credentials=wrong_credentials,
                pay_outcome=pay_outcome,
                outcomes=frozenset({"failed", "pending"}),
                secrets=[merchant.adminkey, merchant.inkey, wrong_key],
                network=NETWORK,
            )
        finally:
            await backend.close()
