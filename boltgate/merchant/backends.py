"""A merchant's own wallet or node: where its invoices are made, and the pool of open backends.

A merchant receives through the gateway's backend (``gateway``, the default) or through a
connection of its own: a NWC wallet (``PUT /api/merchant/nwc-connection``, the Lightning Enable
route) or any other kind a connection URL names (``PUT /api/merchant/payment-provider`` with
``connectionUrl``). Each connection is checked (``node_info``) before it is saved, sealed at rest
(AES-GCM with a key derived from the server secret) and shown only with its secrets masked.

Connections are never edited: a new one of a kind retires the previous, and every payment records
the connection that made its invoice (``payments.backend_ref``), so its look-ups, the expiry sweep
and the settlement watchers keep asking the wallet that can answer.

Merchant connections may reach public addresses only (plus the operator's allow-list; anything in
dev mode), checked at every connection (:mod:`boltgate.kit.netguard`); ``dev`` and ``cln-rpc`` (a
local socket) are the operator's alone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.engine import Database
from boltgate.errors import Conflict, ValidationFailed
from boltgate.kit.crypto import SealError, SecretBox
from boltgate.kit.ids import new_id
from boltgate.kit.netguard import ANYWHERE, Network
from boltgate.lightning.base import LightningBackend, LightningError, LightningUnavailable
from boltgate.lightning.connection import Connection, ConnectionUrlError, parse, redact
from boltgate.lightning.registry import BackendEnv, open_backend
from boltgate.merchant.models import Merchant, MerchantBackend

log = structlog.get_logger(__name__)

GATEWAY = "gateway"
MERCHANT_KINDS = frozenset({"nwc", "lnbits", "strike", "opennode", "phoenixd", "lnd-rest", "clnrest"})
PROVIDERS = frozenset({GATEWAY}) | MERCHANT_KINDS
CHECK_SECONDS = 15.0
PROVIDER_TTL = 10.0  # how long a replica keeps a merchant's choice (its own changes apply at once)


def merchant_env(env: BackendEnv, networks: tuple[Network, ...], allow_private: bool) -> BackendEnv:
    """The environment merchant connections are opened in: guarded, no operator-only kinds."""
    return replace(env, guard=ANYWHERE if allow_private else networks, kinds=MERCHANT_KINDS, dev_mode=False)


@dataclass
class BackendPool:
    """The gateway's backend and the merchants' own, opened once and kept."""

    default: LightningBackend
    db: Database
    box: SecretBox
    env: BackendEnv  # merchant_env(...)

    def __post_init__(self) -> None:
        self.opened: dict[str, LightningBackend] = {}
        self._choice: dict[str, tuple[float, str | None]] = {}
        self.watched: set[str] = set()  # refs with a settlement watcher (kept by the watchers' task)
        self.wake = asyncio.Event()  # a payment on a backend not watched yet: start its watcher now

    async def for_merchant(self, merchant_id: str) -> tuple[LightningBackend, str | None]:
        """The backend new invoices of ``merchant_id`` are made on, and its reference."""
        hit = self._choice.get(merchant_id)
        if hit is None or hit[0] < time.monotonic():
            async with self.db.reading() as session:
                ref = await active_ref(session, merchant_id)
            hit = (time.monotonic() + PROVIDER_TTL, ref)
            self._choice[merchant_id] = hit
        ref = hit[1]
        if ref is not None and ref not in self.watched:
            self.wake.set()
        return await self.get(ref), ref

    def forget(self, merchant_id: str) -> None:
        self._choice.pop(merchant_id, None)

    async def get(self, ref: str | None) -> LightningBackend:
        """The backend of a payment's ``backend_ref`` (None: the gateway's)."""
        if ref is None:
            return self.default
        backend = self.opened.get(ref)
        if backend is not None:
            return backend
        async with self.db.reading() as session:
            row = await session.get(MerchantBackend, ref)
        if row is None:
            raise LightningUnavailable(f"the merchant connection {ref} no longer exists", backend="merchant")
        try:
            backend = open_backend(self.box.open(row.url_sealed), self.env)
        except SealError as exc:  # kept as the cause: a request answers 503 secret_key_mismatch
            message = f"the merchant connection {ref} is sealed with a server key this gateway does not have"
            raise LightningUnavailable(message, backend="merchant") from exc
        except (ConnectionUrlError, ValueError) as exc:
            raise LightningUnavailable(f"the merchant connection {ref} cannot be opened ({exc})") from None
        self.opened[ref] = self.opened.get(ref) or backend
        return self.opened[ref]

    async def close(self) -> None:
        for backend in self.opened.values():
            try:
                await backend.close()
            except Exception:  # closing must not stop closing the others
                log.warning("backend_close_failed", backend=backend.name)
        self.opened.clear()


async def active_ref(session: AsyncSession, merchant_id: str) -> str | None:
    provider = await session.scalar(select(Merchant.payment_provider).where(Merchant.id == merchant_id))
    if provider is None or provider == GATEWAY:
        return None
    return await session.scalar(
        select(MerchantBackend.id).where(
            MerchantBackend.merchant_id == merchant_id,
            MerchantBackend.kind == provider,
            MerchantBackend.retired_at.is_(None),
        )
    )


def cleartext(connection: Connection) -> bool:
    """Whether the connection's credentials would travel unencrypted."""
    if connection.kind == "nwc":
        return any(relay.lower().startswith("ws://") for relay in connection.params_of("relay"))
    if connection.kind == "phoenixd":  # phoenixd speaks plain HTTP unless tls=1
        return (connection.param("tls") or "0").lower() not in {"1", "true", "yes"}
    return not connection.tls


