"""The two ways to call Core Lightning's JSON-RPC: its unix socket and CLNRest.

Both carry the same methods with the same parameters and results (``doc/schemas/<method>.json``
in ElementsProject/lightning); only the transport differs.

- :class:`UnixRpc` speaks JSON-RPC 2.0 over ``lightning-rpc``, the unix socket in the node's
  ``lightning-dir/<network>/``. One connection per request: a cancelled or timed-out request then
  never leaves an answer behind on a shared connection, and connecting to a local socket costs
  microseconds. lightningd writes each answer as one JSON object followed by a blank line; reads
  may split it anywhere, so it is decoded incrementally (``json.JSONDecoder.raw_decode`` on what
  has arrived so far, UTF-8 decoded incrementally so a character split across reads is fine).
  pyln-client is not used: its ``UnixDomainSocketRpc`` does blocking ``socket.recv`` calls, which
  would block the event loop for as long as ``waitanyinvoice`` long-polls (or a thread per
  waiting call).
- :class:`RestRpc` speaks CLNRest (the built-in plugin since v23.08): every method is
  ``POST /v1/<method>`` with the parameters as a JSON object and the rune in the ``Rune`` header.
  It answers 201 with the method's result; 401/403 when the rune is missing or refused (CLN's
  rune codes 1501 not authorized, 1502 not permitted, 1503 blacklisted); 404 for an unknown
  method (-32601); 500 with the JSON-RPC error object of lightningd, or with a bare ``message``
  when it could not reach lightningd at all.

A JSON-RPC error object from the node is raised as :class:`ClnRpcError` (its code decides what it
means, see :mod:`boltgate.lightning.cln`); transport failures are raised as the error tree of
:mod:`boltgate.lightning.base`. A failure before the request could leave (no socket, connection
refused, TLS mismatch) is wrapped in :class:`NotSent`, which the paying code needs to know.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import json
from typing import Any, Protocol

import httpx
import orjson

from boltgate.lightning import http
from boltgate.lightning.base import (
    LightningProtocolError,
    LightningRejected,
    LightningTimeout,
    LightningUnavailable,
)
from boltgate.lightning.connection import Connection

MAX_ANSWER = 4 * 1024 * 1024
RUNE_CODES = frozenset({1501, 1502, 1503})  # RUNE_NOT_AUTHORIZED, RUNE_NOT_PERMITTED, RUNE_BLACKLISTED
_READ_SIZE = 65536


class ClnRpcError(Exception):
    """The node answered with a JSON-RPC error object (``code`` is None when CLNRest could not
    reach lightningd and said so without a code)."""

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message[:300]
        self.data = data
        super().__init__(f"{code}: {self.message}")


class NotSent(Exception):
    """The request did not leave: ``error`` says why (safe to try again)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        super().__init__(str(error))


class Rpc(Protocol):
    kind: str

    async def send(self, method: str, params: dict[str, Any], *, seconds: float) -> Any:
        """The method's result; :class:`ClnRpcError`, :class:`NotSent` or a LightningError."""
        ...

    async def close(self) -> None: ...


async def call(rpc: Rpc, method: str, params: dict[str, Any], *, seconds: float) -> Any:
    """:meth:`Rpc.send` with :class:`NotSent` unwrapped into its error."""
    try:
        return await rpc.send(method, params, seconds=seconds)
    except NotSent as exc:
        raise exc.error from None


def _error_of(kind: str, error: Any) -> ClnRpcError:
    if not isinstance(error, dict):
        raise LightningProtocolError("answered with a malformed error object", backend=kind)
    code = error.get("code")
    message = error.get("message")
    if (code is not None and (not isinstance(code, int) or isinstance(code, bool))) or not isinstance(
        message, str
    ):
        raise LightningProtocolError("answered with a malformed error object", backend=kind)
    return ClnRpcError(code, message, error.get("data"))


