"""Publishing signed Nostr events (NIP-01) to the relays an operator configures, and reading them back.

Relays are third-party servers that may be slow, down, misconfigured or hostile, so ``publish`` never
raises: every relay gets a :class:`PublishResult` and the caller decides what a partial success means.
Each relay gets its own short-lived connection carrying exactly one event; that keeps one bad relay
from holding up the others (they all run concurrently) and lets us attribute any ``OK`` to our event.

What relays commonly do that callers must expect (seen against nostr-relay 1.14, see
``tests/agent/test_relays.py``):

* a rejection may come back as ``["OK", "", false, msg]`` (empty id) and only after a deliberate delay
  (nostr-relay throttles a connection by 2 s after each rejected event);
* a re-published event may be answered ``accepted=False`` with a message starting ``duplicate:``: the
  relay holds the event, it just did not store it again;
* deletion (NIP-09) and replacement of addressable events (kinds 30000-39999) are best effort and differ
  between relays: :func:`fetch` is how to check what a relay really holds.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

__all__ = ["MAX_MESSAGE_BYTES", "PublishResult", "RelayError", "fetch", "publish"]

#: Largest websocket message we accept from a relay or send to one: a frame bigger than this is a relay
#: misbehaving (or an attack on our memory), or an event no relay would take.
MAX_MESSAGE_BYTES = 1024 * 1024
#: Relay messages are copied into results and logs; a hostile relay must not be able to bloat them.
_MAX_REASON_CHARS = 200
#: Closing is a courtesy once we have our answer; never let a relay that ignores the close
#: handshake stretch the call much beyond its timeout.
_CLOSE_TIMEOUT = 1.0
_SCHEMES = ("ws", "wss")


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one relay said about one event.

    ``message`` is the relay's own ``OK`` message, or our short description of what went wrong; it never
    contains the relay URL (which may carry an access token) or other secrets.
    """

    relay: str
    accepted: bool
    message: str


class RelayError(Exception):
    """A relay could not answer a :func:`fetch`: unreachable, timed out, closed, or refused the query.

    Raised rather than returning an empty list, because "the relay holds nothing" and "we could not ask"
    must not look alike to an operator.
    """


def _scheme_ok(url: str) -> bool:
    """Only websocket URLs: anything else (http, file, a typo) is a configuration error, not a relay."""
    try:
        return urlsplit(url).scheme.lower() in _SCHEMES
    except ValueError:
        return False


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def _describe(exc: BaseException, timeout: float) -> str:
    """A short, secret-free reason for a failed exchange.

    Exception texts are not reused verbatim: several of them quote the URL, and URLs may hold tokens.
    """
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, InvalidStatus):
        return f"handshake refused: HTTP {exc.response.status_code}"
    if isinstance(exc, InvalidURI):
        return "invalid relay URL"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed: {type(exc).__name__}"
    if isinstance(exc, ConnectionClosed) and exc.sent is not None and exc.sent.code == 1009:
        return "relay sent a message over 1 MiB"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        return "connection closed by relay" + (f" (code {code})" if code is not None else "")
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or type(exc).__name__}"
    return f"error: {type(exc).__name__}"


async def _open(url: str, seconds: float) -> ClientConnection:
    """Connect with the gateway's fixed policy.

    ``proxy=None``: environment proxies are for the operator's HTTP traffic, and silently routing relay
    traffic through them would surprise. ``max_size`` bounds what a relay can make us buffer.
    """
    return await connect(
        url,
        proxy=None,
        open_timeout=seconds,
        close_timeout=min(seconds, _CLOSE_TIMEOUT),
        max_size=MAX_MESSAGE_BYTES,
        ping_interval=None,
    )


