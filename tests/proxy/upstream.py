"""A real upstream API on loopback for the proxy tests: echo, big downloads, uploads, slow answers,
redirects, any status, cookies, and a response that breaks off."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

CHUNK = b"x" * 65536


async def _json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(data)
    out = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": out + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def _read(receive: Receive) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        digest.update(chunk)
        if not message.get("more_body", False):
            return size, digest.hexdigest()


class Upstream:
    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.requests: list[dict[str, Any]] = []
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=port, log_config=None, lifespan="off", interface="asgi3"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        query = parse_qs(scope["query_string"].decode())
        size, digest = (0, "") if path.startswith("/big") else await _read(receive)
        seen = {
            "method": scope["method"],
            "path": path,
            "rawPath": (scope.get("raw_path") or b"").decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "bodySize": size,
            "bodySha256": digest,
        }
        self.requests.append(seen)
        if path.startswith("/big"):
            await self._big(send, int(query.get("size", ["0"])[0]))
        elif path.startswith("/slow"):
            await asyncio.sleep(float(query.get("seconds", ["5"])[0]))
            await _json(send, 200, {"slow": True})
        elif path.startswith("/redirect"):
            await _json(send, 302, {"moved": True}, [(b"location", b"https://elsewhere.example/x")])
        elif path.startswith("/status/"):
            await _json(
                send, int(path.rsplit("/", 1)[1]), {"upstream": "error body"}, [(b"x-upstream", b"yes")]
            )
        elif path.startswith("/cookie"):
            await _json(send, 200, {"cookie": True}, [(b"set-cookie", b"session=upstream; Path=/")])
        elif path.startswith("/broken"):
            start = [(b"content-length", b"1000000")]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise RuntimeError("upstream breaks off")  # uvicorn closes the connection
        else:
            await _json(send, 200, seen)

    async def _big(self, send: Send, size: int) -> None:
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        left = size
        while left > 0:
            chunk = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        if size == 0:
            await send({"type": "http.response.body", "body": b""})
