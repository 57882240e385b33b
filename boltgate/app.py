"""``create_app(settings)``: the FastAPI app; its lifespan builds and closes everything it uses."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from boltgate import __version__
from boltgate.agent import identity
from boltgate.agent.events import Platform, platform_secret
from boltgate.api import mount
from boltgate.config import Settings
from boltgate.context import Context
from boltgate.db.engine import Database
from boltgate.db.errors import DATABASE_ERRORS
from boltgate.db.errors import unavailable as database_unavailable
from boltgate.db.migrate import upgrade
from boltgate.errors import (
    PROBLEM_CONTENT_TYPE,
    BackendUnavailable,
    BadGateway,
    BoltgateError,
    SecretKeyMismatch,
    ServiceUnavailable,
    ValidationFailed,
    problem_body,
)
from boltgate.kit import crypto
from boltgate.kit.crypto import SealError, key_ring
from boltgate.kit.netguard import guarded_session, parse_networks, webhook_client
from boltgate.l402.guard import PaymentRequired
from boltgate.l402.store import Keys, SecretStore
from boltgate.lightning.base import (
    LightningBackend,
    LightningError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
)
from boltgate.lightning.failover import FailoverBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from boltgate.merchant.backends import BackendPool, merchant_env
from boltgate.ops import openapi
from boltgate.ops.logging import configure as configure_logging
from boltgate.ops.middleware import RequestMiddleware
from boltgate.ops.ratelimit import RateLimiter
from boltgate.payment import tasks
from boltgate.proxy.directory import Directory
from boltgate.proxy.usage import Usage
from boltgate.rates.service import RateService, build_providers
from boltgate.refund import tasks as refund_tasks
from boltgate.shopify import webhooks as shopify_webhooks
from boltgate.shopify.client import ShopifyAdmin
from boltgate.shopify.stores import Channel
from boltgate.web import iter_routes
from boltgate.webhook.delivery import DeliveryWorker
from boltgate.webhook.feed import EventFeed
from boltgate.worker.leases import Leases

log = structlog.get_logger(__name__)


def backend_env(settings: Settings) -> BackendEnv:
    return BackendEnv(
        data_dir=settings.data_dir,
        network=settings.network,
        min_final_cltv_expiry=settings.min_final_cltv_expiry,
        poll_interval=settings.settlement_poll_interval_seconds,
        dev_mode=settings.is_dev,
    )


def build_backend(settings: Settings) -> LightningBackend:
    """The configured backend (with its failover partner). Opening makes no network call: a
    backend that is down at start leaves the gateway running, not ready, answering 503."""
    env = backend_env(settings)
    primary = open_backend(settings.lightning_url.get_secret_value(), env)
    if settings.lightning_failover_url is None:
        return primary
    return FailoverBackend(
        primary,
        open_backend(settings.lightning_failover_url.get_secret_value(), env),
        probe_seconds=settings.lightning_failover_probe_seconds,
    )


def start_workers(ctx: Context) -> list[asyncio.Task[None]]:
    """The in-process settlement path: watcher, expiry sweeper, reconciler, webhook deliveries."""
    s = ctx.settings

    async def reconcile() -> None:
        await tasks.reconcile_once(ctx.db, ctx.backend, ctx.clock, resolve=ctx.backends.get)

    async def sweep() -> None:
        await tasks.expire_due(ctx.db, ctx.backend, ctx.clock, resolve=ctx.backends.get)

    async def forget_challenges() -> None:
        async with ctx.db.writing() as session:
            await identity.forget_stale_challenges(session, ctx.clock())

    async def forget_receipts() -> None:
        await shopify_webhooks.forget_receipts(ctx)

    async def check_refunds() -> None:
        await refund_tasks.check_pending(ctx)

    def leased(job: str, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``run`` on the replica that holds the job's lease this round; skipped on the others."""

        async def one_round() -> None:
            async with ctx.leases.hold(job) as mine:
                if mine:
                    await run()

        return one_round

    worker = DeliveryWorker(
        ctx.db,
        ctx.webhook_http,
        ctx.secrets,
        ctx.clock,
        concurrency=s.webhook_concurrency,
        disable_after=s.webhook_disable_after,
        poll_interval=s.webhook_poll_interval_seconds,
        wake=ctx.wake,
    )
    return [
        asyncio.create_task(worker.run(), name="webhooks"),
        asyncio.create_task(
            tasks.watch_settlements(ctx.db, ctx.backend, ctx.clock, poll_interval=s.settlement_poll_seconds),
            name="watcher",
        ),
        asyncio.create_task(
            tasks.watch_merchant_backends(
                ctx.db,
                ctx.backends.get,
                ctx.clock,
                poll_interval=s.settlement_poll_seconds,
                wake=ctx.backends.wake,
                watched=ctx.backends.watched,
            ),
            name="merchant-watchers",
        ),
        *(
            asyncio.create_task(tasks.every(interval, job, leased(job, run)), name=job)
            for job, interval, run in (
                ("reconcile", s.reconcile_interval_seconds, reconcile),
                ("expire", s.expiry_sweep_interval_seconds, sweep),
                ("agent-challenges", 3600, forget_challenges),
                ("shopify-receipts", 3600, forget_receipts),
                ("refunds", s.refund_check_interval_seconds, check_refunds),
            )
        ),
    ]


