"""A real HTTP webhook receiver on loopback (uvicorn), recording every request it gets.

Each path behaves as configured: ``receiver.behave("/slow", delay=5)``, ``status=500``, a
``redirect`` or a huge answer; by default it answers 200.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Behaviour:
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 200
    delay: float = 0.0
    huge: bool = False
    redirect: bool = False


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.behaviours: dict[str, Behaviour] = {}
        self.arrived = asyncio.Condition()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=port, log_config=None, lifespan="off", interface="asgi3"
            )
        )
        self._task: asyncio.Task[None] | None = None

    def behave(self, path: str, **kwargs: Any) -> str:
        self.behaviours[path] = Behaviour(**kwargs)
        return self.url + path

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        behaviour = self.behaviours.get(path, Behaviour())
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        async with self.arrived:
            self.received[path].append(Received(path, headers, body))
            self.arrived.notify_all()
        status = behaviour.statuses.pop(0) if behaviour.statuses else 200
        extra: list[tuple[bytes, bytes]] = []
        if behaviour.redirect:
            status, extra = 307, [(b"location", f"{self.url}/elsewhere".encode())]
        await send({"type": "http.response.start", "status": status, "headers": extra})
        if behaviour.huge:
            for _ in range(1000):  # 10 MB, streamed
                await send({"type": "http.response.body", "body": b"x" * 10_000, "more_body": True})
        await send({"type": "http.response.body", "body": b"ok" if not behaviour.huge else b""})

    async def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.received[path]) >= count)
        return self.received[path]

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
