"""The upstream leg of the paid proxy: which headers cross, the request body streamed out, the
answer streamed back, and the upstream's failures translated into our problems (502/504). The
client is aiohttp (see :mod:`boltgate.kit.netguard` for why not httpx here).

Hop-by-hop headers (and those named in ``Connection``), the client's credentials for this gateway
(``Authorization``, ``X-API-Key``) and cookies in either direction (they would belong to this
gateway's origin) do not cross. Bodies are never held whole: chunks are relayed as they arrive
(an answer of at most 64 KiB by its Content-Length is sent in one message), and when the client
goes away the upstream's connection is released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import anyio
import structlog
from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send
from yarl import URL

from boltgate.errors import BadGateway, GatewayTimeout, MalformedRequest
from boltgate.kit.netguard import AddressRefused, Network, check_literal

log = structlog.get_logger(__name__)
SMALL_BODY = 65536  # an upstream body this small (by Content-Length) is sent in one message
STREAM_CHUNK = 65536

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    b"host",
    b"authorization",
    b"x-api-key",
    b"cookie",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
}
_NOT_RETURNED = _HOP_BY_HOP | {b"set-cookie", b"set-cookie2", b"date", b"server"}  # the server adds its own


class _ClientGone(Exception):
    """The client disconnected while its body was being forwarded."""


def _named_in_connection(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named |= {token.strip().lower() for token in value.split(b",") if token.strip()}
    return named


def upstream_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    given: list[tuple[bytes, bytes]] = scope["headers"]
    drop = _NOT_FORWARDED | _named_in_connection(given)
    out: list[tuple[bytes, bytes]] = []
    host = b""
    for name, value in given:
        lower = name.lower()
        if lower == b"host":
            host = value
        elif lower not in drop:
            out.append((lower, value))
    # The client's address as this gateway determined it (the server takes X-Forwarded-For into
    # account only from trusted front proxies): one entry, so a caller cannot put a made-up
    # address first in the chain that upstreams rate-limit or log by.
    client = (scope.get("client") or ("unknown", 0))[0].encode("latin-1")
    out.append((b"x-forwarded-for", client))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    return out


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        lower = name.lower()
        if lower == b"transfer-encoding" or (lower == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


class _BodyFailed(Exception):
    """Reading the client's body failed (too large, or the client left): the original is re-raised."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        try:
            message = await receive()
        except Exception as exc:  # the request middleware's body limit, for one
            raise _BodyFailed(exc) from exc
        if message["type"] == "http.disconnect":
            raise _BodyFailed(_ClientGone())
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class Streamed(Response):
    """The upstream's answer, relayed as it arrives (and its connection released at the end)."""

    def __init__(self, upstream: aiohttp.ClientResponse, extra: list[tuple[bytes, bytes]]) -> None:
        self.upstream = upstream
        self.status_code = upstream.status
        raw = list(upstream.raw_headers)
        drop = _NOT_RETURNED | _named_in_connection(raw)
        self.raw_headers = [(n.lower(), v) for n, v in raw if n.lower() not in drop] + extra
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            length = self.upstream.headers.get("content-length", "")
            if scope["method"] == "HEAD" or (length.isdigit() and int(length) <= SMALL_BODY):
                body = b"" if scope["method"] == "HEAD" else await self.upstream.read()
                await send({"type": "http.response.body", "body": body})
                return
            async with anyio.create_task_group() as group:

                async def relay() -> None:
                    async for chunk in self.upstream.content.iter_chunked(STREAM_CHUNK):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    group.cancel_scope.cancel()

                async def watch() -> None:  # stop reading the upstream when the client goes
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(relay)
                group.start_soon(watch)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the head is sent: all that is left is to cut the connection, so the client sees a
            # truncated body rather than a complete-looking one
            log.warning("proxy_upstream_broke", error=type(exc).__name__)
            self.upstream.close()
            raise
        finally:
            self.upstream.release()


def _request_failed(exc: BaseException) -> BaseException | None:
    """The client-side failure behind an upstream error, if there is one."""
    seen = exc
    for _ in range(5):
        if isinstance(seen, _BodyFailed):
            return seen.original
        if seen.__cause__ is None and seen.__context__ is None:
            return None
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return None


async def send(
    session: aiohttp.ClientSession, networks: tuple[Network, ...], request: Request, url: str
) -> aiohttp.ClientResponse:
    scope = request.scope
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in upstream_headers(scope)]
    data = _body(request.receive) if _has_body(scope) else None
    target = URL(url, encoded=True)  # exactly as the client encoded its path
    try:
        check_literal(target.raw_host or "", networks)
        return await session.request(
            scope["method"], target, headers=headers, data=data, allow_redirects=False, compress=None
        )
    except Exception as exc:
        original = _request_failed(exc)
        if isinstance(original, _ClientGone):  # nobody is left to read the answer
            raise MalformedRequest(
                "the client disconnected while sending its body", code="client_disconnected"
            ) from exc
        if original is not None:
            raise original from exc
        raise _problem(exc) from exc


def _problem(exc: Exception) -> Exception:
    if isinstance(exc, AddressRefused) or (
        isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused)
    ):
        return BadGateway(
            "the upstream's address is not public and the operator has not allowed it",
            code="upstream_not_allowed",
        )
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return GatewayTimeout("the upstream did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return BadGateway("the upstream could not be reached")
    if isinstance(exc, aiohttp.ClientError):
        return BadGateway(f"the upstream's answer was broken ({type(exc).__name__})")
    if isinstance(exc, ValueError):  # a URL the client library refuses to send
        return BadGateway("the proxy's target URL is not usable", code="invalid_target")
    return exc