@asynccontextmanager
async def open_context(settings: Settings) -> AsyncIterator[Context]:
    """Everything a process needs, opened in order and closed in reverse."""
    settings.check_production()
    if settings.auto_migrate:
        await upgrade(settings.effective_database_url)
    db = Database(settings.effective_database_url, pool_size=settings.database_pool_size)
    http = httpx.AsyncClient(timeout=settings.rate_timeout_seconds, follow_redirects=False)
    backend = build_backend(settings)
    rates = RateService(
        build_providers(settings.rate_providers, http, settings.fixed_rates),
        ttl_seconds=settings.rate_ttl_seconds,
        stale_max_seconds=settings.rate_stale_max_seconds,
    )
    wake = asyncio.Event()
    networks = parse_networks(settings.proxy_allow_networks)
    ring = key_ring(settings)
    ctx = Context(
        settings=settings,
        db=db,
        backend=backend,
        backends=BackendPool(
            backend,
            db,
            ring.box(crypto.MERCHANT_BACKENDS),
            merchant_env(backend_env(settings), networks, settings.webhooks_may_reach_private),
        ),
        rates=rates,
        limiter=RateLimiter(settings.rate_limit, settings.redis_url),
        http=http,
        webhook_http=webhook_client(
            settings.webhooks_may_reach_private,
            settings.webhook_timeout_seconds,
            settings.webhook_concurrency * 2,
        ),
        secrets=ring.box(crypto.WEBHOOK_SECRETS),
        feed=EventFeed(db, poll_interval=settings.event_poll_interval_seconds, wake=wake),
        wake=wake,
        l402=Keys(
            mpp_key=ring.key("mpp-challenge-id"),
            mpp_previous=ring.keys("mpp-challenge-id")[1:],
            store=SecretStore(db, ring.box(crypto.L402_ROOT_KEYS)),
            realm=settings.l402_realm or (urlsplit(settings.base_url).hostname or "boltgate"),
            verified_ttl=settings.l402_verified_cache_seconds,
        ),
        proxies=Directory(db, settings.proxy_config_cache_seconds),
        usage=Usage(db),
        proxy_http=guarded_session(
            networks,
            connect=settings.proxy_connect_timeout_seconds,
            read=settings.proxy_timeout_seconds,
            connections=settings.proxy_max_connections,
        ),
        proxy_networks=networks,
        platform=Platform(
            platform_secret(
                ring,
                settings.nostr_platform_key.get_secret_value() if settings.nostr_platform_key else None,
            ),
            relays=tuple(settings.nostr_relays),
        ),
        shopify=Channel.build(
            ShopifyAdmin(
                httpx.AsyncClient(timeout=settings.shopify_timeout_seconds, follow_redirects=False),
                settings.shopify_api_base,
                settings.shopify_api_version,
            ),
            ring,
        ),
        leases=Leases(db),
    )
    feed = asyncio.create_task(ctx.feed.run(), name="event-feed")
    usage = asyncio.create_task(ctx.usage.run(settings.proxy_usage_flush_seconds), name="proxy-usage")
    try:
        yield ctx
    finally:
        feed.cancel()
        usage.cancel()
        await asyncio.gather(feed, usage, return_exceptions=True)
        await ctx.platform.close()
        await ctx.shopify.admin.aclose()
        await ctx.proxy_http.close()
        await ctx.webhook_http.aclose()
        await rates.aclose()
        await ctx.backends.close()
        await backend.close()
        await http.aclose()
        await ctx.leases.close()
        await db.dispose()


def _problem(error: BoltgateError) -> Response:
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in iter_routes(request.app.routes):
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


def sealed_problem(exc: SealError, path: str) -> BoltgateError:
    """A stored secret no key of the ring opens: one error line for the operator (the purpose and
    the path, never the sealed value or a key) and ``503 secret_key_mismatch`` for the client."""
    log.error("secret_key_mismatch", purpose=exc.purpose, path=path)
    return SecretKeyMismatch(
        "a secret this request needs was sealed with a server key this gateway does not have; "
        "the operator must add that key to BOLTGATE_SECRET_KEY_PREVIOUS"
    )


