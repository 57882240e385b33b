"""What the backends that push settlements on a websocket (LNbits, phoenixd) share.

- :func:`open_socket` opens the socket (the HTTP client's TLS: ``cert=`` pinned or the system's
  CAs, ``timeout=`` to open it and to answer a ping, pings every ``ping_interval`` seconds, no
  proxy) and maps its failures into the error tree: a refused upgrade by its HTTP status
  (401/403 :class:`LightningRejected`, 429/5xx :class:`LightningUnavailable`), no answer in time
  :class:`LightningTimeout`, a certificate that does not match the pin :class:`LightningRejected`,
  anything else :class:`LightningUnavailable`. Messages never show the URL (it may name a key).
- :func:`settlements` replays what the backend lists as recently settled, then follows the
  socket: each pushed message is only a hint, confirmed by the backend's authenticated look-up
  before it becomes a :class:`Settlement` (a push that tells the amount and time itself stands
  when the look-up cannot tell); the socket closing is :class:`LightningUnavailable`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from boltgate.kit import netguard
from boltgate.lightning import http
from boltgate.lightning.base import (
    InvoiceState,
    InvoiceStatus,
    LightningError,
    LightningProtocolError,
    LightningRejected,
    LightningTimeout,
    LightningUnavailable,
    Settlement,
)

MAX_MESSAGE = 1 << 20

Message = str | bytes


def url_of(base_url: str) -> str:
    """The ``ws``/``wss`` address of an ``http``/``https`` base URL."""
    if base_url.startswith("https"):
        return "wss" + base_url[len("https") :]
    return "ws" + base_url[len("http") :]


def refusal(kind: str, response: httpx.Response) -> Exception:
    """The error for an answer that did not upgrade to a websocket, by its HTTP status."""
    code = response.status_code
    if code in (401, 403):
        return LightningRejected(f"refused the credentials (HTTP {code})", backend=kind)
    if code == 429 or code >= 500:
        return LightningUnavailable(f"answered HTTP {code} to the websocket", backend=kind)
    if code < 400:
        return LightningProtocolError(f"did not open a websocket (HTTP {code})", backend=kind)
    return LightningRejected(f"refused the websocket (HTTP {code})", backend=kind)


async def open_socket(
    kind: str,
    url: str,
    *,
    seconds: float,
    ping_interval: float,
    tls: ssl.SSLContext | bool,
    headers: dict[str, str] | None = None,
    refused: Callable[[httpx.Response], Exception] | None = None,
    guard: tuple[netguard.Network, ...] | None = None,
) -> ClientConnection:
    """The open socket: ``seconds`` to open it and to answer a ping, ``tls`` as
    :func:`boltgate.lightning.http.verify_of` gives it (False: plain ``ws``); ``refused`` maps an
    answer that did not upgrade (:func:`refusal` by default)."""
    options: dict[str, Any] = {"ssl": tls} if tls is not False else {}
    try:
        if guard is not None:  # a merchant's connection: every address of the host is checked
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme.lower() == "wss" else 80)
            async with asyncio.timeout(seconds):
                options["sock"] = await netguard.checked_socket(
                    parts.hostname or "", port, lambda address: netguard.allowed(address, guard)
                )
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=seconds,
            ping_interval=ping_interval,
            ping_timeout=seconds,
            close_timeout=2.0,
            max_size=MAX_MESSAGE,
            proxy=None,
            user_agent_header="boltgate",
            **options,
        )
    except InvalidStatus as exc:  # its own message would show the URL
        answer = httpx.Response(exc.response.status_code, content=bytes(exc.response.body or b""))
        raise (refused(answer) if refused is not None else refusal(kind, answer)) from None
    except TimeoutError:
        raise LightningTimeout("no answer in time (websocket)", backend=kind) from None
    except netguard.AddressRefused:
        raise LightningRejected("its address is not one the gateway may connect to", backend=kind) from None
    except (OSError, InvalidHandshake) as exc:
        if http.is_certificate_failure(exc):
            raise LightningRejected(http.CERTIFICATE_MISMATCH, backend=kind) from None
        failure = f"cannot open the websocket ({type(exc).__name__})"
        raise LightningUnavailable(failure, backend=kind) from None


@dataclass(frozen=True)
class Push:
    """What a pushed message says was paid. ``amount_msat`` and ``settled_at``, when the message
    tells them, stand for the settlement when the look-up cannot confirm it."""

    payment_hash: str
    amount_msat: int = 0
    settled_at: datetime | None = None


async def settlements(
    kind: str,
    socket: Callable[[], Awaitable[ClientConnection]],
    replay: Callable[[], Awaitable[list[Settlement]]],
    pushed: Callable[[Message], Push | None],
    lookup: Callable[[str], Awaitable[InvoiceState]],
) -> AsyncIterator[Settlement]:
    """The settlements ``replay`` lists, then one for each message that ``pushed`` reads as a
    payment (None: another message) and ``lookup`` confirms; a replayed payment is not yielded
    again. The socket is opened first, so that nothing settled from then on is missed."""
    opened = await socket()
    try:
        replayed: set[str] = set()
        for settlement in await replay():
            replayed.add(settlement.payment_hash)
            yield settlement
        while True:
            try:
                message = await opened.recv()
            except ConnectionClosed:
                raise LightningUnavailable("the websocket stream dropped", backend=kind) from None
            push = pushed(message)
            if push is None or push.payment_hash in replayed:
                continue
            confirmed = await _confirmed(push, lookup)
            if confirmed is not None:
                yield confirmed
    finally:
        await opened.close()


async def _confirmed(push: Push, lookup: Callable[[str], Awaitable[InvoiceState]]) -> Settlement | None:
    """The settlement the look-up confirms; else the push's own word when it has one, else None."""
    try:
        state: InvoiceState | None = await lookup(push.payment_hash)
    except LightningError:
        if push.settled_at is None:
            raise
        state = None
    if state is not None and state.status is InvoiceStatus.SETTLED and state.settled_at is not None:
        return Settlement(push.payment_hash, state.amount_received_msat, state.settled_at, 0)
    if push.settled_at is not None:
        return Settlement(push.payment_hash, push.amount_msat, push.settled_at, 0)
    return None
