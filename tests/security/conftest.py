"""The security tests reuse the fixtures of the areas they probe (imported here, so the test
modules stay plain): the dashboard's browser-like client, the fake Shopify and its gateway, and
the refund tests' fake node and Lightning-address server."""

from __future__ import annotations

from tests.dashboard.conftest import api, dash, dash_gateway, smtp  # noqa: F401
from tests.refund.conftest import _settled_by_default, lnurl_server, node  # noqa: F401
from tests.shopify.conftest import connect, sclient, shop_gateway, shopify  # noqa: F401
