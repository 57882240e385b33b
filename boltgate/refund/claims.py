"""Claim links: a refund with no destination becomes an LNURL-withdraw link (LUD-03) the customer
opens in a wallet. The gateway serves the withdraw request and its callback: the first invoice a
wallet submits for exactly the refund's amount is bound to the refund (a conditional update, so
only once) and paid; every later submission is refused.

The link's secret part is an HMAC of the refund id under a key derived from the server key: it
can be shown again to the merchant (``GET /api/refunds/{id}``) without being stored. New links
are made with the current server key; a link made under a previous key of the ring
(``BOLTGATE_SECRET_KEY_PREVIOUS``) still opens, and its withdraw request and ``k1`` stay under
that key, so a link already sent survives a key rotation while the old key is kept.
"""

from __future__ import annotations

import hmac
from typing import Any

from sqlalchemy.exc import IntegrityError

from boltgate.context import Context
from boltgate.errors import Gone, NotFound, ValidationFailed
from boltgate.kit.crypto import key_ring
from boltgate.refund import lnurl, paying, repository, service
from boltgate.refund.checks import check_invoice, clean
from boltgate.refund.models import Refund

CLAIM_KEY_PURPOSE = "refund-claim-links"


def claim_key(ctx: Context) -> bytes:
    """The key new claim links are made with (the current server key's)."""
    return key_ring(ctx.settings).key(CLAIM_KEY_PURPOSE)


def _key_of(ctx: Context, refund_id: str, tag: str) -> bytes | None:
    """The ring key the link's tag was made with (current first), or None."""
    for key in key_ring(ctx.settings).keys(CLAIM_KEY_PURPOSE):
        if hmac.compare_digest(tag.encode(), lnurl.claim_tag(key, refund_id).encode()):
            return key
    return None


def claim_of(ctx: Context, refund: Refund) -> dict[str, Any] | None:
    if refund.type != "claim":
        return None
    return lnurl.claim_out(ctx.settings.base_url, claim_key(ctx), refund.id, refund.claim_expires_at)


async def _open_claim(ctx: Context, refund_id: str, tag: str) -> tuple[Refund, bytes]:
    """The claimable refund of a link and the key of its tag; 404 for a wrong link, 410 when it
    can no longer be claimed."""
    key = _key_of(ctx, refund_id, tag)
    if key is None:
        raise NotFound("no such claim link", code="claim_not_found")
    async with ctx.db.reading() as session:
        refund = await repository.get_any(session, refund_id)
    if refund is None or refund.type != "claim":
        raise NotFound("no such claim link", code="claim_not_found")
    if refund.payment_hash is not None or refund.status == "completed":
        raise Gone("this refund was already claimed", code="claim_used")
    expired = refund.claim_expires_at is None or refund.claim_expires_at <= ctx.clock()
    if refund.status != "pending" or expired:
        raise Gone("this claim link has expired", code="claim_expired")
    return refund, key


async def withdraw_request(ctx: Context, refund_id: str, tag: str) -> dict[str, Any]:
    """The LUD-03 withdrawRequest: exactly the refund's amount, once."""
    refund, key = await _open_claim(ctx, refund_id, tag)
    url = lnurl.claim_url(ctx.settings.base_url, key, refund_id)
    return {
        "tag": "withdrawRequest",
        "callback": url + "/callback",
        "k1": lnurl.claim_k1(key, refund_id),
        "defaultDescription": f"Refund {refund.id}",
        "minWithdrawable": refund.amount_sats * 1000,
        "maxWithdrawable": refund.amount_sats * 1000,
    }


async def withdraw(ctx: Context, refund_id: str, tag: str, k1: str | None, pr: str | None) -> None:
    """The LUD-03 callback: check the wallet's invoice, bind it to the refund once, pay it."""
    refund, key = await _open_claim(ctx, refund_id, tag)
    if k1 is None or not hmac.compare_digest(k1.encode(), lnurl.claim_k1(key, refund_id).encode()):
        raise ValidationFailed(
            "k1: does not match this withdraw request", errors={"k1": ["is wrong"]}, code="invalid_k1"
        )
    if not pr:
        raise ValidationFailed(
            "pr: an invoice is required", errors={"pr": ["is required"]}, code="invalid_invoice"
        )
    now = ctx.clock()
    invoice = check_invoice(
        pr, network=ctx.settings.network, amount_msat=refund.amount_sats * 1000, now=now, field="pr"
    )
    payment_hash = invoice.payment_hash.hex()
    try:
        async with ctx.db.writing() as session:
            await service.check_new_hash(session, payment_hash, "pr")
            taken = await repository.take_claim(session, refund_id, clean(pr), payment_hash, now)
    except IntegrityError:  # the same invoice was bound to another refund meanwhile
        raise ValidationFailed(
            "pr: the invoice is already being paid by a refund",
            errors={"pr": ["already used"]},
            code="invoice_not_payable",
        ) from None
    if not taken:
        raise Gone("this refund was already claimed", code="claim_used")
    paying.start(ctx, refund_id)
