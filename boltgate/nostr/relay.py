"""A NIP-01 relay client for request/response protocols spread over several relays (NIP-47).

Messages (nostr-protocol/nips ``01.md``): we send ``["REQ", id, filter…]``, ``["CLOSE", id]`` and
``["EVENT", event]``; relays answer ``["EVENT", id, event]``, ``["EOSE", id]``,
``["CLOSED", id, reason]``, ``["OK", event_id, accepted, message]`` and ``["NOTICE", message]``.

- :class:`RelayPool` keeps one websocket per relay, opened when first needed and shared by every
  subscription (at most :data:`MAX_SUBSCRIPTIONS` at once; more wait their turn); a reader task
  per connection routes what arrives. A relay that cannot be reached
  is skipped for a while (1 s, doubling up to 60 s) as long as another one can be tried.
- :class:`Subscription` is one ``REQ`` sent to every reachable relay. :meth:`Subscription.ready`
  waits for each relay's ``EOSE``, so a request published afterwards (:meth:`Subscription.publish`)
  cannot be answered before the relays know we listen (the NIP-47 kinds are ephemeral: a relay
  does not store them, it only forwards them to live subscriptions).
- Nothing a relay sends is trusted: every event is checked (id, BIP-340 signature, via
  :func:`boltgate.agent.nostr.parse_event`) and must match the subscription's filters; anything
  else is dropped. Duplicates (the same event from two relays) are delivered once.
- A subscription raises :class:`RelayUnavailable` when no relay is left to listen on (each dropped
  or refused the subscription), and :class:`EventRejected` when every relay it published to
  refused the event. Websocket pings (every ``ping_interval`` seconds) notice a dead connection.
- Connections are opened on a socket we connect ourselves: no proxy from the environment, no
  redirects, and with ``address_rule`` (e.g. the gateway's outbound-address rule of
  :mod:`boltgate.kit.netguard`: ``lambda ip: netguard.allowed(ip, networks)``) every address the
  relay's name resolves to must pass before we connect to one of them.

Error messages name relays by ``scheme://host[:port]`` only (a relay URL may carry a token).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from boltgate.agent.nostr import Event, NostrError, parse_event
from boltgate.kit import netguard
from boltgate.kit.netguard import AddressRefused

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 1024 * 1024
PING_INTERVAL = 20.0
COOLDOWN_MAX = 60.0
SEEN_MAX = 4096  # event ids remembered per subscription (to deliver each once)
MAX_SUBSCRIPTIONS = 16  # at once per pool: relays cap them per connection (strfry: 20 by default)
_CLIP = 200

AddressRule = Callable[[str], bool]
"""Decides whether an IP address may be connected to (``True``: allowed)."""


class RelayError(Exception):
    """A relay problem; the message names relays by scheme, host and port only."""


class RelayUnavailable(RelayError):
    """No relay could be reached, or every relay of a subscription dropped or closed it."""


class EventRejected(RelayError):
    """Every relay an event was published to refused it (``OK`` false)."""


def relay_label(url: str) -> str:
    """``scheme://host[:port]`` of a relay URL: what messages and logs show of it."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return "(invalid relay URL)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{port}" if port else "")


