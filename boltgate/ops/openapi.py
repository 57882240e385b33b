"""The published OpenAPI document: FastAPI's, with its 422 answers replaced by what we really send
(400 problem details), so generated clients and fuzzers see the truth, and one operationId per
operation (FastAPI gives a route of several methods, the paid proxy's, the same id for each)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from boltgate.web import API_KEY_SCHEME, iter_routes, merchant_auth, problems


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(dep.call is call or _uses(dep, call) for dep in dependant.dependencies)


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        with warnings.catch_warnings():
            # made unique below (a duplicate of any other kind fails tests/ops/test_operability.py)
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
        bad_request = problems(400)[400]
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["ApiKeyAuth"] = API_KEY_SCHEME
        for route in iter_routes(app.routes):
            if not isinstance(route, APIRoute):
                continue
            methods = route.methods or set()
            for method in methods:
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                if _uses(route.dependant, merchant_auth):
                    operation["security"] = [{"ApiKeyAuth": []}]
                if len(methods) > 1:
                    operation["operationId"] = f"{route.name}_{method.lower()}"
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", bad_request)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
