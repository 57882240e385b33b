"""``boltgate check-backend``: does the configured backend answer, and is it the one meant?

Prints the backend's kind, its URL with secrets masked, the node's identity and network, and how
settlements will be detected; or the precise reason it cannot be used. Exit status: 0 usable,
1 the backend failed (unreachable, refused, wrong network, unusable answer), 2 the
configuration itself is wrong (a malformed connection URL).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from boltgate.lightning.base import (
    LightningBackend,
    LightningError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
)
from boltgate.lightning.connection import ConnectionUrlError, parse, redact
from boltgate.lightning.registry import BackendEnv, open_backend

OK, FAILED, MISCONFIGURED = 0, 1, 2


@dataclass
class Report:
    status: int = OK
    lines: list[str] = field(default_factory=list)

    def add(self, key: str, value: object) -> None:
        self.lines.append(f"{key}: {value}")


async def check(url: str, env: BackendEnv, *, label: str = "backend", invoice: bool = False) -> Report:
    report = Report()
    try:
        connection = parse(url)
        backend = open_backend(connection, env)
    except ConnectionUrlError as exc:
        report.status = MISCONFIGURED
        report.add(label, f"configuration error: {exc}")
        return report
    report.add(label, connection.kind)
    report.add("url", redact(url))
    try:
        await _probe(backend, env, report, invoice=invoice)
    finally:
        await backend.close()
    return report


async def _probe(backend: LightningBackend, env: BackendEnv, report: Report, *, invoice: bool) -> None:
    try:
        info = await asyncio.wait_for(backend.node_info(), 30)
    except TimeoutError:
        report.status = FAILED
        report.add("error", "no answer in 30 s")
        return
    except LightningError as exc:
        report.status = FAILED
        report.add("error", f"{_what(exc)}: {exc}")
        return
    report.add("node", info.pubkey or "(no node key: a custodial account)")
    report.add("alias", info.alias or "-")
    report.add("network", info.network)
    if info.network != env.network:
        report.status = FAILED
        report.add("error", f"the backend is on {info.network} but BOLTGATE_NETWORK is {env.network}")
        return
    report.add("settlements", _settlements(backend))
    if invoice:
        try:
            created = await backend.create_invoice(
                amount_msat=1000, description="boltgate check", expiry_seconds=60
            )
        except LightningError as exc:
            report.status = FAILED
            report.add("error", f"creating a 1 sat test invoice failed: {_what(exc)}: {exc}")
            return
        report.add("test invoice", created.payment_request)
    report.add("status", "ok")


def _settlements(backend: LightningBackend) -> str:
    if backend.resumable:
        return "pushed, resumed from the last settle index after a restart"
    if backend.name in {"opennode", "strike"}:
        return "polled (the open payments are asked about every BOLTGATE_SETTLEMENT_POLL_SECONDS)"
    return "pushed; after every reconnection the open payments are asked about"


def _what(exc: LightningError) -> str:
    if isinstance(exc, LightningUnavailable):
        return "unreachable"
    if isinstance(exc, LightningRejected):
        return "refused (check the credentials and their permissions)"
    if isinstance(exc, LightningUnsupported):
        return "unsupported"
    return "unusable answer"
