"""A Lightning-address server (LUD-16 / LUD-06 payRequest) on 127.0.0.1, for the refund tests.

It signs real BOLT11 invoices (its own node key) whose description hash commits to its metadata,
and tells the fake phoenixd their preimages, so the gateway can "pay" them. ``mode`` makes it
misbehave: ``garbage`` (not JSON), ``error`` (LUD-06 ERROR), ``wrong_amount`` (an invoice for 1
sat more), ``wrong_hash`` (a description hash of other metadata), ``mainnet`` (an invoice of
another network), ``tiny`` (maxSendable 1 sat), ``redirect`` (a 302 elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

import coincurve
from aiohttp import web

from boltgate.lightning import bolt11
from tests.lightning.fakes.phoenixd import FakePhoenixd


class LnurlPayServer:
    def __init__(self, node: FakePhoenixd) -> None:
        self.node = node
        self.key = coincurve.PrivateKey()
        self.mode = "ok"
        self.port = 0
        self.asked: list[int] = []  # the amounts (msat) the callback was asked for
        self.issued: list[str] = []  # payment hashes of the invoices it returned
        self.metadata = json.dumps([["text/plain", "refund to alice"], ["text/identifier", "alice@test"]])
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/lnurlp/{user}", self._pay_request)
        app.router.add_get("/callback/{user}", self._callback)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _pay_request(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "garbage":
            return web.Response(text="<html>not here</html>", content_type="text/html")
        if self.mode == "redirect":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data")
        user = request.match_info["user"]
        body: dict[str, Any] = {
            "tag": "payRequest",
            "callback": f"http://{self.host}/callback/{user}?session=x",
            "minSendable": 1000,
            "maxSendable": 1000 if self.mode == "tiny" else 10**11,
            "metadata": self.metadata,
        }
        return web.json_response(body)

    async def _callback(self, request: web.Request) -> web.Response:
        amount = int(request.query["amount"])
        assert request.query["session"] == "x"  # the callback's own query is kept
        self.asked.append(amount)
        if self.mode == "error":
            return web.json_response({"status": "ERROR", "reason": "this wallet is closed"})
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        self.node.learn(preimage.hex())
        metadata = "[]" if self.mode == "wrong_hash" else self.metadata
        invoice = bolt11.encode(
            private_key=self.key,
            currency="bc" if self.mode == "mainnet" else "bcrt",
            payment_hash=payment_hash,
            payment_secret=secrets.token_bytes(32),
            amount_msat=amount + 1000 if self.mode == "wrong_amount" else amount,
            timestamp=int(time.time()),
            description_hash=hashlib.sha256(metadata.encode()).digest(),
            expiry=600,
        )
        self.issued.append(payment_hash.hex())
        return web.json_response({"pr": invoice, "routes": []})