class UnixRpc:
    """JSON-RPC 2.0 over lightningd's unix socket, one connection per request."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"UnixRpc({self.path!r})"

    async def send(self, method: str, params: dict[str, Any], *, seconds: float) -> Any:
        request_id = f"boltgate:{method}#{next(self._ids)}"
        reader, writer = await self._connect(seconds)
        try:
            writer.write(
                orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            )
            await asyncio.wait_for(writer.drain(), seconds)
            message = await asyncio.wait_for(self._read(reader, request_id), seconds)
        except TimeoutError:
            raise LightningTimeout("no answer in time", backend=self.kind) from None
        except OSError as exc:
            raise LightningUnavailable(
                f"the connection to {self.path} dropped ({type(exc).__name__})", backend=self.kind
            ) from None
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)
        if "error" in message:
            raise _error_of(self.kind, message["error"])
        if "result" not in message:
            raise LightningProtocolError("answered without a result or an error", backend=self.kind)
        return message["result"]

    async def _connect(self, seconds: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_unix_connection(self.path), seconds)
        except FileNotFoundError:
            error: Exception = LightningUnavailable(
                f"no socket at {self.path} (is lightningd running? its lightning-rpc is in"
                " <lightning-dir>/<network>/)",
                backend=self.kind,
            )
        except ConnectionRefusedError:
            error = LightningUnavailable(f"nothing listens on {self.path}", backend=self.kind)
        except PermissionError:
            error = LightningRejected(
                f"no permission to open {self.path} (run as the node's user or a member of its group)",
                backend=self.kind,
            )
        except TimeoutError:
            error = LightningTimeout(f"no answer in time from {self.path}", backend=self.kind)
        except OSError as exc:
            error = LightningUnavailable(
                f"cannot open {self.path} ({exc.strerror or type(exc).__name__})", backend=self.kind
            )
        raise NotSent(error)

    async def _read(self, reader: asyncio.StreamReader, request_id: str) -> dict[str, Any]:
        """The answer to ``request_id``: JSON objects decoded as they arrive, notifications skipped."""
        decoder = json.JSONDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")()
        text = ""
        size = 0
        while True:
            chunk = await reader.read(_READ_SIZE)
            if not chunk:
                raise LightningUnavailable(
                    "the connection closed before the answer was complete"
                    if text.strip()
                    else "the connection closed without an answer",
                    backend=self.kind,
                )
            size += len(chunk)
            if size > MAX_ANSWER:
                raise LightningProtocolError("answered with an oversized message", backend=self.kind)
            try:
                text += utf8.decode(chunk)
            except UnicodeDecodeError:
                raise LightningProtocolError(
                    "answered with bytes that are not UTF-8", backend=self.kind
                ) from None
            while True:
                text = text.lstrip()
                if not text:
                    break
                if text[0] != "{":
                    raise LightningProtocolError(
                        "answered with something that is not JSON", backend=self.kind
                    )
                try:
                    message, end = decoder.raw_decode(text)
                except ValueError:
                    if "\n\n" in text:  # lightningd ends every message with a blank line: it is all here
                        raise LightningProtocolError(
                            "answered with malformed JSON", backend=self.kind
                        ) from None
                    break  # the rest is still on its way
                text = text[end:]
                if not isinstance(message, dict):
                    raise LightningProtocolError(
                        "answered with JSON that is not an object", backend=self.kind
                    )
                if message.get("id") == request_id:
                    return message
                if "id" in message:
                    raise LightningProtocolError("answered another request", backend=self.kind)
                # a notification (no id): not ours to handle

    async def close(self) -> None:
        return None


class RestRpc:
    """CLNRest: ``POST /v1/<method>`` with the ``Rune`` header, through the shared HTTP client."""

    def __init__(self, connection: Connection, rune: str) -> None:
        self.kind = connection.kind
        self._base = connection.base_url(3010)
        self._http = http.client(connection, headers={"Rune": rune, "Accept": "application/json"})

    def __repr__(self) -> str:
        return f"RestRpc({self._base!r})"

    async def send(self, method: str, params: dict[str, Any], *, seconds: float) -> Any:
        try:
            response = await self._http.post(
                f"{self._base}/v1/{method}",
                content=orjson.dumps(params),
                headers={"Content-Type": "application/json"},
                timeout=httpx.Timeout(seconds),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise NotSent(http.transport_error(self.kind, exc)) from None
        except httpx.HTTPError as exc:
            raise http.transport_error(self.kind, exc) from None
        code = response.status_code
        if code in (401, 403, 404, 500):
            self._raise_cln_error(response)
        return http.json_of(self.kind, response)

    def _raise_cln_error(self, response: httpx.Response) -> None:
        """CLNRest's error answers carry lightningd's error object: raise it, or fall through."""
        body = http.error_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("message"), str):
            return
        code = body.get("code")
        if response.status_code in (401, 403):
            said = body["message"][:200]
            if code in RUNE_CODES or response.status_code == 403:
                raise LightningRejected(
                    f"refused the rune (HTTP {response.status_code}: {said})", backend=self.kind
                )
            return
        if code is None and response.status_code == 500:
            raise LightningUnavailable(
                f"CLNRest could not get an answer from lightningd ({body['message'][:200]})",
                backend=self.kind,
            )
        if isinstance(code, int) and not isinstance(code, bool):
            raise ClnRpcError(code, body["message"], body.get("data"))

    async def close(self) -> None:
        await self._http.aclose()
