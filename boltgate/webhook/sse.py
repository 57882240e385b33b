"""Server-Sent Events for one invoice: the current state first, then every event as it commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

from boltgate.webhook.feed import EventFeed

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 3600.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def stream(
    feed: EventFeed,
    invoice_id: str,
    initial: Callable[[], Awaitable[bytes]],
    render: Callable[[dict[str, Any]], Awaitable[bytes | None]],
) -> StreamingResponse:
    """``initial()`` is read after subscribing, so nothing that commits in between is missed."""

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

    return StreamingResponse(body(), media_type="text/event-stream", headers=HEADERS)
