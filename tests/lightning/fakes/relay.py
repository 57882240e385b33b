"""A small NIP-01 relay over real websockets on 127.0.0.1, built from nostr-protocol/nips ``01.md``.

- ``["EVENT", event]``: the id and BIP-340 signature are checked (``["OK", id, false, "invalid: …"]``
  otherwise), an event past its NIP-40 ``expiration`` is refused, then ``["OK", id, true, ""]``.
  Ephemeral kinds (20000-29999) are only forwarded; replaceable kinds (0, 3, 10000-19999) keep the
  newest per (pubkey, kind); addressable ones (30000-39999) per (pubkey, kind, ``d``); the rest
  is stored. Every live subscription whose filters match gets ``["EVENT", sub, event]``, the
  publisher's own included.
- ``["REQ", sub, filter…]``: stored matches, newest first, at most ``limit`` per filter, then
  ``["EOSE", sub]``; the subscription stays live until ``["CLOSE", sub]`` (a REQ with the same id
  replaces it). Filters: ``ids``, ``authors``, ``kinds``, ``#<letter>``, ``since``, ``until``.
- Anything else is answered with a ``NOTICE``.

Test controls: :meth:`stop` (closes every connection and stops listening: connections are
refused) and :meth:`start` again on the same port; :meth:`cut` closes the connections but keeps
listening; ``hostile = True`` makes it forward every event to every subscription unchecked (a
malicious relay); :attr:`received` is every event published to it, :attr:`messages` every
client message (in arrival order).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from boltgate.agent.nostr import NostrError, parse_event


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tag_values(event: dict[str, Any], letter: str) -> set[str]:
    return {
        tag[1] for tag in event.get("tags", []) if isinstance(tag, list) and len(tag) > 1 and tag[0] == letter
    }


def accepts(flt: dict[str, Any], event: dict[str, Any]) -> bool:
    """NIP-01: every condition of the filter holds (conditions of a list: any element)."""
    checks = {
        "ids": lambda v: event["id"] in v,
        "authors": lambda v: event["pubkey"] in v,
        "kinds": lambda v: event["kind"] in v,
        "since": lambda v: event["created_at"] >= v,
        "until": lambda v: event["created_at"] <= v,
        "limit": lambda v: True,
    }
    for key, wanted in flt.items():
        if key.startswith("#") and len(key) == 2:
            if not _tag_values(event, key[1]) & set(wanted):
                return False
        elif key in checks and not checks[key](wanted):
            return False
    return True


def _slot(event: dict[str, Any]) -> tuple[Any, ...]:
    """Where an event is kept: replaceable and addressable kinds share a slot with their successors."""
    kind = event["kind"]
    if kind in (0, 3) or 10000 <= kind < 20000:
        return (event["pubkey"], kind)
    if 30000 <= kind < 40000:
        d = sorted(_tag_values(event, "d")) or [""]
        return (event["pubkey"], kind, d[0])
    return (event["id"],)


class FakeRelay:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.hostile = False
        self.received: list[dict[str, Any]] = []
        self.messages: list[Any] = []
        self._stored: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._subs: dict[ServerConnection, dict[str, list[dict[str, Any]]]] = {}
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._serve, "127.0.0.1", self.port, max_size=1024 * 1024, ping_interval=None
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self._subs.clear()

    async def cut(self) -> None:
        """Close every client connection (the relay keeps listening)."""
        for connection in list(self._subs):
            await connection.close(1011, "going away")

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _serve(self, connection: ServerConnection) -> None:
        subs: dict[str, list[dict[str, Any]]] = {}
        self._subs[connection] = subs
        try:
            async for raw in connection:
                await self._handle(connection, subs, raw)
        except ConnectionClosed:
            pass
        finally:
            self._subs.pop(connection, None)

    async def _say(self, connection: ServerConnection, message: list[Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    async def _handle(
        self, connection: ServerConnection, subs: dict[str, list[dict[str, Any]]], raw: Any
    ) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            await self._say(connection, ["NOTICE", "error: could not parse the message"])
            return
        self.messages.append(message)
        if not isinstance(message, list) or not message or not isinstance(message[0], str):
            await self._say(connection, ["NOTICE", "error: a message is a JSON array"])
        elif message[0] == "EVENT" and len(message) == 2 and isinstance(message[1], dict):
            await self._event(connection, message[1])
        elif message[0] == "REQ" and len(message) >= 3 and isinstance(message[1], str):
            filters = [f for f in message[2:] if isinstance(f, dict)]
            subs[message[1]] = filters
            matching = [e for e in self._stored.values() if any(accepts(f, e) for f in filters)]
            matching.sort(key=lambda e: e["created_at"], reverse=True)
            limit = min((f.get("limit", len(matching)) for f in filters), default=len(matching))
            for event in matching[:limit]:
                await self._say(connection, ["EVENT", message[1], event])
            await self._say(connection, ["EOSE", message[1]])
        elif message[0] == "CLOSE" and len(message) == 2:
            subs.pop(message[1], None)
        else:
            await self._say(connection, ["NOTICE", f"error: unknown message {str(message[0])[:20]!r}"])

    async def _event(self, connection: ServerConnection, event: dict[str, Any]) -> None:
        event_id = event.get("id") if isinstance(event.get("id"), str) else ""
        self.received.append(event)
        if not self.hostile:
            try:
                parse_event(event)
            except NostrError as exc:
                await self._say(connection, ["OK", event_id, False, f"invalid: {exc.detail}"])
                return
            expiration = _tag_values(event, "expiration")
            if expiration and min(int(v) for v in expiration if v.isdigit()) < time.time():
                await self._say(connection, ["OK", event_id, False, "invalid: event has expired"])
                return
            if not 20000 <= event["kind"] < 30000:
                slot = _slot(event)
                kept = self._stored.get(slot)
                if kept is None or kept["created_at"] <= event["created_at"]:
                    self._stored[slot] = event
        await self._say(connection, ["OK", event_id, True, ""])
        for peer, peer_subs in list(self._subs.items()):
            for sub_id, filters in list(peer_subs.items()):
                if self.hostile or any(accepts(f, event) for f in filters):
                    await self._say(peer, ["EVENT", sub_id, event])
