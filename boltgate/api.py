"""Mounts every domain's router."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from boltgate.agent import identity_endpoints as agent_identity
from boltgate.agent import market_endpoints as agent_market
from boltgate.checkout import endpoints as checkout_endpoints
from boltgate.checkout import pages as checkout_pages
from boltgate.checkout import product_endpoints
from boltgate.config import Settings
from boltgate.dashboard import endpoints as dashboard_endpoints
from boltgate.l402 import content as l402_content
from boltgate.l402 import endpoints as l402_endpoints
from boltgate.lightning import endpoints as dev_endpoints
from boltgate.merchant import account_endpoints as merchant_account_endpoints
from boltgate.merchant import backend_endpoints as merchant_backend_endpoints
from boltgate.merchant import endpoints as merchant_endpoints
from boltgate.ops import endpoints as ops_endpoints
from boltgate.payment import endpoints as payment_endpoints
from boltgate.platform import downloads as platform_downloads
from boltgate.platform import legal as platform_legal
from boltgate.platform import version as platform_version
from boltgate.proxy import discovery as proxy_discovery
from boltgate.proxy import endpoints as proxy_endpoints
from boltgate.proxy import forward as proxy_forward
from boltgate.proxy import stats as proxy_stats
from boltgate.rates import endpoints as rate_endpoints
from boltgate.refund import endpoints as refund_endpoints
from boltgate.shopify import endpoints as shopify_endpoints
from boltgate.shopify import store_endpoints as shopify_store_endpoints
from boltgate.webhook import endpoints as webhook_endpoints


def mount(app: FastAPI, settings: Settings) -> None:
    # the paid proxy first: its calls are the hottest, and routing tries routes in order
    app.include_router(proxy_discovery.router)  # before the proxy's catch-all route
    app.include_router(proxy_forward.router)
    app.include_router(payment_endpoints.router)
    app.include_router(refund_endpoints.router)
    app.include_router(refund_endpoints.claim_router)
    app.include_router(webhook_endpoints.router)
    app.include_router(checkout_endpoints.router)
    app.include_router(product_endpoints.router)
    app.include_router(checkout_pages.router)
    app.mount("/static/checkout", StaticFiles(directory=checkout_pages.STATIC_DIR), name="checkout-static")
    app.include_router(l402_endpoints.router)
    app.include_router(l402_content.router)
    app.include_router(proxy_endpoints.router)
    app.include_router(proxy_stats.router)
    app.include_router(agent_market.router)  # /api/agents/capabilities… before /api/agents/{pubkey}
    app.include_router(agent_identity.router)
    app.include_router(shopify_store_endpoints.router)  # /api/shopify/stores… before /api/shopify/{slug}…
    app.include_router(shopify_endpoints.router)
    app.include_router(merchant_endpoints.router)
    app.include_router(merchant_backend_endpoints.router)
    app.include_router(merchant_account_endpoints.router)
    app.include_router(platform_version.router)
    app.include_router(platform_legal.router)
    app.include_router(platform_downloads.router)
    app.include_router(rate_endpoints.router)
    app.include_router(dashboard_endpoints.router)
    app.mount(
        "/static/dashboard", StaticFiles(directory=dashboard_endpoints.STATIC_DIR), name="dashboard-static"
    )
    app.include_router(ops_endpoints.router)
    if settings.is_dev and settings.dev_endpoints and settings.lightning_backend == "dev":
        app.include_router(dev_endpoints.router)
