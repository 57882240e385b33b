"""The rules of the producer API: proxies, their priced endpoints, manifest settings, retirement.

Functions take the session first and never commit (the endpoint's transaction does). A proxy's
target is checked here for its form (http(s), a host, no credentials, query or fragment) and, when
it names an IP address, for the address policy; the real guard runs when connecting, because a
hostname may resolve elsewhere later.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.owned import owned
from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import new_id
from boltgate.kit.netguard import Network, allowed
from boltgate.kit.search import folded_keys, folded_text, join_lines, split_lines
from boltgate.proxy import paths, pricing, schemas
from boltgate.proxy.models import Proxy, ProxyEndpoint, ProxyUsage

MAX_ENDPOINTS = 500
MAX_PROXIES = 1000  # per merchant


def proxy_url(proxy_id: str) -> str:
    return f"/l402/proxy/{proxy_id}"


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors={field: [message]}, code=code)


def _as_address(host: str) -> str | None:
    """The IP address a host names literally, including IPv4's short and numeric forms
    (``127.1``, ``2130706433``, ``0x7f.1``) that resolvers accept; None for a name."""
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def check_target(url: str, networks: tuple[Network, ...]) -> str:
    """The target as stored (no trailing slash), or 400 ``invalid_target_url`` / ``target_not_allowed``."""
    try:
        paths.upstream_url(url, "/", b"")  # what forwarding will build from it must be buildable
    except paths.UnsafePath as exc:
        raise _invalid("targetBaseUrl", f"is not usable: {exc}", "invalid_target_url") from exc
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("targetBaseUrl", "must be an absolute http(s) URL", "invalid_target_url")
    if parts.username is not None or parts.password is not None:
        raise _invalid("targetBaseUrl", "must not contain credentials (user:password@)", "invalid_target_url")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise _invalid("targetBaseUrl", "must not have a query or a fragment", "invalid_target_url")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise _invalid("targetBaseUrl", "has an invalid port", "invalid_target_url") from exc
    address = _as_address(parts.hostname)
    if address is None:
        return url.rstrip("/")  # a name: checked when connecting
    if not allowed(address, networks):
        raise _invalid(
            "targetBaseUrl",
            "points at a private, loopback or link-local address the operator has not allowed "
            "(BOLTGATE_PROXY_ALLOW_NETWORKS)",
            "target_not_allowed",
        )
    return url.rstrip("/")


def index_search(proxy: Proxy) -> None:
    """Refresh the registry's case-folded search columns from the proxy's fields."""
    categories = split_lines(proxy.categories)
    proxy.search_text = folded_text(
        [proxy.name, proxy.description or "", proxy.service_description or "", *categories]
    )
    proxy.category_keys = folded_keys(categories)


async def create(
    session: AsyncSession,
    merchant_id: str,
    body: schemas.ProxyCreate,
    now: datetime,
    networks: tuple[Network, ...],
) -> Proxy:
    count = await session.scalar(
        select(func.count()).select_from(Proxy).where(Proxy.merchant_id == merchant_id)
    )
    if (count or 0) >= MAX_PROXIES:
        raise Conflict(f"a merchant may have at most {MAX_PROXIES} proxies", code="too_many_proxies")
    proxy = Proxy(
        id=new_id("prx"),
        merchant_id=merchant_id,
        name=body.name,
        description=body.description,
        target_base_url=check_target(body.targetBaseUrl, networks),
        default_price_sats=body.defaultPriceSats,
        token_ttl_seconds=body.tokenTtlSeconds,
        max_calls_per_token=body.maxCallsPerToken,
        manifest_enabled=True,
        manifest_listed=False,
        service_description=None,
        categories="",
        documentation_url=None,
        retired_at=None,
        retire_reason=None,
        created_at=now,
        updated_at=now,
    )
    index_search(proxy)
    session.add(proxy)
    return proxy


async def get(session: AsyncSession, merchant_id: str, proxy_id: str, *, lock: bool = False) -> Proxy:
    """The merchant's proxy; ``lock`` serialises changes to it and its endpoints (checks that read
    the other endpoints, and retirement, must not interleave)."""
    return await owned(session, Proxy, merchant_id, proxy_id, what="proxy", code="proxy_not_found", lock=lock)


async def list_for(session: AsyncSession, merchant_id: str) -> list[Proxy]:
    stmt = select(Proxy).where(Proxy.merchant_id == merchant_id).order_by(Proxy.created_at.desc(), Proxy.id)
    return list(await session.scalars(stmt))


async def endpoints_of(session: AsyncSession, proxy_ids: list[str]) -> dict[str, list[ProxyEndpoint]]:
    found: dict[str, list[ProxyEndpoint]] = defaultdict(list)
    if proxy_ids:
        stmt = (
            select(ProxyEndpoint)
            .where(ProxyEndpoint.proxy_id.in_(proxy_ids))
            .order_by(ProxyEndpoint.proxy_id, ProxyEndpoint.created_at, ProxyEndpoint.endpoint_id)
        )
        for endpoint in await session.scalars(stmt):
            found[endpoint.proxy_id].append(endpoint)
    return found


def update(proxy: Proxy, body: schemas.ProxyUpdate, now: datetime, networks: tuple[Network, ...]) -> None:
    given = body.model_fields_set
    for field in ("name", "targetBaseUrl", "defaultPriceSats"):
        if field in given and getattr(body, field) is None:
            raise _invalid(field, "must not be null")
    if body.name is not None:
        proxy.name = body.name
    if body.targetBaseUrl is not None:
        proxy.target_base_url = check_target(body.targetBaseUrl, networks)
    if body.defaultPriceSats is not None:
        proxy.default_price_sats = body.defaultPriceSats
    if "description" in given:
        proxy.description = body.description
    if "tokenTtlSeconds" in given:
        proxy.token_ttl_seconds = body.tokenTtlSeconds
    if "maxCallsPerToken" in given:
        proxy.max_calls_per_token = body.maxCallsPerToken
    index_search(proxy)
    proxy.updated_at = now


async def add_endpoint(
    session: AsyncSession, proxy: Proxy, body: schemas.EndpointCreate, now: datetime
) -> tuple[ProxyEndpoint, bool]:
    """(the endpoint, created); sending the same definition again returns it unchanged."""
    existing = await session.get(ProxyEndpoint, (proxy.id, body.endpointId))
    if existing is not None:
        mine = (existing.path, existing.http_method, existing.price_sats, existing.summary)
        theirs = (body.path, body.httpMethod, body.basePriceSats, body.summary)
        same = mine == theirs and (existing.description, existing.tags) == (
            body.description,
            join_lines(body.tags),
        )
        if same:
            return existing, False
        raise Conflict(
            f"endpoint {body.endpointId} exists with another definition; change it with PUT",
            code="endpoint_exists",
        )
    endpoints = (await endpoints_of(session, [proxy.id])).get(proxy.id, [])
    if len(endpoints) >= MAX_ENDPOINTS:
        raise Conflict(f"a proxy may have at most {MAX_ENDPOINTS} endpoints", code="too_many_endpoints")
    endpoint = ProxyEndpoint(
        proxy_id=proxy.id,
        endpoint_id=body.endpointId,
        path=body.path,
        http_method=body.httpMethod,
        price_sats=body.basePriceSats,
        summary=body.summary,
        description=body.description,
        tags=join_lines(body.tags),
        created_at=now,
        updated_at=now,
    )
    _refuse_clash(endpoints, endpoint)
    session.add(endpoint)
    proxy.updated_at = now
    return endpoint, True


def _refuse_clash(others: list[ProxyEndpoint], endpoint: ProxyEndpoint) -> None:
    """Two endpoints with the same method and the same pattern shape could never both be chosen."""
    table = pricing.PriceTable(
        [_priced(e) for e in others if e.endpoint_id != endpoint.endpoint_id] + [_priced(endpoint)], 0
    )
    for first, second in table.conflicts():
        if endpoint.endpoint_id in (first, second):
            other = second if first == endpoint.endpoint_id else first
            raise Conflict(
                f"endpoint {other} already prices {endpoint.http_method} {endpoint.path}",
                code="endpoint_conflict",
            )


def _priced(endpoint: ProxyEndpoint) -> pricing.PricedEndpoint:
    return pricing.PricedEndpoint(
        endpoint.endpoint_id, endpoint.path, endpoint.http_method, endpoint.price_sats
    )


async def get_endpoint(session: AsyncSession, proxy: Proxy, endpoint_id: str) -> ProxyEndpoint:
    found = await session.get(ProxyEndpoint, (proxy.id, endpoint_id))
    if found is None:
        raise NotFound(f"endpoint {endpoint_id} not found", code="endpoint_not_found")
    return found


async def update_endpoint(
    session: AsyncSession, proxy: Proxy, endpoint: ProxyEndpoint, body: schemas.EndpointUpdate, now: datetime
) -> None:
    for field in ("path", "httpMethod", "basePriceSats"):
        if field in body.model_fields_set and getattr(body, field) is None:
            raise _invalid(field, "must not be null")
    endpoint.path = body.path or endpoint.path
    endpoint.http_method = body.httpMethod or endpoint.http_method
    if body.basePriceSats is not None:
        endpoint.price_sats = body.basePriceSats
    for field, column in (("summary", "summary"), ("description", "description")):
        if field in body.model_fields_set:
            setattr(endpoint, column, getattr(body, field))
    if "tags" in body.model_fields_set:
        endpoint.tags = join_lines(body.tags)
    endpoint.updated_at = now
    _refuse_clash((await endpoints_of(session, [proxy.id])).get(proxy.id, []), endpoint)
    proxy.updated_at = now


async def delete_endpoint(
    session: AsyncSession, proxy: Proxy, endpoint: ProxyEndpoint, now: datetime
) -> None:
    await session.delete(endpoint)
    proxy.updated_at = now


def update_settings(proxy: Proxy, body: schemas.ManifestSettings, now: datetime) -> None:
    given = body.model_fields_set
    if body.manifestEnabled is not None:
        proxy.manifest_enabled = body.manifestEnabled
    if body.manifestPubliclyListed is not None:
        proxy.manifest_listed = body.manifestPubliclyListed
    if "serviceDescription" in given:
        proxy.service_description = body.serviceDescription
    if "categories" in given:
        proxy.categories = join_lines(body.categories)
    if "documentationUrl" in given:
        proxy.documentation_url = body.documentationUrl
    index_search(proxy)
    proxy.updated_at = now


def unpublish(proxy: Proxy, reason: str | None, now: datetime) -> bool:
    """Retire the proxy; True if it already was (nothing changes then)."""
    if proxy.retired_at is not None:
        return True
    proxy.retired_at = now
    proxy.retire_reason = reason
    proxy.manifest_listed = False
    proxy.updated_at = now
    return False


async def delete_proxy(session: AsyncSession, proxy: Proxy) -> None:
    await session.execute(delete(ProxyEndpoint).where(ProxyEndpoint.proxy_id == proxy.id))
    await session.execute(delete(ProxyUsage).where(ProxyUsage.proxy_id == proxy.id))
    await session.delete(proxy)


def endpoint_out(proxy_id: str, endpoint: ProxyEndpoint) -> dict[str, Any]:
    return {
        "endpointId": endpoint.endpoint_id,
        "path": endpoint.path,
        "httpMethod": endpoint.http_method,
        "basePriceSats": endpoint.price_sats,
        "summary": endpoint.summary,
        "description": endpoint.description,
        "tags": split_lines(endpoint.tags),
        "paidUrl": proxy_url(proxy_id) + endpoint.path.replace("*", "{rest}"),
        "createdAt": rfc3339(endpoint.created_at),
        "updatedAt": rfc3339(endpoint.updated_at),
    }


def settings_out(proxy: Proxy) -> dict[str, Any]:
    return {
        "proxyId": proxy.id,
        "manifestEnabled": proxy.manifest_enabled,
        "manifestPubliclyListed": proxy.manifest_listed,
        "serviceDescription": proxy.service_description,
        "categories": split_lines(proxy.categories),
        "documentationUrl": proxy.documentation_url,
        "manifestUrl": f"{proxy_url(proxy.id)}/.well-known/l402-manifest.json",
    }


def proxy_out(proxy: Proxy, endpoints: list[ProxyEndpoint]) -> dict[str, Any]:
    return {
        "proxyId": proxy.id,
        "name": proxy.name,
        "description": proxy.description,
        "targetBaseUrl": proxy.target_base_url,
        "defaultPriceSats": proxy.default_price_sats,
        "proxyUrl": proxy_url(proxy.id),
        "tokenTtlSeconds": proxy.token_ttl_seconds,
        "maxCallsPerToken": proxy.max_calls_per_token,
        **{k: v for k, v in settings_out(proxy).items() if k != "proxyId"},
        "openApiUrl": f"{proxy_url(proxy.id)}/openapi.json",
        "retired": proxy.retired_at is not None,
        "retiredAt": rfc3339(proxy.retired_at),
        "retireReason": proxy.retire_reason,
        "endpoints": [endpoint_out(proxy.id, e) for e in endpoints],
        "createdAt": rfc3339(proxy.created_at),
        "updatedAt": rfc3339(proxy.updated_at),
    }
