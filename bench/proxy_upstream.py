"""The upstream API of ``bench/proxy.py``: a raw ASGI app that does as little as it can.

Run as its own process: ``.venv/bin/python bench/proxy_upstream.py <port>`` (127.0.0.1, uvicorn with
httptools and uvloop, access log off). Routes:

* ``GET /data``: a small JSON object (about 200 bytes), the request the latency cells send;
* ``GET /big?size=N``: N zero bytes with a ``Content-Length``, sent in 256 KiB chunks (uvicorn's
  flow control holds each send until the client reads, so this process never buffers the body);
* ``POST /upload``: reads the body to its end, keeping nothing, and answers ``{"size": <bytes read>}``;
* anything else: 404.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

# bench/ holds modules (bolt11.py, proxy.py) that shadow packages: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import uvicorn  # noqa: E402

CHUNK = 256 * 1024
ZEROS = bytes(CHUNK)
DATA = json.dumps(
    {
        "id": "bench-0001",
        "status": "ok",
        "items": [{"sku": f"item-{n}", "price": n * 100, "qty": n} for n in range(1, 4)],
        "note": "a small upstream answer for the proxy benchmark",
    },
    separators=(",", ":"),
).encode()

Scope = dict[str, Any]
Message = dict[str, Any]


def _head(status: int, length: int, content_type: bytes = b"application/json") -> Message:
    headers = [(b"content-type", content_type), (b"content-length", str(length).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def _small(send: Any, status: int, body: bytes) -> None:
    await send(_head(status, len(body)))
    await send({"type": "http.response.body", "body": body})


async def _big(scope: Scope, send: Any) -> None:
    query = parse_qs(scope["query_string"].decode("latin-1"))
    try:
        size = int(query.get("size", ["0"])[0])
    except ValueError:
        await _small(send, 400, b'{"error":"size must be an integer"}')
        return
    await send(_head(200, size, b"application/octet-stream"))
    left = size
    while left > CHUNK:
        await send({"type": "http.response.body", "body": ZEROS, "more_body": True})
        left -= CHUNK
    await send({"type": "http.response.body", "body": ZEROS[:left]})


async def _upload(receive: Any, send: Any) -> None:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await _small(send, 200, b'{"size":%d}' % size)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if path == "/data" and method == "GET":
        await _small(send, 200, DATA)
    elif path == "/big" and method == "GET":
        await _big(scope, send)
    elif path == "/upload" and method == "POST":
        await _upload(receive, send)
    else:
        await _small(send, 404, b'{"error":"not found"}')


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: proxy_upstream.py <port>")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