def check_relay_url(url: str) -> str:
    """The URL when it is a usable relay address (``ws://`` or ``wss://`` with a host), else ValueError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("a relay URL is malformed") from None
    if parts.scheme.lower() not in ("ws", "wss"):
        raise ValueError("a relay URL starts with wss:// (or ws://)")
    if not parts.hostname:
        raise ValueError("a relay URL names a host")
    if parts.username or parts.password:
        raise ValueError("a relay URL has no user or password")
    if parts.fragment:
        raise ValueError("a relay URL has no #fragment")
    return url


def matches(flt: Mapping[str, Any], event: Event) -> bool:
    """Whether ``event`` matches one NIP-01 filter (``limit`` only bounds stored events)."""
    for name, wanted in flt.items():
        if name == "ids" and event.id not in wanted:
            return False
        if name == "authors" and event.pubkey not in wanted:
            return False
        if name == "kinds" and event.kind not in wanted:
            return False
        if name == "since" and event.created_at < wanted:
            return False
        if name == "until" and event.created_at > wanted:
            return False
        if len(name) == 2 and name[0] == "#":
            values = {tag[1] for tag in event.tags if len(tag) > 1 and tag[0] == name[1]}
            if values.isdisjoint(wanted):
                return False
    return True


def _clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[: _CLIP - 1] + "…"


def _reason(exc: BaseException) -> str:
    """A short account of a connection failure; never the exception text (it may quote the URL)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, AddressRefused):
        return "its address is not allowed for outgoing connections"
    if isinstance(exc, InvalidStatus):
        return f"refused the websocket handshake (HTTP {exc.response.status_code})"
    if isinstance(exc, InvalidHandshake):
        return f"websocket handshake failed ({type(exc).__name__})"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        return "closed the connection" + (f" (code {code})" if code is not None else "")
    if isinstance(exc, socket.gaierror):
        return "its name does not resolve"
    if isinstance(exc, OSError):
        return f"cannot be reached ({exc.strerror or type(exc).__name__})"
    return f"failed ({type(exc).__name__})"


