"""Reviews (kind 38403) that agents sign with their own keys, and the export of every stored event.

Unlike the hosted API, which refuses reviews because it would have to sign them with its one platform
key (every review would then come from the same pubkey), boltgate accepts a review the reviewer signed
itself: the signature is the authentication, so no API key is needed. The reviewer must be a party to
the agreement (its requester or provider agent) and the subject the other party: one review per
reviewer and agreement.

A review is ``verified`` when its ``proof`` is the payment hash of an L402 challenge of the agreement's
proxy that was paid (``paid_at``: the gateway checked its preimage). The payment hash is printed in the
invoice, so this proves that the service was paid for, not who paid; a payment hash is known only to its
payer and the provider, and one payment verifies one review at most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.agent import events, nostr
from boltgate.agent.models import Agreement, Attestation, Capability, NostrEvent
from boltgate.errors import BoltgateError, Conflict, Forbidden, NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.l402.models import Challenge

KIND_ATTESTATION = 38403
MAX_FUTURE_SECONDS = 600
SIGN_YOURSELF = (
    'Sign the review with the reviewer\'s own Nostr key and send it as {"event": <kind-38403 event>} '
    '(tags ["p", subject, "", "subject"], ["e", agreementId, "", "agreement"], ["rating", "1".."5"], '
    'optionally ["proof", paymentHash]; content: the review). The platform does not sign reviews for '
    "agents: one shared key would make every review look alike (the hosted API refuses them too)."
)
_RATING = re.compile(r"^[1-5]$")
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


class InvalidSignature(BoltgateError):
    status = 401
    code = "invalid_signature"
    title = "Invalid signature"


def nostr_problem(exc: nostr.NostrError) -> BoltgateError:
    """A bad signature is an authentication failure (401); everything else about the event is a 400."""
    if exc.code == "invalid_signature":
        return InvalidSignature(exc.detail)
    return ValidationFailed(exc.detail, errors={"event": [exc.detail]}, code=exc.code)


def _invalid(code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors={"event": [message]}, code=code)


@dataclass(frozen=True, slots=True)
class Review:
    event: nostr.Event
    subject: str
    agreement_id: str
    rating: int
    proof: str | None


def _marked(event: nostr.Event, name: str, marker: str) -> str:
    """The value of the ``name`` tag with this marker (NIP-10 style, 4th item), or of the only one."""
    marked = [tag[1] for tag in event.tags if len(tag) >= 4 and tag[0] == name and tag[3] == marker]
    values = marked or nostr.tag_values(event, name)
    if len(values) != 1:
        raise _invalid("invalid_attestation", f'a review has one ["{name}", <{marker}>, "", "{marker}"] tag')
    return values[0]


def read_review(data: Any, now: datetime) -> Review:
    """Check a submitted review: a signed kind-38403 event with the tags of clients.md §4.4."""
    if data is None:
        raise ValidationFailed(SIGN_YOURSELF, code="signature_required")
    try:
        event = nostr.parse_event(data)
    except nostr.NostrError as exc:
        raise nostr_problem(exc) from exc
    if event.kind != KIND_ATTESTATION:
        raise _invalid("wrong_kind", f"a review is a kind-{KIND_ATTESTATION} event")
    if event.created_at > now.timestamp() + MAX_FUTURE_SECONDS:
        raise _invalid("event_in_future", "created_at is ahead of the server's clock")
    try:
        subject = nostr.parse_pubkey(_marked(event, "p", "subject"))
    except nostr.NostrError as exc:
        raise nostr_problem(exc) from exc
    agreement_id = _marked(event, "e", "agreement")
    ratings = nostr.tag_values(event, "rating")
    if len(ratings) != 1 or not _RATING.match(ratings[0]):
        raise _invalid("invalid_rating", 'a review has one ["rating", "1".."5"] tag')
    proofs = nostr.tag_values(event, "proof")
    if len(proofs) > 1 or (proofs and not _HASH.match(proofs[0])):
        raise _invalid("invalid_proof", 'a proof is one ["proof", <payment hash: 64 hex>] tag')
    proof = proofs[0].lower() if proofs else None
    return Review(event, subject, agreement_id.lower(), int(ratings[0]), proof)


async def _paid_through(session: AsyncSession, agreement: Agreement, proof: str | None) -> bool:
    """The proof is the payment hash of a paid challenge of the agreement's listing's proxy, and no
    other review was verified by it already (one payment, one verified review)."""
    if proof is None:
        return False
    used = select(Attestation.event_id).where(Attestation.proof == proof, Attestation.verified.is_(True))
    if await session.scalar(used.limit(1)) is not None:
        return False
    capability = await session.get(Capability, agreement.capability_event_id)
    challenge = await session.get(Challenge, proof)
    if capability is None or capability.proxy_id is None or challenge is None:
        return False
    return challenge.paid_at is not None and challenge.resource.startswith(f"proxy:{capability.proxy_id}:")


async def record(session: AsyncSession, review: Review, now: datetime) -> Attestation:
    """Store a checked review: its reviewer and subject are the agreement's two parties; one per reviewer."""
    reviewer = review.event.pubkey
    if reviewer == review.subject:
        raise _invalid("self_review", "an agent cannot review itself")
    agreement = await session.get(Agreement, review.agreement_id)
    if agreement is None:
        raise NotFound(f"agreement {review.agreement_id} not found", code="agreement_not_found")
    parties = {agreement.provider_pubkey: agreement.requester_pubkey}
    parties[agreement.requester_pubkey] = agreement.provider_pubkey
    if reviewer not in parties:
        raise Forbidden("only the agreement's requester or provider agent may review it", code="not_a_party")
    if parties[reviewer] != review.subject:
        raise _invalid("wrong_subject", "the subject of a review is the agreement's other party")
    mine = (Attestation.agreement_event_id == agreement.event_id, Attestation.reviewer_pubkey == reviewer)
    if await session.scalar(select(Attestation.event_id).where(*mine)) is not None:
        raise Conflict("this reviewer has already reviewed this agreement", code="attestation_exists")
    attestation = Attestation(
        event_id=review.event.id,
        agreement_event_id=agreement.event_id,
        reviewer_pubkey=reviewer,
        subject_pubkey=review.subject,
        rating=review.rating,
        content=review.event.content,
        proof=review.proof,
        verified=await _paid_through(session, agreement, review.proof),
        created_at=datetime.fromtimestamp(review.event.created_at, UTC),
    )
    session.add(attestation)
    events.store(session, review.event, now)
    return attestation


