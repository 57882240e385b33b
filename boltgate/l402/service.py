"""Minting and checking 402 credentials: one invoice, one macaroon and one Payment challenge per
offer; L402 tokens and Payment-scheme credentials checked against what a request needs.

An *offer* is what a 402 sells: a resource, a price, who sells it and the caveats its token
carries. Minting asks the Lightning backend for an invoice, makes a macaroon whose identifier
binds the invoice's payment hash, files the root key and records the challenge in one
transaction. The Payment-scheme challenge for the same invoice is stateless: its ``id`` is an
HMAC over its parameters, and its ``opaque`` parameter carries the resource, so the id binds it.

Checking never trusts the backend: ``sha256(preimage) == payment_hash`` is the proof of payment.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import orjson
import structlog
from sqlalchemy import or_, select, update

from boltgate.context import Context
from boltgate.kit.clock import rfc3339
from boltgate.l402 import caveats, macaroon, mpp
from boltgate.l402.models import Challenge
from boltgate.l402.store import Keys

log = structlog.get_logger(__name__)
LOCATION = "boltgate"
SERVICE = "boltgate"  # the service name in tokens this gateway mints


@dataclass(frozen=True, slots=True)
class Offer:
    resource: str  # what the token opens: a route ("GET /api/l402/premium-data") or "content:<slug>"
    amount_sats: int
    merchant_id: str | None  # None: the gateway's own routes
    description: str | None = None
    resources: tuple[str, ...] = ()  # a bundle: every resource the token opens (default: resource)
    capabilities: tuple[str, ...] = ()
    ttl_seconds: int | None = None  # how long a paid L402 token works (None: the gateway's setting)
    max_uses: int | None = None  # calls one paid L402 token may make (None: unlimited), see use_once


@dataclass(frozen=True, slots=True)
class Issued:
    challenge: Challenge
    macaroon: str  # standard base64
    mpp_challenge: mpp.Challenge
    reused: bool = False

    def www_authenticate(self) -> list[str]:
        """Both challenge lines, L402 first (clients prefer it), the exact order the clients parse."""
        return [
            f'L402 macaroon="{self.macaroon}", invoice="{self.challenge.invoice}"',
            mpp.format_challenge(self.mpp_challenge),
        ]


def offer_caveats(offer: Offer, valid_until: int) -> list[str]:
    found = [caveats.services_caveat(SERVICE)]
    if offer.capabilities:
        found.append(caveats.capabilities_caveat(SERVICE, offer.capabilities))
    if offer.merchant_id is not None:
        found.append(caveats.merchant_caveat(offer.merchant_id))
    found.append(caveats.resources_caveat(offer.resources or (offer.resource,)))
    found.append(caveats.valid_until_caveat(SERVICE, valid_until))
    return found


def _opaque(resource: str) -> str:
    return mpp.b64url_encode(orjson.dumps({"resource": resource}))


def _mpp_challenge(ctx: Context, keys: Keys, row: Challenge) -> mpp.Challenge:
    return mpp.new_challenge(
        keys.mpp_key,
        realm=keys.realm,
        amount_sats=row.amount_sats,
        invoice=row.invoice,
        payment_hash=row.payment_hash,
        network=_network(ctx),
        expires=row.expires_at,
        # header values travel as Latin-1: keep the (optional, uncovered) description to ASCII
        description=(row.description or "").encode("ascii", "ignore").decode() or None,
        opaque=_opaque(row.resource),
    )


def _network(ctx: Context) -> str:
    return {"bitcoin": "mainnet", "mainnet": "mainnet"}.get(ctx.settings.network, ctx.settings.network)


async def _issued(ctx: Context, keys: Keys, row: Challenge, reused: bool) -> Issued:
    identifier = macaroon.encode_identifier(bytes.fromhex(row.payment_hash), bytes.fromhex(row.token_id))
    root_key = await keys.store.get(macaroon.root_key_id(identifier))
    if root_key is None:
        raise LookupError("root key gone")
    token = macaroon.mint(root_key, identifier, LOCATION, row.caveats.split("\n"))
    return Issued(row, macaroon.encode(token), _mpp_challenge(ctx, keys, row), reused)


async def _reusable(ctx: Context, offer: Offer, payer: str, now: datetime) -> Challenge | None:
    since = now - timedelta(seconds=ctx.settings.l402_offer_reuse_seconds)
    stmt = (
        select(Challenge)
        .where(
            Challenge.merchant_id.is_(None)
            if offer.merchant_id is None
            else Challenge.merchant_id == offer.merchant_id,
            Challenge.resource == offer.resource,
            Challenge.amount_sats == offer.amount_sats,
            Challenge.payer == payer,
            Challenge.created_at >= since,
            Challenge.paid_at.is_(None),
            Challenge.spent_at.is_(None),
            Challenge.expires_at > now + timedelta(seconds=30),
        )
        .order_by(Challenge.created_at.desc())
        .limit(1)
    )
    async with ctx.db.reading() as session:
        return (await session.scalars(stmt)).first()


async def mint(
    ctx: Context, keys: Keys, offer: Offer, *, payer: str | None = None, idempotency_key: str | None = None
) -> Issued:
    """A challenge for ``offer``; the same payer asking again within the reuse window gets the same."""
    now = ctx.clock()
    if payer is not None and ctx.settings.l402_offer_reuse_seconds > 0:
        existing = await _reusable(ctx, offer, payer, now)
        if existing is not None:
            try:
                return await _issued(ctx, keys, existing, reused=True)
            except LookupError:
                pass  # its root key was revoked: mint a new one
    backend = ctx.backend
    if offer.merchant_id is not None:  # a merchant's challenge: paid to its own wallet when it has one
        backend, _ref = await ctx.backends.for_merchant(offer.merchant_id)
    invoice = await backend.create_invoice(
        amount_msat=offer.amount_sats * 1000,
        description=(offer.description or offer.resource)[:200],
        description_hash=None,
        expiry_seconds=ctx.settings.l402_invoice_expiry_seconds,
    )
    expires_at = min(invoice.expires_at, now + timedelta(seconds=ctx.settings.l402_invoice_expiry_seconds))
    return await mint_for_invoice(
        ctx,
        keys,
        offer,
        payment_hash=invoice.payment_hash,
        payment_request=invoice.payment_request,
        expires_at=expires_at,
        payer=payer,
        idempotency_key=idempotency_key,
    )


async def mint_for_invoice(
    ctx: Context,
    keys: Keys,
    offer: Offer,
    *,
    payment_hash: str,
    payment_request: str,
    expires_at: datetime,
    payer: str | None = None,
    idempotency_key: str | None = None,
) -> Issued:
    """A challenge for an invoice that already exists (e.g. a payment's): its macaroon binds its hash."""
    now = ctx.clock()
    token_id = secrets.token_bytes(32)
    identifier = macaroon.encode_identifier(bytes.fromhex(payment_hash), token_id)
    valid_until = int(now.timestamp()) + (offer.ttl_seconds or ctx.settings.l402_token_ttl_seconds)
    minted_caveats = offer_caveats(offer, valid_until)
    row = Challenge(
        payment_hash=payment_hash,
        merchant_id=offer.merchant_id,
        resource=offer.resource,
        description=offer.description,
        amount_sats=offer.amount_sats,
        invoice=payment_request,
        token_id=token_id.hex(),
        caveats="\n".join(minted_caveats),
        payer=payer,
        idempotency_key=idempotency_key,
        created_at=now,
        expires_at=expires_at,
        paid_at=None,
        spent_at=None,
        max_uses=offer.max_uses,
        uses=0,
    )
    async with ctx.db.writing() as session:
        root_key = await keys.store.create(session, macaroon.root_key_id(identifier), now)
        session.add(row)
    token = macaroon.mint(root_key, identifier, LOCATION, minted_caveats)
    return Issued(row, macaroon.encode(token), _mpp_challenge(ctx, keys, row))


# ---------------------------------------------------------------------------------------------
# checking credentials


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str | None = None
    payment_hash: str | None = None
    challenge_id: str | None = None  # of a Payment-scheme credential
    scheme: str | None = None
    valid_until: int | None = None  # the earliest expiry among the token's caveats


def _preimage_digest(preimage: str) -> bytes | None:
    """sha256 of a 64-hex-digit preimage (either case), or None."""
    if len(preimage) != 64:
        return None
    try:
        raw = bytes.fromhex(preimage)
    except ValueError:
        return None
    return hashlib.sha256(raw).digest() if len(raw) == 32 else None  # fromhex skips spaces


def preimage_hash(preimage: str) -> str | None:
    digest = _preimage_digest(preimage)
    return None if digest is None else digest.hex()


async def check_l402(keys: Keys, credential: str, need: caveats.Requirement) -> Verdict:
    """``<macaroon>[,<macaroon>…]:<preimage>``: the first macaroon that proves payment and holds wins."""
    tokens, sep, preimage = credential.strip().rpartition(":")
    if not sep or not tokens:
        return Verdict(False, "the credential must be <macaroon>:<preimage>")
    digest = _preimage_digest(preimage.strip())
    if digest is None:
        return Verdict(False, "the preimage must be 64 hex characters")
    reason = "no macaroon"
    for text in tokens.split(",")[:5]:
        reason, valid_until = await _check_one(keys, text, digest, need)
        if not reason:
            return Verdict(True, payment_hash=digest.hex(), scheme="L402", valid_until=valid_until)
    return Verdict(False, reason, payment_hash=digest.hex())


async def _check_one(
    keys: Keys, text: str, digest: bytes, need: caveats.Requirement
) -> tuple[str, int | None]:
    """("", earliest expiry) when this macaroon proves payment and its caveats hold; else (reason, None).

    Parsing a token and checking its HMAC chain depend only on its bytes and its root key, so the
    result is kept per token text (``Keys.authentic``): a token seen before costs a dictionary
    look-up here, while the preimage, the root key's existence (revocation) and every caveat are
    still checked on each request.
    """
    known = keys.authentic.get(text)
    if known is None:
        try:
            token = macaroon.decode(text)
            ident = macaroon.decode_identifier(token.identifier)
        except macaroon.MacaroonError as exc:
            return f"malformed macaroon: {exc}", None
        key_id = macaroon.root_key_id(token.identifier)
    else:
        token, ident, key_id, authentic_with = known
    if not hmac.compare_digest(ident.payment_hash, digest):
        return "the preimage does not match the macaroon's payment hash", None
    root_key = keys.store.cached(key_id) or await keys.store.get(key_id)
    if root_key is None:
        return "unknown or revoked macaroon", None
    if known is None or not hmac.compare_digest(authentic_with, root_key):
        if not macaroon.signature_valid(token, root_key):
            return "invalid macaroon signature", None
        keys.remember_authentic(text, (token, ident, key_id, root_key))
    failed = caveats.check(token.caveats, need)
    if failed:
        return failed, None
    return "", _earliest_expiry(token.caveats) if keys.verified_ttl > 0 else None


def _earliest_expiry(found: tuple[bytes, ...]) -> int | None:
    earliest = None
    for caveat in found:
        key, _, value = caveat.partition(b"=")
        if key == b"valid_until" or key.endswith(b"_valid_until"):
            with contextlib.suppress(ValueError):
                unix = int(value)
                earliest = unix if earliest is None else min(earliest, unix)
    return earliest


async def check_payment(
    ctx: Context, keys: Keys, value: str, need: caveats.Requirement, resource: str, merchant_id: str | None
) -> Verdict:
    """A ``Payment`` credential (modern or legacy): proves payment for this resource, once."""
    try:
        credential = mpp.parse_credential(value)
    except mpp.CredentialError as exc:
        return Verdict(False, f"{exc.code}: {exc}")
    now = ctx.clock()
    challenge_id = None
    if isinstance(credential, mpp.Credential):
        try:
            challenge = mpp.verify_echo((keys.mpp_key, *keys.mpp_previous), credential.challenge, now)
            request = mpp.decode_request(challenge.request)
            details = request.get("methodDetails")
            payment_hash = details.get("paymentHash") if isinstance(details, dict) else None
            opaque = orjson.loads(mpp.b64url_decode(challenge.opaque or ""))
        except (mpp.CredentialError, ValueError, orjson.JSONDecodeError) as exc:
            code = exc.code if isinstance(exc, mpp.CredentialError) else "invalid-challenge"
            return Verdict(False, f"{code}: {exc}")
        if not isinstance(opaque, dict) or opaque.get("resource") != resource:
            return Verdict(False, "invalid-challenge: the challenge was issued for another resource")
        paid_hash = preimage_hash(credential.preimage)
        if (
            not isinstance(payment_hash, str)
            or paid_hash is None
            or not hmac.compare_digest(paid_hash, payment_hash.lower())
        ):
            return Verdict(False, "invalid-preimage: the preimage does not match the invoice")
        challenge_id = challenge.id
    else:
        paid_hash = preimage_hash(credential.preimage)
        if paid_hash is None:
            return Verdict(False, "invalid-preimage: the preimage must be 64 hex characters")
    async with ctx.db.writing() as session:
        row = await session.get(Challenge, paid_hash)
        if row is None or row.resource != resource or row.merchant_id != merchant_id:
            return Verdict(False, "unknown-challenge: no challenge of this resource has this payment")
        spent = await session.execute(
            update(Challenge)
            .where(Challenge.payment_hash == paid_hash, Challenge.spent_at.is_(None))
            .values(spent_at=now, paid_at=row.paid_at or now)
        )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return Verdict(False, "verification-failed: this credential was already used")
    keys.mark_known(paid_hash)
    return Verdict(True, payment_hash=paid_hash, challenge_id=challenge_id, scheme="Payment")


async def mark_paid(ctx: Context, keys: Keys, payment_hash: str) -> None:
    """Record the first use of a paid challenge (``paidAt`` in listings); later uses cost nothing."""
    if not keys.mark_known(payment_hash):
        return
    async with ctx.db.writing() as session:
        await session.execute(
            update(Challenge)
            .where(Challenge.payment_hash == payment_hash, Challenge.paid_at.is_(None))
            .values(paid_at=ctx.clock())
        )


async def use_once(ctx: Context, payment_hash: str) -> bool:
    """Count one call of an L402 token whose offer limits its calls; False once they are used up.

    One conditional UPDATE, so replicas sharing the database never admit more calls than sold.
    """
    async with ctx.db.writing() as session:
        counted = await session.execute(
            update(Challenge)
            .where(
                Challenge.payment_hash == payment_hash,
                or_(Challenge.max_uses.is_(None), Challenge.uses < Challenge.max_uses),
            )
            .values(uses=Challenge.uses + 1)
        )
    return bool(counted.rowcount == 1)  # type: ignore[attr-defined]


@lru_cache(maxsize=4096)
def _receipt(challenge_id: str, payment_hash: str, second: int) -> str:
    return mpp.receipt(challenge_id, payment_hash, datetime.fromtimestamp(second, UTC))


def receipt(verdict: Verdict, now: datetime) -> str:
    """The ``Payment-Receipt`` value (to the second; built once per token and second)."""
    return _receipt(verdict.challenge_id or "", verdict.payment_hash or "", int(now.timestamp()))


def challenge_out(row: Challenge, now: datetime) -> dict[str, object]:
    status = "paid" if row.paid_at is not None else ("expired" if row.expires_at <= now else "pending")
    return {
        "paymentHash": row.payment_hash,
        "resource": row.resource,
        "amountSats": row.amount_sats,
        "status": status,
        "createdAt": rfc3339(row.created_at),
        "paidAt": rfc3339(row.paid_at),
        "expiresAt": rfc3339(row.expires_at),
        "idempotencyKey": row.idempotency_key,
    }
