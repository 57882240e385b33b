"""Imports every model so that ``Base.metadata`` is complete (for Alembic and the tests)."""

from boltgate.agent.models import (
    Agent,
    AgentChallenge,
    Agreement,
    Attestation,
    Capability,
    NostrEvent,
    ServiceRequest,
)
from boltgate.checkout.models import Product
from boltgate.dashboard.models import DashboardLoginLink, DashboardSession
from boltgate.db.base import Base
from boltgate.l402.models import Challenge, ContentItem, RootKey
from boltgate.merchant.models import ApiKey, Merchant
from boltgate.payment.models import IdempotencyKey, Payment
from boltgate.proxy.models import Proxy, ProxyEndpoint, ProxyUsage
from boltgate.refund.models import Refund
from boltgate.shopify.models import ShopifyCatalog, ShopifyOrder, ShopifyStore, ShopifyWebhookReceipt
from boltgate.webhook.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from boltgate.worker.models import Cursor

__all__ = [
    "Agent",
    "AgentChallenge",
    "Agreement",
    "ApiKey",
    "Attestation",
    "Base",
    "Capability",
    "Challenge",
    "ContentItem",
    "Cursor",
    "DashboardLoginLink",
    "DashboardSession",
    "Delivery",
    "DeliveryAttempt",
    "Event",
    "IdempotencyKey",
    "Merchant",
    "NostrEvent",
    "Payment",
    "Product",
    "Proxy",
    "ProxyEndpoint",
    "ProxyUsage",
    "Refund",
    "RootKey",
    "ServiceRequest",
    "ShopifyCatalog",
    "ShopifyOrder",
    "ShopifyStore",
    "ShopifyWebhookReceipt",
    "WebhookEndpoint",
]
