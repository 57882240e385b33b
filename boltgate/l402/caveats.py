"""First-party caveats of boltgate's L402 macaroons: the helpers that write them and :func:`check`.

A caveat is a UTF-8 ``key=value`` string, split on the first ``=``. The keys boltgate understands:

``services=<name>:<tier>[,<name>:<tier>...]``
    The services the macaroon may be used for (tier: a non-negative integer, carried but not
    compared). When a service is required it must be listed in every ``services`` caveat.
``<service>_capabilities=<cap>[,<cap>...]``
    The features of ``<service>`` that may be used; checked only for the required service and
    only when a capability is required, which must be listed in every such caveat. An empty
    value grants no capability; no caveat at all grants every capability.
``<service>_valid_until=<unix seconds>`` and ``valid_until=<unix seconds>``
    Expiry, for the required service or for any use. The last occurrence must be after ``now``.
``merchant=<merchant id>``
    The merchant the macaroon belongs to; every occurrence must equal the required merchant.
``resources=<resource>[,<resource>...]``
    The resources (slugs or request paths) that may be requested; the required one must be listed
    in every occurrence.

A key may occur several times (a holder attenuates by appending caveats). Each later occurrence
must narrow the one before it: a subset of its list, or an expiry no later than it; anything
broader fails the check even if the request would be allowed by the later caveat alone. Keys
boltgate does not understand are skipped, so a holder may add caveats meant for other verifiers;
a caveat that is not UTF-8 or has no ``=`` fails. ``<other service>_...`` keys count as unknown.
Absence of a kind of caveat means no restriction of that kind.

:func:`check` runs on every paid request, after the signature has been verified: it parses each
caveat once with ``str.partition`` and ``str.split`` and keeps only the previous occurrence of each
key for the narrowing comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Requirement",
    "capabilities_caveat",
    "check",
    "merchant_caveat",
    "resources_caveat",
    "services_caveat",
    "valid_until_caveat",
]

MALFORMED = "malformed caveat"


GATEWAY = ""  # Requirement.merchant_id of the gateway's own resources: no merchant's token opens them


@dataclass(frozen=True, slots=True)
class Requirement:
    """What the request being authorised needs; ``None`` fields are not checked (``merchant_id``
    :data:`GATEWAY`: a token carrying any ``merchant`` caveat fails)."""

    now: int
    service: str | None = None
    capability: str | None = None
    merchant_id: str | None = None
    resource: str | None = None


# -------------------------------------------------------------------------------------- minting


def _check_item(kind: str, item: str, forbidden: str) -> str:
    if not item:
        raise ValueError(f"{kind} must not be empty")
    for char in forbidden:
        if char in item:
            raise ValueError(f"{kind} {item!r} must not contain {char!r}")
    return item


def services_caveat(*services: str, tier: int = 0) -> str:
    """``services=a:0,b:0``: the macaroon is valid for these services only."""
    if not services:
        raise ValueError("at least one service is required")
    if tier < 0:
        raise ValueError("tier must not be negative")
    names = ",".join(f"{_check_item('service', s, ',:=')}:{tier}" for s in services)
    return f"services={names}"


def capabilities_caveat(service: str, caps: Iterable[str]) -> str:
    """``<service>_capabilities=x,y``: only these capabilities of ``service`` (none if empty)."""
    listed = ",".join(_check_item("capability", c, ",") for c in caps)
    return f"{_check_item('service', service, ',:=')}_capabilities={listed}"


def valid_until_caveat(service: str, unix: int) -> str:
    """``<service>_valid_until=<unix>``: the macaroon works for ``service`` until that second."""
    if unix < 0:
        raise ValueError("valid_until must not be negative")
    return f"{_check_item('service', service, ',:=')}_valid_until={int(unix)}"


def merchant_caveat(merchant_id: str) -> str:
    """``merchant=<id>``: the macaroon belongs to this merchant."""
    return f"merchant={_check_item('merchant id', merchant_id, '')}"


def resources_caveat(resources: Iterable[str]) -> str:
    """``resources=a,b``: only these resources (slugs, request paths, URLs with a query); none if
    empty. A caveat splits on its first ``=``, so only ``,`` (the separator) is refused."""
    return "resources=" + ",".join(_check_item("resource", r, ",") for r in resources)


# ------------------------------------------------------------------------------------- checking


def _items(value: str) -> frozenset[str] | None:
    """A comma list as a set; the empty value is the empty set; ``None`` if an item is empty."""
    if not value:
        return frozenset()
    items = value.split(",")
    if "" in items:
        return None
    return frozenset(items)


def _service_names(value: str) -> frozenset[str] | None:
    names = []
    for entry in value.split(","):
        name, colon, tier = entry.partition(":")
        if not name or not colon or not tier.isascii() or not tier.isdigit():
            return None
        names.append(name)
    return frozenset(names)


def _list_caveat(
    key: str,
    listed: frozenset[str] | None,
    previous: dict[str, frozenset[str] | int],
    needed: str | None,
    noun: str,
) -> str | None:
    """Narrowing and membership for a comma-list caveat; records it as the previous occurrence."""
    if listed is None:
        return f"caveat {key}: malformed value"
    earlier = previous.get(key)
    if isinstance(earlier, frozenset) and not listed <= earlier:
        return f"caveat {key}: broader than an earlier {key} caveat"
    if needed is not None and needed not in listed:
        return f'caveat {key}: {noun} "{needed}" not granted'
    previous[key] = listed
    return None


def _until_caveat(key: str, value: str, previous: dict[str, frozenset[str] | int]) -> str | None:
    if not value.isascii() or not value.isdigit():
        return f"caveat {key}: malformed value"
    until = int(value)
    earlier = previous.get(key)
    if isinstance(earlier, int) and until > earlier:
        return f"caveat {key}: later than an earlier {key} caveat"
    previous[key] = until
    return None


def check(caveats: Sequence[bytes], need: Requirement) -> str | None:
    """``None`` when every caveat holds for ``need``; otherwise a short reason for the refusal."""
    service = need.service
    capability = need.capability
    merchant_id = need.merchant_id
    until_key = "valid_until" if service is None else f"{service}_valid_until"
    capabilities_key = f"{service}_capabilities" if service is not None and capability is not None else None
    previous: dict[str, frozenset[str] | int] = {}
    for raw in caveats:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return MALFORMED
        key, equals, value = text.partition("=")
        if not equals:
            return MALFORMED
        if key == "services":
            reason = _list_caveat(key, _service_names(value), previous, service, "service")
        elif key == "valid_until" or key == until_key:
            reason = _until_caveat(key, value, previous)
        elif key == capabilities_key:
            reason = _list_caveat(key, _items(value), previous, capability, "capability")
        elif key == "resources":
            reason = _list_caveat(key, _items(value), previous, need.resource, "resource")
        elif key == "merchant":
            reason = None
            if merchant_id == GATEWAY:
                reason = "caveat merchant: a merchant's token does not open the gateway's own resources"
            elif merchant_id is not None and value != merchant_id:
                reason = f'caveat merchant: merchant "{merchant_id}" not granted'
        else:
            continue
        if reason is not None:
            return reason
    for key in ("valid_until", until_key):
        until = previous.get(key)
        if isinstance(until, int) and until <= need.now:
            return f"caveat {key}: expired"
    return None