class _Relay:
    """One relay: its connection (when open), its subscriptions and the OKs we wait for."""

    def __init__(self, url: str, pool: RelayPool) -> None:
        self.url = url
        self.label = relay_label(url)
        self._pool = pool
        self._ws: ClientConnection | None = None
        self._lock = asyncio.Lock()
        self._subs: dict[str, Subscription] = {}
        self._oks: dict[str, list[Subscription]] = {}
        self.failures = 0
        self.down_until = 0.0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def connect(self) -> None:
        async with self._lock:
            if self._ws is not None:
                return
            try:
                ws = await self._open()
            except Exception as exc:
                self.failures += 1
                self.last_error = _reason(exc)
                self.down_until = time.monotonic() + min(COOLDOWN_MAX, 2.0 ** (self.failures - 1))
                raise RelayUnavailable(f"{self.label} {self.last_error}") from None
            self.failures, self.last_error = 0, ""
            self._ws = ws
            self._pool._spawn(self._read(ws))

    async def _open(self) -> ClientConnection:
        parts = urlsplit(self.url)
        secure = parts.scheme.lower() == "wss"
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        pool = self._pool
        async with asyncio.timeout(pool.open_timeout):
            sock = await netguard.checked_socket(host, port, pool.address_rule)
            try:
                return await connect(
                    self.url,
                    sock=sock,
                    proxy=None,
                    open_timeout=pool.open_timeout,
                    close_timeout=1.0,
                    ping_interval=pool.ping_interval,
                    ping_timeout=pool.ping_interval,
                    max_size=MAX_MESSAGE_BYTES,
                )
            except BaseException:
                sock.close()
                raise

    async def _read(self, ws: ClientConnection) -> None:
        reason = "closed the connection"
        try:
            async for raw in ws:
                self._dispatch(raw)
        except ConnectionClosed as exc:
            reason = _reason(exc)
        except Exception as exc:  # a reader must end cleanly whatever happens
            reason = _reason(exc)
        finally:
            if self._ws is ws:
                self._ws = None
            subs, self._subs, self._oks = list(self._subs.values()), {}, {}
            for sub in subs:
                sub._gone(self, reason)
            with contextlib.suppress(Exception):
                await ws.close()

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(msg, list) or len(msg) < 2 or not isinstance(msg[1], str):
            return
        verb = msg[0]
        if verb == "EVENT" and len(msg) >= 3 and (sub := self._subs.get(msg[1])) is not None:
            sub._queue.put_nowait(("event", self, msg[2]))
        elif verb == "EOSE" and (sub := self._subs.get(msg[1])) is not None:
            sub._queue.put_nowait(("eose", self, None))
        elif verb == "CLOSED" and (sub := self._subs.pop(msg[1], None)) is not None:
            said = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else ""
            sub._gone(self, _clip(f"closed the subscription: {said}".rstrip(": ")))
        elif verb == "OK" and len(msg) >= 3 and isinstance(msg[2], bool):
            said = msg[3] if len(msg) > 3 and isinstance(msg[3], str) else ""
            for sub in self._oks.pop(msg[1], []):
                sub._queue.put_nowait(("ok", self, (msg[2], _clip(said))))
        elif verb == "NOTICE":
            log.info("nostr_relay_notice", relay=self.label, notice=_clip(msg[1]))

    async def send(self, message: Sequence[Any]) -> None:
        ws = self._ws
        if ws is None:
            raise RelayUnavailable(f"{self.label} is not connected")
        await ws.send(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    async def subscribe(self, sub: Subscription) -> None:
        self._subs[sub.id] = sub
        try:
            await self.send(["REQ", sub.id, *sub.filters])
        except Exception:
            self._subs.pop(sub.id, None)
            raise

    async def unsubscribe(self, sub: Subscription) -> None:
        if self._subs.pop(sub.id, None) is not None:
            with contextlib.suppress(Exception):
                await self.send(["CLOSE", sub.id])
        for event_id in [key for key, subs in self._oks.items() if sub in subs]:
            waiting = [s for s in self._oks[event_id] if s is not sub]
            if waiting:
                self._oks[event_id] = waiting
            else:
                del self._oks[event_id]

    def expect_ok(self, event_id: str, sub: Subscription) -> None:
        self._oks.setdefault(event_id, []).append(sub)

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


class Subscription:
    """One ``REQ`` on every reachable relay of a pool: verified, deduplicated events in order."""

    def __init__(self, filters: Sequence[Mapping[str, Any]]) -> None:
        self.id = secrets.token_hex(8)
        self.filters = [dict(flt) for flt in filters]
        self._queue: asyncio.Queue[tuple[str, _Relay, Any]] = asyncio.Queue()
        self._live: set[_Relay] = set()
        self._eose: set[_Relay] = set()
        self._why: dict[str, str] = {}
        self._events: collections.deque[Event] = collections.deque()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._published: set[_Relay] = set()
        self._refused: dict[_Relay, str] = {}
        self.sent = False  # set before the first frame of :meth:`publish` is written

    @property
    def relays(self) -> list[str]:
        return sorted(relay.label for relay in self._live)

    def _gone(self, relay: _Relay, reason: str) -> None:
        self._queue.put_nowait(("gone", relay, reason))

    def _process(self, item: tuple[str, _Relay, Any]) -> None:
        what, relay, data = item
        if what == "event" and relay in self._live:
            event = self._verified(relay, data)
            if event is not None:
                self._events.append(event)
        elif what == "eose":
            self._eose.add(relay)
        elif what == "gone":
            self._live.discard(relay)
            self._why[relay.label] = str(data)
        elif what == "ok":
            accepted, said = data
            if not accepted:
                self._refused[relay] = said
                log.info("nostr_relay_refused_event", relay=relay.label, reason=said)

    def _verified(self, relay: _Relay, data: Any) -> Event | None:
        try:
            event = parse_event(data)
        except NostrError as exc:
            log.warning("nostr_relay_sent_invalid_event", relay=relay.label, problem=exc.code)
            return None
        if not any(matches(flt, event) for flt in self.filters):
            log.warning("nostr_relay_sent_unrequested_event", relay=relay.label, kind=event.kind)
            return None
        if event.id in self._seen:
            return None
        self._seen[event.id] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return event

    def _check(self) -> None:
        if not self._live:
            raise RelayUnavailable(self._account() or "no relay is connected")
        if self._published:
            hopeful = [r for r in self._published if r in self._live and r not in self._refused]
            if not hopeful:
                said = "; ".join(f"{r.label}: {why or 'refused'}" for r, why in self._refused.items())
                raise EventRejected(_clip(said or "no relay took the event"))

    def _account(self) -> str:
        return _clip("; ".join(f"{label} {why}" for label, why in sorted(self._why.items())))

    async def _pump(self) -> None:
        self._process(await self._queue.get())
        while not self._queue.empty():
            self._process(self._queue.get_nowait())

    async def _step(self) -> None:
        self._check()
        await self._pump()

    async def ready(self) -> None:
        """Until every relay still listening has sent ``EOSE`` (what it stores has arrived).

        Raises :class:`RelayUnavailable` only when no relay got that far."""
        while not self._live <= self._eose:
            await self._pump()
        if not self._eose:
            raise RelayUnavailable(self._account() or "no relay is connected")

    def stored(self) -> list[Event]:
        """The events received so far (after :meth:`ready`: what the relays store), taken out."""
        events = list(self._events)
        self._events.clear()
        return events

    async def next(self) -> Event:
        """The next matching event; raises when no relay is left or all refused our event."""
        while not self._events:
            await self._step()
        return self._events.popleft()

    async def publish(self, event: Event) -> int:
        """Send ``event`` to every relay of this subscription; how many it was written to.

        ``OK`` answers arrive through :meth:`next`, which raises :class:`EventRejected` once every
        relay refused. :attr:`sent` turns true before the first write: from then on the event
        may have left, whatever happens next.
        """
        frame = ["EVENT", event.to_json()]
        written = 0
        for relay in sorted(self._live, key=lambda r: r.label):
            relay.expect_ok(event.id, self)
            self.sent = True
            try:
                await relay.send(frame)
            except (ConnectionClosed, RelayUnavailable) as exc:
                self._gone(relay, _reason(exc) if isinstance(exc, ConnectionClosed) else "is not connected")
                continue
            self._published.add(relay)
            written += 1
        if not written:
            self.sent = False  # every write was refused before it happened
        return written

    async def _attach(self, relays: Iterable[_Relay]) -> None:
        for relay in relays:
            try:
                await relay.subscribe(self)
            except Exception as exc:
                self._why[relay.label] = (
                    _reason(exc) if not isinstance(exc, RelayError) else "is not connected"
                )
                continue
            self._live.add(relay)

    async def close(self, relays: Iterable[_Relay]) -> None:
        for relay in relays:
            await relay.unsubscribe(self)
        self._live.clear()


class RelayPool:
    """The relays of one connection string; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        open_timeout: float = 10.0,
        ping_interval: float = PING_INTERVAL,
        address_rule: AddressRule | None = None,
    ) -> None:
        if not urls:
            raise ValueError("a relay pool needs at least one relay")
        self._relays = [_Relay(check_relay_url(url), self) for url in dict.fromkeys(urls)]
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.address_rule = address_rule
        self._slots = asyncio.Semaphore(MAX_SUBSCRIPTIONS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def labels(self) -> list[str]:
        return [relay.label for relay in self._relays]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _candidates(self) -> list[_Relay]:
        now = time.monotonic()
        usable = [r for r in self._relays if r.connected or r.down_until <= now]
        return usable or list(self._relays)  # all cooling down: try them all rather than none

    @contextlib.asynccontextmanager
    async def subscription(self, filters: Sequence[Mapping[str, Any]]) -> AsyncIterator[Subscription]:
        """A :class:`Subscription` on every relay that can be reached, closed on exit."""
        if self._closed:
            raise RelayUnavailable("the relay pool is closed")
        # more subscriptions wait here rather than be refused by the relays
        async with self._slots, self._subscribed(filters) as sub:
            yield sub

    @contextlib.asynccontextmanager
    async def _subscribed(self, filters: Sequence[Mapping[str, Any]]) -> AsyncIterator[Subscription]:
        relays = self._candidates()
        results = await asyncio.gather(*(r.connect() for r in relays), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        sub = Subscription(filters)
        for relay, result in zip(relays, results, strict=True):
            if isinstance(result, Exception):
                sub._why[relay.label] = relay.last_error or _reason(result)
        await sub._attach(r for r, result in zip(relays, results, strict=True) if result is None)
        try:
            sub._check()
            yield sub
        finally:
            await sub.close(self._relays)

    async def close(self) -> None:
        self._closed = True
        for relay in self._relays:
            await relay.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