async def check(url: str, env: BackendEnv, field: str, *, cleartext_ok: bool = False) -> tuple[str, str]:
    """(kind, masked URL) of a connection that parses, may be used by a merchant and answers.
    Outside dev mode its credentials must travel encrypted (https, wss)."""
    try:
        connection = parse(url)
        if not cleartext_ok and cleartext(connection):
            raise ConnectionUrlError(
                f"{connection.kind}: the connection must be encrypted (https or wss): its credentials "
                "would cross the internet in clear text"
            )
        backend = open_backend(connection, env)
    except ConnectionUrlError as exc:
        raise ValidationFailed(str(exc), errors={field: [str(exc)]}, code="invalid_connection_url") from None
    try:
        info = await _answer(backend)
    except LightningError as exc:
        raise ValidationFailed(
            f"the connection was not saved: {exc}", errors={field: [str(exc)]}, code="backend_check_failed"
        ) from None
    finally:
        await backend.close()
    if info.network != env.network:
        message = f"the wallet is on {info.network}; this gateway works on {env.network}"
        raise ValidationFailed(message, errors={field: [message]}, code="backend_wrong_network")
    return backend.name, redact(url)


async def _answer(backend: LightningBackend) -> Any:
    try:
        return await asyncio.wait_for(backend.node_info(), CHECK_SECONDS)
    except TimeoutError:
        raise LightningUnavailable(f"no answer in {CHECK_SECONDS:.0f} s", backend=backend.name) from None


async def save(
    session: AsyncSession, box: SecretBox, merchant_id: str, kind: str, url: str, shown: str, now: datetime
) -> MerchantBackend:
    """Store a checked connection, retiring the merchant's previous one of the same kind."""
    await session.execute(
        update(MerchantBackend)
        .where(
            MerchantBackend.merchant_id == merchant_id,
            MerchantBackend.kind == kind,
            MerchantBackend.retired_at.is_(None),
        )
        .values(retired_at=now)
    )
    row = MerchantBackend(
        id=new_id("mbk"),
        merchant_id=merchant_id,
        kind=kind,
        url_sealed=box.seal(url),
        url_shown=shown[:2048],
        created_at=now,
        retired_at=None,
    )
    session.add(row)
    await session.flush()
    return row


async def set_provider(session: AsyncSession, merchant_id: str, provider: str) -> None:
    if provider not in PROVIDERS:
        message = f"provider must be one of {', '.join(sorted(PROVIDERS))}"
        raise ValidationFailed(message, errors={"provider": [message]})
    if provider != GATEWAY:
        ref = await session.scalar(
            select(MerchantBackend.id).where(
                MerchantBackend.merchant_id == merchant_id,
                MerchantBackend.kind == provider,
                MerchantBackend.retired_at.is_(None),
            )
        )
        if ref is None:
            route = (
                "PUT /api/merchant/nwc-connection"
                if provider == "nwc"
                else "PUT /api/merchant/payment-provider with connectionUrl"
            )
            raise Conflict(
                f"no {provider} connection is saved: save one first ({route})", code="provider_not_configured"
            )
    await session.execute(
        update(Merchant).where(Merchant.id == merchant_id).values(payment_provider=provider)
    )


async def retire(session: AsyncSession, merchant_id: str, kind: str, now: datetime) -> bool:
    """Retire the merchant's connection of ``kind``; a merchant receiving through it goes back to
    the gateway's backend. False when there was none."""
    result = await session.execute(
        update(MerchantBackend)
        .where(
            MerchantBackend.merchant_id == merchant_id,
            MerchantBackend.kind == kind,
            MerchantBackend.retired_at.is_(None),
        )
        .values(retired_at=now)
    )
    await session.execute(
        update(Merchant)
        .where(Merchant.id == merchant_id, Merchant.payment_provider == kind)
        .values(payment_provider=GATEWAY)
    )
    return bool(getattr(result, "rowcount", 0))


async def describe(session: AsyncSession, merchant_id: str) -> dict[str, Any]:
    provider = await session.scalar(select(Merchant.payment_provider).where(Merchant.id == merchant_id))
    rows = await session.scalars(
        select(MerchantBackend)
        .where(MerchantBackend.merchant_id == merchant_id, MerchantBackend.retired_at.is_(None))
        .order_by(MerchantBackend.created_at)
    )
    return {
        "provider": provider or GATEWAY,
        "connections": [
            {"id": r.id, "kind": r.kind, "url": r.url_shown, "createdAt": r.created_at} for r in rows
        ],
    }
