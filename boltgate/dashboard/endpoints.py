"""The dashboard's router: every page under ``/dashboard`` (HTML, not part of the JSON API's
OpenAPI document), and the directory of its static files (served at ``/static/dashboard``)."""

from __future__ import annotations

from fastapi import APIRouter

from boltgate.dashboard import manage, pages, proxies, signin
from boltgate.dashboard.web import STATIC_DIR

router = APIRouter(include_in_schema=False)
for part in (signin.router, pages.router, manage.router, proxies.router):
    router.include_router(part)

__all__ = ["STATIC_DIR", "router"]
