"""``ANY /l402/proxy/{proxyId}/{path}``: price the request, demand payment, forward it, stream back.

The order of the checks is the order of their cost: the id's shape, the proxy (from memory), the
path's safety, the headers' size, the price, the credential, the proxy's concurrency budget; only
then a connection to the upstream. Bodies stream both ways (a download or an upload of any size
passes through in chunks; the request middleware's body limit is the proxy's own,
``BOLTGATE_PROXY_MAX_BODY_BYTES``).

What crosses the proxy: method, the path as the client encoded it (after the proxy's prefix),
the query, the body and the end-to-end headers. What does not: hop-by-hop headers (and those named
in ``Connection``), the client's credentials for this gateway (``Authorization``, ``X-API-Key``)
and cookies in either direction (they would belong to this gateway's origin). Added:
``X-Forwarded-For`` (the client's address as this gateway sees it, replacing what the client
sent), ``X-Forwarded-Proto``, ``X-Forwarded-Host``. Responses get
``Content-Security-Policy: sandbox``, so a page an upstream serves cannot run as this origin.
Upstream redirects and errors are passed through unchanged; our own failures are problems: 502
(cannot connect, address not allowed, broken response), 504 (too slow), 503 (too many requests in
flight to this proxy).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from boltgate.context import Context
from boltgate.errors import (
    BadGateway,
    GatewayTimeout,
    Gone,
    HeadersTooLarge,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from boltgate.l402 import guard, service
from boltgate.l402.guard import PaymentRequired
from boltgate.l402.service import Offer
from boltgate.proxy import paths, relay
from boltgate.proxy.directory import Entry
from boltgate.web import client_address, problems

router = APIRouter(tags=["l402 proxy"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
PROXY_ID = re.compile(r"^prx_[0-9A-Za-z]{20}$")
REQUESTS, PAID, CHALLENGED, UPSTREAM_ERRORS = range(4)  # usage counters


def _retired(entry: Entry) -> Gone:
    reason = f" ({entry.retire_reason})" if entry.retire_reason else ""
    return Gone(f"proxy {entry.proxy_id} was retired by its producer{reason}", code="proxy_retired")


async def find(ctx: Context, proxy_id: str) -> Entry:
    """The live proxy with this id: 404 ``proxy_not_found``, or 410 ``proxy_retired``."""
    entry = await ctx.proxies.get(proxy_id) if PROXY_ID.match(proxy_id) else None
    if entry is None:
        raise NotFound(f"proxy {proxy_id[:40]} not found", code="proxy_not_found")
    if entry.retired:
        raise _retired(entry)
    return entry


def _check_headers(ctx: Context, scope: Scope) -> None:
    size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    if size > ctx.settings.proxy_max_header_bytes:
        limit = ctx.settings.proxy_max_header_bytes
        raise HeadersTooLarge(f"the request headers take {size} bytes; at most {limit} pass the proxy")


async def _admit(ctx: Context, request: Request, entry: Entry, offer: Offer, key: str | None) -> None:
    """Raise the 402 unless the request's credential pays for ``offer`` (and has calls left)."""
    now = ctx.clock()
    if "authorization" not in request.headers:
        # an unpaid call can mint an invoice: it counts against the client address's rate limit
        # (paid calls do not, so a producer's paying customers are never slowed down here)
        await ctx.limiter.check("ip:" + client_address(request))
    try:
        paid = await guard.require(ctx, request, offer, reuse=True)
        if (
            offer.max_uses is not None
            and paid.scheme == "L402"
            and not await service.use_once(ctx, paid.payment_hash)
        ):
            reason = f"this token has made the {offer.max_uses} calls it was sold for; pay again"
            raise PaymentRequired(await guard.challenge_response(ctx, request, offer, reason, reuse=True))
    except PaymentRequired:
        ctx.usage.add(entry.proxy_id, key, now, CHALLENGED)
        raise
    ctx.usage.add(entry.proxy_id, key, now, PAID)