def _decode(raw: str | bytes) -> Any:
    """A relay frame as JSON, or ``None`` for frames we cannot read (those are skipped, not fatal)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


async def _await_ok(ws: ClientConnection, event_id: str) -> tuple[bool, str]:
    """Read frames until the relay's verdict on our event.

    NOTICE, AUTH and anything unreadable are skipped. An ``OK`` with an empty id is taken as ours:
    some relays (nostr-relay 1.14) drop the id when they reject an event before parsing it, and as this
    connection carries only our event, nothing else can be meant.
    """
    while True:
        msg = _decode(await ws.recv())
        if not (isinstance(msg, list) and len(msg) >= 3 and msg[0] == "OK"):
            continue
        if msg[1] not in (event_id, "") or not isinstance(msg[2], bool):
            continue
        reason = msg[3] if len(msg) > 3 and isinstance(msg[3], str) else ""
        return msg[2], _clip(reason)


async def _publish_one(url: str, event: dict[str, Any], payload: str, seconds: float) -> PublishResult:
    if not _scheme_ok(url):
        return PublishResult(url, False, "unsupported scheme")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        return PublishResult(url, False, "event has no id")
    # One deadline for connect + send + verdict: ``seconds`` is how long this relay may cost us.
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        async with asyncio.timeout_at(deadline):
            ws = await _open(url, seconds)
        try:
            async with asyncio.timeout_at(deadline):
                await ws.send(payload)
                accepted, message = await _await_ok(ws, event_id)
        finally:
            await ws.close()
    except Exception as exc:  # a relay must never break the caller: report, don't raise
        return PublishResult(url, False, _describe(exc, seconds))
    return PublishResult(url, accepted, message)


async def publish(
    relays: Sequence[str],
    event: dict[str, Any],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - a budget per relay, not the caller's overall deadline
) -> list[PublishResult]:
    """Send ``event`` (already signed) to every relay at once; one result per relay, in the given order.

    Never raises for relay trouble: a refused connection, a timeout, a closed socket or an unsupported
    URL scheme each become ``accepted=False`` with a short reason. The event is sent as given; checking
    its id and signature is the signer's job (and, as the tests show, not every relay checks the id).
    """
    try:
        payload = json.dumps(["EVENT", event], ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return [PublishResult(url, False, "event is not JSON") for url in relays]
    if len(payload.encode()) > MAX_MESSAGE_BYTES:
        # The same bound both ways; relays allow far less anyway (nostr-relay: 4096 content characters).
        return [PublishResult(url, False, "event too large") for url in relays]
    results = await asyncio.gather(*(_publish_one(url, event, payload, timeout) for url in relays))
    return list(results)


async def _collect(ws: ClientConnection, sub_id: str) -> list[dict[str, Any]]:
    """Stored events for ``sub_id`` until the relay says it has sent them all (EOSE)."""
    events: list[dict[str, Any]] = []
    while True:
        msg = _decode(await ws.recv())
        if not (isinstance(msg, list) and len(msg) >= 2 and msg[1] == sub_id):
            continue
        if msg[0] == "EVENT" and len(msg) >= 3 and isinstance(msg[2], dict):
            events.append(msg[2])
        elif msg[0] == "EOSE":
            return events
        elif msg[0] == "CLOSED":
            reason = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else ""
            raise RelayError(_clip(f"relay closed the query: {reason}".rstrip(": ")))


async def fetch(
    relay: str,
    filters: dict[str, Any],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - covers connect + query, so one relay can't stall an operator
) -> list[dict[str, Any]]:
    """The events ``relay`` holds that match one NIP-01 filter, exactly as the relay returns them.

    For operators and tests checking what a relay really stored (after a deletion, a replacement...).
    Events are not verified here: the point is to see the relay's data, good or bad.
    Raises :class:`RelayError` when the relay cannot be asked or refuses the query.
    """
    if not _scheme_ok(relay):
        raise RelayError("unsupported scheme")
    sub_id = secrets.token_hex(8)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            ws = await _open(relay, timeout)
        try:
            async with asyncio.timeout_at(deadline):
                await ws.send(json.dumps(["REQ", sub_id, filters], ensure_ascii=False))
                events = await _collect(ws, sub_id)
                await ws.send(json.dumps(["CLOSE", sub_id]))
        finally:
            await ws.close()
    except RelayError:
        raise
    except Exception as exc:
        raise RelayError(_describe(exc, timeout)) from exc
    return events
