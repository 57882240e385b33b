"""A fake Shopify Admin GraphQL API on loopback, faithful enough to catch a client's mistakes.

Queries are validated and executed by graphql-core against ``fake_schema.graphql``, a subset of the
real Admin schema, so an unknown field, argument, type or enum value fails as on Shopify. State is
plain Python objects per shop that tests read and change directly. Paths (the gateway's base URL
for a store is ``fake.shop_url(domain)``)::

    POST /shops/{shop}/admin/api/{version}/graphql.json   (X-Shopify-Access-Token)
    POST /shops/{shop}/admin/oauth/access_token           (client-credentials grant, form body)

Every executed GraphQL answer carries ``extensions.cost``; a leaky bucket per shop throttles with
Shopify's THROTTLED error (HTTP 200). Faults for the next GraphQL calls: ``throttle_next``,
``status_next``, ``delay_next`` and ``delay_after_execute_next``. ``send_webhook`` signs and POSTs
REST-shaped webhook payloads built by ``order_payload`` / ``product_payload``.

Guesses (Shopify does not document them): the messages of orderCreate userErrors, the OAuth error
body for bad client credentials, and the graphql-ruby style ``extensions.code`` of schema errors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import re
import secrets
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.shopify.fake_graphql import run
from tests.shopify.fake_store import (
    Fulfillment,
    Order,
    Product,
    ProductVariant,
    Shop,
    order_payload,
    product_payload,
)

__all__ = ["FakeShopify", "Fulfillment", "Order", "Product", "ProductVariant", "Shop"]

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
GRAPHQL_PATH = re.compile(r"^/shops/(?P<shop>[^/]+)/admin/api/(?P<version>[^/]+)/graphql\.json$")
TOKEN_PATH = re.compile(r"^/shops/(?P<shop>[^/]+)/admin/oauth/access_token$")


@dataclass
class _Status:
    status: int
    body: Any
    headers: dict[str, str]


class FakeShopify:
    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.shops: dict[str, Shop] = {}
        self.requests: list[dict[str, Any]] = []  # one per GraphQL call
        self.token_requests: list[dict[str, Any]] = []  # one per OAuth token call
        self.webhook_api_version = "2026-07"
        self._ids: dict[str, itertools.count[int]] = {}
        self._throttle: deque[bool] = deque()
        self._status: deque[_Status] = deque()
        self._delay: deque[float] = deque()
        self._delay_after: deque[float] = deque()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=port, log_config=None, lifespan="off", interface="asgi3"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    # -- state and faults

    def next_id(self, kind: str) -> int:
        """Large numeric ids, unique per kind, in the ranges real stores show."""
        if kind not in self._ids:
            base = {"Product": 8_812_345_600_000, "ProductVariant": 45_123_456_700_000}.get(kind)
            self._ids[kind] = itertools.count(base or 5_600_000_000_000 + 10**11 * len(self._ids), 1_013)
        return next(self._ids[kind])

    def shop_url(self, domain: str) -> str:
        return f"{self.base_url}/shops/{domain}"

    def add_shop(
        self,
        domain: str,
        *,
        name: str,
        currency: str = "USD",
        access_token: str | None = None,
        client_id: str | None = None,
        client_secret: str = "shpss_test_secret",
        scopes: tuple[str, ...] = ("read_products", "write_orders"),
    ) -> Shop:
        shop = Shop(self.next_id, domain, name, currency, client_id, client_secret, tuple(scopes))
        shop.legacy_resource_id = self.next_id("Shop")
        if access_token is not None:
            shop.tokens.add(access_token)
        self.shops[domain] = shop
        return shop

    def shop(self, shop: str | Shop) -> Shop:
        return shop if isinstance(shop, Shop) else self.shops[shop]

    def reset(self) -> None:
        """Clear faults and recorded requests, and refill every bucket (shops and data stay)."""
        for queue in (self._throttle, self._status, self._delay, self._delay_after):
            queue.clear()
        self.requests.clear()
        self.token_requests.clear()
        for shop in self.shops.values():
            shop.currently_available = shop.maximum_available

    def throttle_next(self, n: int = 1) -> None:
        self._throttle.extend([True] * n)

    def status_next(
        self, n: int, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next n GraphQL calls get this answer (a dict/list body is JSON, str/bytes raw)."""
        if body is None:
            body = {
                "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
                if status == 429
                else "Internal Server Error"
            }
        if headers is None:
            headers = {"Retry-After": "1"} if status == 429 else {}
        self._status.extend([_Status(status, body, headers)] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next n GraphQL calls wait before anything happens; a client that gives up meanwhile
        leaves nothing done (the call is recorded with outcome ``abandoned``)."""
        self._delay.extend([seconds] * n)

    def delay_after_execute_next(self, n: int, seconds: float) -> None:
        """The next n GraphQL calls are executed (an order is created), then answered late."""
        self._delay_after.extend([seconds] * n)

    def fulfil(
        self,
        shop: str | Shop,
        order_gid: str,
        company: str | None,
        number: str | None,
        url: str | None = None,
        *,
        delivered: bool = False,
    ) -> Fulfillment:
        """A SUCCESS fulfilment with this tracking; the order becomes FULFILLED."""
        return self.shop(shop).fulfil(order_gid, company, number, url, delivered=delivered)

    def cancel(self, shop: str | Shop, order_gid: str) -> Order:
        return self.shop(shop).cancel(order_gid)

    # -- HTTP

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        if (match := TOKEN_PATH.match(path)) and scope["method"] == "POST":
            await self._token(send, match["shop"], headers, body)
        elif (match := GRAPHQL_PATH.match(path)) and scope["method"] == "POST":
            await self._graphql(receive, send, match["shop"], match["version"], headers, body)
        else:
            await _respond(send, 404, {"errors": "Not Found"})

    async def _token(self, send: Send, domain: str, headers: dict[str, str], body: bytes) -> None:
        try:
            if headers.get("content-type", "").startswith("application/json"):
                form = {k: str(v) for k, v in orjson.loads(body or b"{}").items()}
            else:
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        except (ValueError, AttributeError):
            form = {}
        self.token_requests.append({"shop": domain, "form": form, "headers": headers})
        shop = self.shops.get(domain)
        if shop is None:
            return await _respond(send, 404, {"errors": "Not Found"})
        if form.get("grant_type") != "client_credentials":
            error = {
                "error": "unsupported_grant_type",
                "error_description": "The grant type is not supported.",
            }
            return await _respond(send, 400, error)
        if shop.client_id is None or (form.get("client_id"), form.get("client_secret")) != (
            shop.client_id,
            shop.client_secret,
        ):
            description = "Client authentication failed due to unknown client or invalid credentials."
            return await _respond(send, 400, {"error": "invalid_client", "error_description": description})
        token = f"shpat_{secrets.token_hex(16)}"
        shop.tokens.add(token)
        await _respond(
            send, 200, {"access_token": token, "scope": ",".join(shop.scopes), "expires_in": 86399}
        )

    async def _graphql(
        self, receive: Receive, send: Send, domain: str, version: str, headers: dict[str, str], body: bytes
    ) -> None:
        try:
            request = orjson.loads(body)
            query = request["query"]
            variables = request.get("variables") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            request, query, variables = {}, None, {}
        record: dict[str, Any] = {
            "shop": domain, "version": version, "operationName": request.get("operationName"),
            "variables": variables, "query": query, "headers": headers, "outcome": None,
        }  # fmt: skip
        self.requests.append(record)
        if self._delay:
            try:  # answer late, unless the client hangs up first: then nothing is done
                await asyncio.wait_for(receive(), timeout=self._delay.popleft())
                record["outcome"] = "abandoned"
                return
            except TimeoutError:
                pass
        if self._status:
            fault = self._status.popleft()
            record["outcome"] = f"status {fault.status}"
            return await _respond(send, fault.status, fault.body, fault.headers)
        shop = self.shops.get(domain)
        if shop is None:
            record["outcome"] = "unknown shop"
            return await _respond(send, 404, {"errors": "Not Found"})
        if headers.get("x-shopify-access-token") not in shop.tokens:
            record["outcome"] = "unauthorized"
            return await _respond(send, 401, {"errors": INVALID_TOKEN})
        if not isinstance(query, str):
            record["outcome"] = "bad request"
            return await _respond(send, 400, {"errors": {"query": "Required parameter missing or invalid"}})
        throttle = self._throttle.popleft() if self._throttle else False
        answer = run(shop, query, variables, request.get("operationName"), record, throttle)
        delay = self._delay_after.popleft() if self._delay_after else 0.0
        if delay:
            await asyncio.sleep(delay)
        await _respond(send, 200, answer, {"X-Shopify-API-Version": version})

    # -- webhooks out

    @staticmethod
    def sign(body: bytes, secret: str) -> str:
        """``X-Shopify-Hmac-SHA256``: base64 of HMAC-SHA256 over the raw body, keyed by the secret."""
        return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()

    async def send_webhook(
        self,
        url: str,
        shop: str | Shop,
        topic: str,
        payload: dict[str, Any] | bytes,
        *,
        secret: str | None = None,
        webhook_id: str | None = None,
        event_id: str | None = None,
        api_version: str | None = None,
        timeout: float = 5.0,
    ) -> httpx.Response:
        """POST a webhook delivery as Shopify does (HTTPS delivery headers, HMAC over the raw body)."""
        found = self.shop(shop)
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": self.sign(body, secret if secret is not None else found.client_secret),
            "X-Shopify-Shop-Domain": found.domain,
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-API-Version": api_version or self.webhook_api_version,
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "User-Agent": "Shopify-Captain-Hook",
        }
        async with httpx.AsyncClient(timeout=timeout) as http:
            return await http.post(url, content=body, headers=headers)

    def order_payload(self, shop: str | Shop, order_gid: str) -> dict[str, Any]:
        """The REST Order resource, as ``orders/*`` webhooks carry it (snake_case)."""
        return order_payload(self.shop(shop).order(order_gid))

    def product_payload(self, shop: str | Shop, product_gid: str) -> dict[str, Any]:
        """The REST Product resource, as ``products/*`` webhooks carry it (snake_case)."""
        return product_payload(self.shop(shop).product(product_gid))


async def _respond(send: Send, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
    if isinstance(data, str | bytes):
        body, kind = (data.encode() if isinstance(data, str) else data), b"text/html; charset=utf-8"
    else:
        body, kind = orjson.dumps(data, default=_json_default), b"application/json; charset=utf-8"
    out = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    out += [(b"x-request-id", str(uuid.uuid4()).encode())]
    out += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
