"""From a connection URL to a running backend.

Each backend module has ``open_backend(connection, env) -> LightningBackend``; it is imported only
when its kind is used, so a gateway on LND never imports the Nostr stack.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Protocol, cast

from boltgate.lightning.base import LightningBackend
from boltgate.lightning.connection import Connection, ConnectionUrlError, parse

MODULES = {
    "dev": "boltgate.lightning.devnode",
    "lnd-rest": "boltgate.lightning.lnd",
    "clnrest": "boltgate.lightning.cln",
    "cln-rpc": "boltgate.lightning.cln",
    "phoenixd": "boltgate.lightning.phoenixd",
    "lnbits": "boltgate.lightning.lnbits",
    "nwc": "boltgate.lightning.nwc",
    "opennode": "boltgate.lightning.opennode",
    "strike": "boltgate.lightning.strike",
}


@dataclass(frozen=True)
class BackendEnv:
    """What a backend may need from the gateway's settings."""

    data_dir: Path
    network: str = "regtest"
    min_final_cltv_expiry: int = 18
    poll_interval: float = 0.1  # how often a polling backend looks for settlements (dev node)
    dev_mode: bool = True
    # A merchant's own backend: the networks besides the public internet it may reach (checked
    # at each connection); None for the operator's backends, which may be anywhere.
    guard: tuple[IPv4Network | IPv6Network, ...] | None = None
    kinds: frozenset[str] | None = None  # the kinds allowed here (None: all)


class _Module(Protocol):
    def open_backend(self, connection: Connection, env: BackendEnv) -> LightningBackend: ...


def open_backend(url: str | Connection, env: BackendEnv) -> LightningBackend:
    """The backend of ``url``; :class:`ConnectionUrlError` when the URL cannot be used."""
    connection = parse(url) if isinstance(url, str) else url
    if connection.kind == "dev" and not env.dev_mode:
        raise ConnectionUrlError("dev:// (the built-in dev node) is for dev mode only")
    if env.kinds is not None and connection.kind not in env.kinds:
        raise ConnectionUrlError(
            f"{connection.kind} cannot be used here (use one of {', '.join(sorted(env.kinds))})"
        )
    if env.guard is not None:
        connection = replace(connection, guard=env.guard)
    try:
        module = cast(_Module, importlib.import_module(MODULES[connection.kind]))
    except ModuleNotFoundError as exc:  # a kind whose module is not part of this build
        raise ConnectionUrlError(f"{connection.kind}: this backend is not available ({exc.name})") from None
    return module.open_backend(connection, env)
