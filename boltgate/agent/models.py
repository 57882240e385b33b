"""What the agent directory keeps: identities, their challenges, and the Nostr events of the
agent marketplace (capabilities, requests, agreements, reviews).

Every signed event — the platform's own and those agents sign themselves — is stored whole in
``nostr_events`` (its exact JSON), so ``GET /api/agents/events`` can hand relays the very bytes
that were signed; the domain tables index what the API searches and joins on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_active_created", "is_active", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pubkey: Mapped[str] = mapped_column(String(64), unique=True)  # BIP-340 x-only, lower-case hex
    # the merchant whose API key registered it (its capabilities' revenue is the agent's); optional
    merchant_id: Mapped[str | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="SET NULL"), nullable=True, index=True
    )
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentChallenge(Base):
    """A random challenge an agent signs to prove its key; used once, before ``expires_at``."""

    __tablename__ = "agent_challenges"
    __table_args__ = (Index("ix_agent_challenges_pubkey_created", "pubkey", "created_at"),)

    challenge: Mapped[str] = mapped_column(String(64), primary_key=True)
    pubkey: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class NostrEvent(Base):
    """A signed event as it was signed (``raw`` is its JSON); the export is ordered by ``created_at``."""

    __tablename__ = "nostr_events"
    __table_args__ = (
        Index("ix_nostr_events_created", "created_at"),
        Index("ix_nostr_events_kind_pubkey", "kind", "pubkey"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[int] = mapped_column(Integer)
    pubkey: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)  # unix seconds, as in the event
    raw: Mapped[str] = mapped_column(Text)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Capability(Base):
    """A kind-38400 listing: a service an agent sells, in front of a paid proxy."""

    __tablename__ = "agent_capabilities"
    __table_args__ = (Index("ix_agent_capabilities_status_created", "status", "created_at"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    agent_pubkey: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    service_id: Mapped[str] = mapped_column(String(200))  # the event's d tag
    proxy_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    content: Mapped[str] = mapped_column(Text)
    categories: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    hashtags: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    price_sats: Mapped[int] = mapped_column(BigInteger)
    l402_endpoint: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | removed
    search_text: Mapped[str] = mapped_column(Text, default="")  # case-folded, for q
    category_keys: Mapped[str] = mapped_column(Text, default="\n")  # "\n<folded>\n…" for whole matches
    hashtag_keys: Mapped[str] = mapped_column(Text, default="\n")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    removal_event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ServiceRequest(Base):
    """A kind-38401 request for a capability, made through a requester's API key."""

    __tablename__ = "agent_requests"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    capability_event_id: Mapped[str] = mapped_column(
        ForeignKey("agent_capabilities.event_id", ondelete="CASCADE"), index=True
    )
    requester_merchant_id: Mapped[str] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    requester_pubkey: Mapped[str | None] = mapped_column(String(64), nullable=True)
    budget_sats: Mapped[int] = mapped_column(BigInteger)
    parameters: Mapped[str | None] = mapped_column(Text, nullable=True)  # the JSON text given
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Agreement(Base):
    """A kind-38402 agreement: the provider's answer to a request (price, terms, expiry)."""

    __tablename__ = "agent_agreements"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_event_id: Mapped[str] = mapped_column(
        ForeignKey("agent_requests.event_id", ondelete="CASCADE"), unique=True
    )
    capability_event_id: Mapped[str] = mapped_column(String(64), index=True)
    provider_pubkey: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    requester_pubkey: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    price_sats: Mapped[int] = mapped_column(BigInteger)
    terms: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Attestation(Base):
    """A kind-38403 review, signed by the reviewer's own key; one per reviewer and agreement."""

    __tablename__ = "agent_attestations"
    __table_args__ = (UniqueConstraint("agreement_event_id", "reviewer_pubkey"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agreement_event_id: Mapped[str] = mapped_column(
        ForeignKey("agent_agreements.event_id", ondelete="CASCADE"), index=True
    )
    reviewer_pubkey: Mapped[str] = mapped_column(String(64))
    subject_pubkey: Mapped[str] = mapped_column(String(64), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    proof: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)  # the proof is a payment we saw settle
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
