"""The HTTP/1.1 protocol ``boltgate serve`` runs: uvicorn's httptools protocol with a bound on the
request head (request line + headers).

uvicorn's httptools protocol accepts heads of any size: a client could send megabytes of headers
per connection and the server would hold them all in memory (seen: 16 MiB of headers answered
``200``). A request head here may be at most ``MAX_HEAD_BYTES`` (64 KiB: larger than any L402
macaroon or cookie boltgate hands out, well above what browsers send); a longer one is answered
``431`` with a problem body and the connection is closed before the application sees anything.

The count is of bytes received while a head is incomplete, checked after each chunk is parsed, so
a chunk that ends a head and carries a large body is never counted, and memory held for one head
stays below the limit plus one read (256 KiB).
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from boltgate.errors import problem_body

MAX_HEAD_BYTES = 64 * 1024


def _head_too_large() -> bytes:
    detail = f"The request line and headers exceed {MAX_HEAD_BYTES // 1024} KiB"
    body = orjson.dumps(
        problem_body(431, "request_header_too_large", "Request Header Fields Too Large", detail)
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a bound on the request head (see the module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_open = True  # waiting for (the rest of) a request head
        self._head_bytes = 0
        self._ended_in_chunk = False
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        self._ended_in_chunk = False
        super().data_received(data)
        if not self._head_open or self._ended_in_chunk or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.logger.warning("request head over %d bytes refused", MAX_HEAD_BYTES)
            self.transport.write(_head_too_large())
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # the rest of this chunk (if any) starts the next head: it is not counted, at most one read
        self._head_open = True
        self._head_bytes = 0
        self._ended_in_chunk = True
