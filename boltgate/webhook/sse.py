"""Server-Sent Events for one invoice: the current state first, then every event as it commits.

A stream holds its connection for up to an hour, so open streams are counted per owner (the
client address for the public checkout stream, the merchant for the API's) and one past the cap
is refused with 429 ``too_many_streams`` before anything is streamed. The count is per process
and is given back when the response ends, however it ends (finished, client gone, cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from boltgate.errors import RateLimited
from boltgate.webhook.feed import EventFeed

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 3600.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


class StreamSlots:
    """Open streams per owner, at most ``limit`` each."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def take(self, owner: str, limit: int, who: str) -> Callable[[], None]:
        """A slot for one more stream of ``owner`` (429 when it has ``limit`` open); returns the
        function that gives it back (once)."""
        count = self.open.get(owner, 0)
        if count >= limit:
            raise RateLimited(
                f"{who} has {count} event streams open, the most allowed; close one first",
                code="too_many_streams",
                headers={"Retry-After": "5"},
            )
        self.open[owner] = count + 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                left = self.open[owner] - 1
                if left:
                    self.open[owner] = left
                else:
                    del self.open[owner]

        return give_back


class _SlotStream(StreamingResponse):
    """A streaming response that gives its slot back when it ends."""

    def __init__(self, body: AsyncIterator[bytes], give_back: Callable[[], None]) -> None:
        super().__init__(body, media_type="text/event-stream", headers=HEADERS)
        self._give_back = give_back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._give_back()


def stream(
    feed: EventFeed,
    invoice_id: str,
    initial: Callable[[], Awaitable[bytes]],
    render: Callable[[dict[str, Any]], Awaitable[bytes | None]],
    give_back: Callable[[], None],
) -> StreamingResponse:
    """``initial()`` is read after subscribing, so nothing that commits in between is missed;
    ``give_back`` (of :meth:`StreamSlots.take`) is called when the response ends."""

    async def body() -> AsyncIterator[bytes]:
        with feed.subscribe(invoice_id) as queue:
            yield b"retry: 3000\n\n" + await initial()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + MAX_STREAM_SECONDS
            while loop.time() < deadline:
                try:
                    async with asyncio.timeout(HEARTBEAT_SECONDS):
                        event = await queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                chunk = await render(event)
                if chunk:
                    yield chunk

    return _SlotStream(body(), give_back)