def lightning_problem(exc: LightningError) -> BoltgateError:
    """A backend failure as the client sees it: 503 with Retry-After while the backend is
    unavailable, 502 when it refused or answered nonsense (the operator must act)."""
    if isinstance(exc, LightningUnavailable):
        return BackendUnavailable(
            f"the Lightning backend is unavailable ({exc}); try again shortly", headers={"Retry-After": "5"}
        )
    if isinstance(exc, LightningRejected):
        return BadGateway(
            f"the Lightning backend refused the request ({exc})", code="lightning_backend_rejected"
        )
    if isinstance(exc, LightningUnsupported):
        return BadGateway(
            f"the Lightning backend cannot do this ({exc})", code="lightning_backend_unsupported"
        )
    return BadGateway(
        f"the Lightning backend gave an unusable answer ({exc})", code="lightning_backend_invalid"
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_boltgate(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BoltgateError)
        return _problem(exc)

    async def on_validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors: dict[str, list[str]] = {}
        for item in exc.errors():
            errors.setdefault(_field(tuple(item.get("loc", ()))), []).append(
                str(item.get("msg", "invalid")).removeprefix("Value error, ")
            )
        first = next(iter(errors.items()), ("request", ["invalid"]))
        return _problem(ValidationFailed(f"{first[0]}: {first[1][0]}", errors=errors))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: ("not_found", "Not found"), 405: ("method_not_allowed", "Method not allowed")}
        code, title = codes.get(exc.status_code, ("http_error", "HTTP error"))
        headers = dict(exc.headers or {})
        detail = str(exc.detail) if exc.detail else title
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        body = problem_body(exc.status_code, code, title, detail)
        return Response(
            orjson.dumps(body), status_code=exc.status_code, headers=headers, media_type=PROBLEM_CONTENT_TYPE
        )

    async def on_crash(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error=type(exc).__name__)
        body = problem_body(500, "internal_error", "Internal error", "An unexpected error occurred")
        return Response(orjson.dumps(body), status_code=500, media_type=PROBLEM_CONTENT_TYPE)

    async def on_database(request: Request, exc: Exception) -> Response:
        """The database down, restarting or full: 503 with Retry-After, not a 500 (anything
        else of these types is still a crash)."""
        reason = database_unavailable(exc)
        if reason is None:
            return await on_crash(request, exc)
        log.warning("database_unavailable", reason=reason, error=type(exc).__name__, path=request.url.path)
        return _problem(
            ServiceUnavailable(
                f"the database is unavailable ({reason}); try again shortly",
                code="database_unavailable",
                headers={"Retry-After": "5"},
            )
        )

    async def on_sealed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SealError)
        return _problem(sealed_problem(exc, request.url.path))

    async def on_lightning(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LightningError)
        if isinstance(exc.__cause__, SealError):  # a merchant's wallet URL sealed under another key
            return _problem(sealed_problem(exc.__cause__, request.url.path))
        log.warning("lightning_backend_error", backend=exc.backend, kind=type(exc).__name__, error=str(exc))
        return _problem(lightning_problem(exc))

    async def on_payment_required(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PaymentRequired)
        return exc.response

    app.add_exception_handler(PaymentRequired, on_payment_required)
    app.add_exception_handler(BoltgateError, on_boltgate)
    app.add_exception_handler(LightningError, on_lightning)
    app.add_exception_handler(SealError, on_sealed)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, on_database)
    app.add_exception_handler(Exception, on_crash)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)  # again in each `--workers` process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_context(settings) as ctx:
            app.state.ctx = ctx
            workers = start_workers(ctx) if settings.run_workers else []
            # What start-up built lives as long as the process: moved out of the collector's
            # generations, full collections stop walking it (they paused the loop 55-95 ms under
            # load before; bench/RESULTS.md, proxy section).
            gc.collect()
            gc.freeze()
            log.info("boltgate_started", url=settings.base_url, database=ctx.db.dialect, mode=settings.mode)
            try:
                yield
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    app = FastAPI(
        title="boltgate",
        version=__version__,
        description="Self-hostable Bitcoin Lightning payment gateway (superset of the Lightning Enable API).",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.router.redirect_slashes = False
    install_error_handlers(app)
    mount(app, settings)
    openapi.install(app)
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
        body_limits=(("/l402/proxy/", settings.proxy_max_body_bytes), ("/api/shopify/", 1 << 20)),
    )
    return app