async def forward(request: Request, proxy_id: str) -> Response:
    ctx: Context = request.app.state.ctx
    scope = request.scope
    entry = await find(ctx, proxy_id)
    prefix = f"/l402/proxy/{proxy_id}".encode()
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()  # servers without raw_path
    try:
        forwarded, decoded = paths.forwarded_path(raw_path, prefix)
    except paths.UnsafePath as exc:
        raise ValidationFailed(str(exc), code=exc.code) from exc
    _check_headers(ctx, scope)
    price = entry.table.price(scope["method"], decoded)
    key = price.endpoint_id
    ctx.usage.add(proxy_id, key, ctx.clock(), REQUESTS)
    if price.price_sats > 0:
        offer = Offer(
            resource=f"proxy:{proxy_id}:{key or '*'}",
            amount_sats=price.price_sats,
            merchant_id=entry.merchant_id,
            description=f"{entry.name}: {scope['method']} {price.pattern or decoded}"[:200],
            ttl_seconds=entry.token_ttl_seconds,
            max_uses=entry.max_calls_per_token,
        )
        await _admit(ctx, request, entry, offer, key)
    try:
        url = paths.upstream_url(entry.target_base_url, forwarded, scope["query_string"])
    except paths.UnsafePath as exc:  # a target stored before the rules tightened: the producer's to fix
        raise BadGateway("the proxy's target URL is not usable", code="invalid_target") from exc
    return await _relay(ctx, request, entry, key, url)


async def _relay(ctx: Context, request: Request, entry: Entry, key: str | None, url: str) -> Response:
    in_flight = ctx.proxy_in_flight
    if in_flight.get(entry.proxy_id, 0) >= ctx.settings.proxy_max_concurrent:
        raise ServiceUnavailable(
            "this proxy has too many requests in flight; retry shortly",
            code="proxy_busy",
            headers={"Retry-After": "1"},
        )
    in_flight[entry.proxy_id] = in_flight.get(entry.proxy_id, 0) + 1
    try:
        upstream = await relay.send(ctx.proxy_http, ctx.proxy_networks, request, url)
    except (BadGateway, GatewayTimeout):
        ctx.usage.add(entry.proxy_id, key, ctx.clock(), UPSTREAM_ERRORS)
        _release(ctx, entry.proxy_id)
        raise
    except BaseException:
        _release(ctx, entry.proxy_id)
        raise
    return _Releasing(upstream, [(b"content-security-policy", b"sandbox")], ctx, entry.proxy_id)


def _release(ctx: Context, proxy_id: str) -> None:
    left = ctx.proxy_in_flight.get(proxy_id, 1) - 1
    if left > 0:
        ctx.proxy_in_flight[proxy_id] = left
    else:
        ctx.proxy_in_flight.pop(proxy_id, None)


class _Releasing(relay.Streamed):
    """Counts the request as in flight until its body has been relayed (or abandoned)."""

    def __init__(
        self, upstream: aiohttp.ClientResponse, extra: list[tuple[bytes, bytes]], ctx: Context, proxy_id: str
    ) -> None:
        super().__init__(upstream, extra)
        self._ctx = ctx
        self._proxy_id = proxy_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            _release(self._ctx, self._proxy_id)


_DOC: dict[str, Any] = {
    "responses": {
        200: {"description": "The upstream's response, unchanged (any status it sends)"},
        **problems(400, 402, 404, 410, 429, 431, 502, 503, 504),
    },
}


@router.api_route(
    "/l402/proxy/{proxy_id}/{path:path}",
    methods=METHODS,
    summary="Call the proxied API: 402 with an L402 and a Payment challenge until paid, then forwarded",
    **_DOC,
)
async def proxied(request: Request, proxy_id: str, path: str) -> Response:
    return await forward(request, proxy_id)


@router.api_route(
    "/l402/proxy/{proxy_id}", methods=METHODS, summary="Call the proxied API's root", include_in_schema=False
)
async def proxied_root(request: Request, proxy_id: str) -> Response:
    return await forward(request, proxy_id)
