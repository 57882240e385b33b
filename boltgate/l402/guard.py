"""The 402 guard any route can use: ``Depends(paid(…))``, or ``await require(ctx, request, offer)``
in the handler (the same check without FastAPI's dependency resolution, ~20-40 µs cheaper per
request here: the hot paid routes call it directly).

Without a valid credential the route answers ``402 Payment Required`` with two
``WWW-Authenticate`` lines for one fresh invoice — ``L402 macaroon="…", invoice="…"`` first
(exactly this order: the published clients' parsers need it) and then the ``Payment`` challenge —
a problem+json body saying why, and ``Cache-Control: no-store``. A credential that is stale,
spent, expired, for another resource or another server gets the same fresh 402, never a 401: the
clients pay again on a 402 and give up on a 401.

Accepted: ``Authorization: L402|LSAT <macaroon>[,…]:<preimage>`` (reusable until its caveats
expire), ``Payment <base64url JSON>`` and the legacy ``Payment method="lightning", preimage="…"``
(both single use). On success the response carries ``Payment-Receipt`` (never the preimage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response

from boltgate.context import Context
from boltgate.errors import PROBLEM_CONTENT_TYPE
from boltgate.l402 import caveats, mpp, service
from boltgate.l402.service import Offer, Verdict
from boltgate.web import client_address, ip_rate_limit, problems

MAX_AUTHORIZATION = 16_384  # a header longer than this is not a credential we could have issued
RECEIPT_STATE = "payment_receipt"  # request.state key the request middleware turns into the header
PAID_RESPONSES: dict[int | str, dict[str, Any]] = problems(402, 429)
PUBLIC = [Depends(ip_rate_limit)]  # public routes (each unpaid call mints an invoice): limited per IP


class PaymentRequired(Exception):
    """Raised by the guard; the app's handler sends ``response`` (the 402) as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__("payment required")
        self.response = response


@dataclass(frozen=True, slots=True)
class Paid:
    """What a paid route learns: how it was paid."""

    payment_hash: str
    scheme: str


def payer_of(request: Request) -> str:
    """The key an offer is reused under: a hash of the client's address (not stored in clear)."""
    client = client_address(request)
    return hashlib.sha256(client.encode()).hexdigest()[:32]


async def challenge_response(
    ctx: Context, request: Request, offer: Offer, reason: str | None, *, reuse: bool
) -> Response:
    issued = await service.mint(ctx, ctx.l402, offer, payer=payer_of(request) if reuse else None)
    detail = reason or f"Pay {offer.amount_sats} sat to access {offer.resource}"
    body = {
        "error": "payment_required",
        "type": mpp.PROBLEM_BASE + "payment-required",
        "title": "Payment required",
        "status": 402,
        "detail": detail,
        "message": detail,
        "priceSats": offer.amount_sats,
        "invoice": issued.challenge.invoice,
        "paymentHash": issued.challenge.payment_hash,
        "expiresAt": issued.mpp_challenge.expires,
    }
    response = Response(orjson.dumps(body), status_code=402, media_type=PROBLEM_CONTENT_TYPE)
    for line in issued.www_authenticate():
        response.raw_headers.append((b"www-authenticate", line.encode("latin-1")))
    response.raw_headers.append((b"cache-control", b"no-store"))
    return response


async def check(
    ctx: Context, header: str | None, offer: Offer, need: caveats.Requirement
) -> tuple[Verdict | None, str | None]:
    """The verdict on the request's ``Authorization`` (None when it has none) and why it failed."""
    if not header:
        return None, None
    if len(header) > MAX_AUTHORIZATION:
        return None, "the Authorization header is too long"
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme in ("l402", "lsat"):
        verdict = await service.check_l402(ctx.l402, value, need)
        if verdict.ok and verdict.payment_hash:
            await service.mark_paid(ctx, ctx.l402, verdict.payment_hash)
    elif scheme == "payment":
        verdict = await service.check_payment(ctx, ctx.l402, header, need, offer.resource, offer.merchant_id)
    else:
        return None, f"unsupported authorization scheme {scheme[:20]!r}; use L402 or Payment"
    return verdict, verdict.reason


async def require(
    ctx: Context, request: Request, offer: Offer, *, capability: str | None = None, reuse: bool = False
) -> Paid:
    """Admit the request if its credential pays for ``offer``; otherwise raise the 402."""
    now = ctx.clock()
    header = request.headers.get("authorization")
    # A token that verified for this resource moments ago is not verified again: agents reuse
    # tokens, and the cache holds an L402 verdict at most VERIFIED_TTL seconds (and never past
    # the token's validity), so a revoked root key stops working within that time.
    cache_key = (header, offer.resource, offer.merchant_id, capability) if header else None
    cached = ctx.l402.verified.get(cache_key) if cache_key else None
    if cached is not None and cached[1] > now.timestamp():
        verdict = cached[0]
    else:
        need = caveats.Requirement(
            now=int(now.timestamp()),
            service=service.SERVICE,
            capability=capability,
            merchant_id=offer.merchant_id if offer.merchant_id is not None else caveats.GATEWAY,
            resource=offer.resource,
        )
        found, reason = await check(ctx, header, offer, need)
        if found is None or not found.ok or found.payment_hash is None or found.scheme is None:
            raise PaymentRequired(await challenge_response(ctx, request, offer, reason, reuse=reuse))
        verdict = found
        if cache_key and verdict.scheme == "L402":  # Payment credentials are single use: never cached
            ctx.l402.remember_verdict(cache_key, verdict, now.timestamp(), verdict.valid_until)
    request.scope.setdefault("state", {})[RECEIPT_STATE] = service.receipt(verdict, now)
    return Paid(payment_hash=verdict.payment_hash or "", scheme=verdict.scheme or "L402")


def paid(
    price_sats: int | Callable[[Context], int],
    *,
    description: str | None = None,
    capability: str | None = None,
    reuse: bool = False,
) -> Callable[[Request], Awaitable[Paid]]:
    """A dependency that makes a route cost ``price_sats`` (a number, or read from the context).

    The token it sells opens this route (method and path template) only.
    """

    async def dependency(request: Request) -> Paid:
        ctx: Context = request.app.state.ctx
        route = request.scope.get("route")
        path = route.path if route is not None else request.scope["path"]
        offer = Offer(
            resource=f"{request.method} {path}",
            amount_sats=price_sats if isinstance(price_sats, int) else price_sats(ctx),
            merchant_id=None,
            description=description,
            capabilities=(capability,) if capability else (),
        )
        return await require(ctx, request, offer, capability=capability, reuse=reuse)

    return dependency
