"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, put between a backend and the real server it
talks to, so that the server never has to be broken to test a fault.

Each connection carries one request (answers say ``Connection: close``); websocket upgrades are
forwarded and then tunnelled byte for byte. Modes (:meth:`FaultyProxy.set`):

- ``ok`` — forward (listening again after ``refused``, on the same port);
- ``refused`` — stop listening and cut every open connection and tunnel;
- ``error5xx`` — answer every request ``503`` (as a reverse proxy does when its upstream is down);
- ``slow`` — hold each request ``slow_seconds`` (beyond the backend's timeout), then forward it;
- ``garbage`` — answer ``200`` with a body that is not JSON.

And, per request: :attr:`FaultyProxy.rewrite` may replace forwarded answers (e.g. an invoice for
another amount), :meth:`FaultyProxy.answer_next` answers the next matching request itself without
forwarding it, and :meth:`FaultyProxy.drop_next` forwards the next matching request, reads the
server's whole answer, and cuts the client's connection before answering (the request took
effect; the client never learns it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

MODES = ("ok", "refused", "error5xx", "slow", "garbage")
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te"}


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    head: bytes = field(default=b"", repr=False)  # as received, for tunnels

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json_of(cls, status: int, value: Any) -> Response:
        return cls(status, [("content-type", "application/json")], orjson.dumps(value))

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


Match = Callable[[Request], bool]
Rewrite = Callable[[Request, Response], Response | None]
Answer = Response | Callable[[Request], Response]


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    request = Request(method, target, headers, head=head)
    if (request.header("transfer-encoding") or "").lower() == "chunked":
        raise ValueError("chunked request bodies are not supported")
    length = int(request.header("content-length") or 0)
    if length > MAX_BODY:
        raise ValueError("request body too large")
    request.body = await reader.readexactly(length) if length else b""
    return request


def _parse_response(raw: bytes) -> Response:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("the upstream answer has no head")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers)
    return Response(status, headers, _dechunk(body) if chunked else body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def _serialize(response: Response) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
    lines += [f"content-length: {len(response.body)}", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


_REASONS = {200: "OK", 201: "Created", 404: "Not Found", 503: "Service Unavailable"}


class FaultyProxy:
    """``FaultyProxy(upstream_port)``; ``await proxy.start()``; point the backend at ``proxy.port``."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        slow_seconds: float = 3.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tls = tls
        self.slow_seconds = slow_seconds
        self.mode = "ok"
        self.rewrite: Rewrite | None = None
        self.port = 0
        self.forwarded: list[Request] = []  # every request that reached the server, in order
        self._answers: list[tuple[Match, Answer]] = []
        self._drops: list[Match] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> FaultyProxy:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.tls, reuse_address=True, limit=MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def set(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        self.mode = mode
        if mode == "refused":
            await self._stop_listening()
        elif self._server is None:
            await self.start()

    def answer_next(self, match: Match, response: Answer) -> None:
        """Answer the next request that ``match`` accepts with ``response`` (or what it makes of
        the request), not forwarding it."""
        self._answers.append((match, response))

    def drop_next(self, match: Match) -> None:
        """Forward the next request that ``match`` accepts, then cut the connection unanswered."""
        self._drops.append(match)

    async def close(self) -> None:
        await self._stop_listening()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def __aenter__(self) -> FaultyProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # -- one connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            request = await _read_request(reader)
            if request is not None:
                await self._handle(request, reader, writer)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.mode == "error5xx":
            return await self._reply(writer, Response.json_of(503, {"detail": "upstream unavailable"}))
        if self.mode == "garbage":
            return await self._reply(writer, Response(200, [("content-type", "text/html")], b"<html>oops"))
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        for index, (match, canned) in enumerate(self._answers):
            if match(request):
                del self._answers[index]
                return await self._reply(writer, canned if isinstance(canned, Response) else canned(request))
        if (request.header("upgrade") or "").lower() == "websocket":
            return await self._tunnel(request, reader, writer)
        drop = next((m for m in self._drops if m(request)), None)
        response = await self._forward(request)
        if drop is not None:
            self._drops.remove(drop)
            writer.transport.abort()  # the server acted on it; the client never hears
            return None
        if self.rewrite is not None:
            response = self.rewrite(request, response) or response
        return await self._reply(writer, response)

    async def _reply(self, writer: asyncio.StreamWriter, response: Response) -> None:
        writer.write(_serialize(response))
        await writer.drain()

    async def _forward(self, request: Request) -> Response:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.forwarded.append(request)
        try:
            lines = [f"{request.method} {request.target} HTTP/1.1"]
            # without accept-encoding the server answers uncompressed, which rewrites can read
            kept = _HOP_BY_HOP | {"accept-encoding"}
            lines += [f"{k}: {v}" for k, v in request.headers if k.lower() not in kept]
            lines += [f"content-length: {len(request.body)}", "connection: close"]
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
            await up_writer.drain()
            raw = await up_reader.read(MAX_BODY)
            while chunk := await up_reader.read(MAX_BODY):
                raw += chunk
            return _parse_response(raw)
        finally:
            up_writer.close()

    async def _tunnel(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.forwarded.append(request)
        self._writers.add(up_writer)
        up_writer.write(request.head + request.body)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()