def attestation_out(attestation: Attestation) -> dict[str, Any]:
    return {
        "eventId": attestation.event_id,
        "pubkey": attestation.reviewer_pubkey,
        "reviewerPubkey": attestation.reviewer_pubkey,
        "subjectPubkey": attestation.subject_pubkey,
        "rating": attestation.rating,
        "content": attestation.content,
        "agreementId": attestation.agreement_event_id,
        "proof": attestation.proof,
        "verified": attestation.verified,
        "createdAt": rfc3339(attestation.created_at),
    }


async def reviews_of(
    session: AsyncSession, subject: str, limit: int
) -> tuple[list[Attestation], int, float | None]:
    """The newest reviews of ``subject``, how many there are, and their average rating (all of them)."""
    where = Attestation.subject_pubkey == subject
    total, average = (
        await session.execute(select(func.count(), func.avg(Attestation.rating)).where(where))
    ).one()
    stmt = select(Attestation).where(where).order_by(Attestation.created_at.desc(), Attestation.event_id)
    rows = list(await session.scalars(stmt.limit(limit)))
    return rows, int(total or 0), None if average is None else round(float(average), 2)


async def export(
    session: AsyncSession, since: int, after: str | None, kinds: list[int], limit: int
) -> list[tuple[str, int, str]]:
    """(id, created_at, raw JSON) of stored events from ``since`` (inclusive), oldest first; ``after``
    skips the events of second ``since`` up to that id (the cursor of the previous page)."""
    stmt = select(NostrEvent.id, NostrEvent.created_at, NostrEvent.raw).where(NostrEvent.created_at >= since)
    if after:
        stmt = stmt.where(or_(NostrEvent.created_at > since, NostrEvent.id > after))
    if kinds:
        stmt = stmt.where(NostrEvent.kind.in_(kinds))
    stmt = stmt.order_by(NostrEvent.created_at, NostrEvent.id).limit(limit)
    return [(row.id, row.created_at, row.raw) for row in (await session.execute(stmt)).all()]
