"""The Shopify Admin GraphQL client: one request at a time, retried only when that is safe.

Shopify rate-limits by query cost (a leaky bucket per app and store). A throttled call answers
``errors[].extensions.code == "THROTTLED"`` (or HTTP 429) and was **not executed**, so it is
retried after the wait its ``throttleStatus`` implies. A call that failed in transit or with a
5xx is retried only when it reads; for a mutation the outcome is then unknown, which is reported
(``ShopifyUnavailable.outcome_unknown``) for the caller to resolve (the claim looks the order
up by its tag before creating it again) — never retried blindly.

Stores connect with a static Admin API token, or with the app's client id and secret (the
client-credentials grant; such tokens expire after about a day and are fetched again here).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import structlog

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 4
MAX_WAIT = 5.0  # seconds one retry may wait (longer: reported as unavailable)


class ShopifyError(Exception):
    """A Shopify call that did not give an answer we can use."""


class ShopifyUnauthorized(ShopifyError):
    """The token (or client id and secret) was refused, or lacks a scope."""


class ShopifyNotFound(ShopifyError):
    """No such shop at this domain."""


class ShopifyUnavailable(ShopifyError):
    """Shopify could not be reached, timed out, answered 5xx or kept throttling."""

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class ShopifyQueryError(ShopifyError):
    """Shopify refused the query itself (GraphQL ``errors``): a version or schema mismatch."""


@dataclass(frozen=True, slots=True)
class Credentials:
    shop_domain: str
    access_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class ShopifyAdmin:
    def __init__(self, http: httpx.AsyncClient, api_base: str, api_version: str) -> None:
        self.http = http
        self.api_base = api_base
        self.api_version = api_version
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (shop, client id) → token, expiry

    def shop_url(self, shop_domain: str) -> str:
        return self.api_base.replace("{shop}", shop_domain).rstrip("/")

    def graphql_url(self, shop_domain: str) -> str:
        return f"{self.shop_url(shop_domain)}/admin/api/{self.api_version}/graphql.json"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _token(self, creds: Credentials) -> str:
        if creds.access_token:
            return creds.access_token
        if not creds.client_id or not creds.client_secret:
            raise ShopifyUnauthorized("the store has neither an access token nor client credentials")
        key = (creds.shop_domain, creds.client_id)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            response = await self.http.post(
                f"{self.shop_url(creds.shop_domain)}/admin/oauth/access_token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds.client_id,
                    "client_secret": creds.client_secret,
                },
            )
        except httpx.HTTPError as exc:
            raise ShopifyUnavailable(f"Shopify token request failed: {type(exc).__name__}") from exc
        if response.status_code in (400, 401, 403):
            raise ShopifyUnauthorized("Shopify refused the client id and secret")
        if response.status_code == 404:
            raise ShopifyNotFound(f"no Shopify store at {creds.shop_domain}")
        if response.status_code != 200:
            raise ShopifyUnavailable(f"Shopify token request answered {response.status_code}")
        try:
            data = response.json()
            token = str(data["access_token"])
            lifetime = float(data.get("expires_in") or 86400)
        except (ValueError, KeyError, TypeError) as exc:
            raise ShopifyUnavailable("Shopify token response was not understood") from exc
        self._tokens[key] = (token, time.monotonic() + max(60.0, lifetime - 300))
        return token

    async def execute(
        self,
        creds: Credentials,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        mutation: bool = False,
    ) -> dict[str, Any]:
        """The ``data`` of one operation; raises a :class:`ShopifyError` otherwise."""
        body = orjson.dumps({"query": query, "variables": variables or {}})
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self._token(creds)
            try:
                response = await self.http.post(
                    self.graphql_url(creds.shop_domain),
                    content=body,
                    headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if (mutation and sent) or attempt >= MAX_ATTEMPTS:
                    raise ShopifyUnavailable(
                        f"Shopify did not answer: {type(exc).__name__}", outcome_unknown=mutation and sent
                    ) from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            status = response.status_code
            if status == 401 and not refreshed and creds.client_id and not creds.access_token:
                self._tokens.pop((creds.shop_domain, creds.client_id), None)  # expired early: fetch again
                refreshed = True
                continue
            if status in (401, 403):
                raise ShopifyUnauthorized(f"Shopify refused the access token ({status})")
            if status == 404:
                raise ShopifyNotFound(f"no Shopify store at {creds.shop_domain}")
            if status == 429:  # throttled before anything ran
                wait = _retry_after(response.headers.get("retry-after"), attempt)
                if attempt >= MAX_ATTEMPTS or wait > MAX_WAIT:
                    raise ShopifyUnavailable("Shopify kept throttling the requests")
                await asyncio.sleep(wait)
                continue
            if status >= 500 or status != 200:
                if mutation or attempt >= MAX_ATTEMPTS:
                    raise ShopifyUnavailable(
                        f"Shopify answered {status}", outcome_unknown=mutation and status >= 500
                    )
                await asyncio.sleep(_backoff(attempt))
                continue
            try:
                payload = orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                raise ShopifyUnavailable(
                    "Shopify answered something that is not JSON", outcome_unknown=mutation
                ) from exc
            if not isinstance(payload, dict):
                raise ShopifyUnavailable(
                    "Shopify answered an unexpected JSON shape", outcome_unknown=mutation
                )
            errors = payload.get("errors")
            if errors:
                throttled = _throttle_wait(errors, payload.get("extensions"))
                if throttled is None:
                    log.warning("shopify_query_error", shop=creds.shop_domain, errors=str(errors)[:500])
                    raise ShopifyQueryError(_first_message(errors))
                if attempt >= MAX_ATTEMPTS or throttled > MAX_WAIT:
                    raise ShopifyUnavailable("Shopify kept throttling the requests")
                await asyncio.sleep(throttled)
                continue
            data = payload.get("data")
            if not isinstance(data, dict):
                raise ShopifyUnavailable("Shopify answered without data", outcome_unknown=mutation)
            return data


def _backoff(attempt: int) -> float:
    return min(MAX_WAIT, 0.2 * float(2 ** (attempt - 1)))


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        return max(0.0, float(value)) if value is not None else _backoff(attempt)
    except ValueError:
        return _backoff(attempt)


def _first_message(errors: Any) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", "query refused"))[:300]
    return str(errors)[:300]


def _throttle_wait(errors: Any, extensions: Any) -> float | None:
    """Seconds to wait when the errors say THROTTLED (the bucket refills at ``restoreRate``)."""
    if not isinstance(errors, list) or not any(
        isinstance(e, dict)
        and (
            (isinstance(e.get("extensions"), dict) and e["extensions"].get("code") == "THROTTLED")
            or e.get("message") == "Throttled"
        )
        for e in errors
    ):
        return None
    try:
        cost = extensions["cost"]
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(0.05, missing / max(1.0, float(status["restoreRate"])))
    except (KeyError, TypeError, ValueError):
        return 1.0
