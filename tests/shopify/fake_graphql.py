"""GraphQL for the fake Shopify: the schema subset, resolvers, the cost model and error shapes."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    parse,
    validate,
)
from graphql.utilities import value_from_ast_untyped

from tests.shopify.fake_store import (
    SEARCH_TERM,
    Order,
    Product,
    ProductVariant,
    Shop,
    _camel_to_snake,
    _decimal,
    _decimal_out,
    _gid,
    _iso,
)

RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
MAX_QUERY_COST = 1000


def _error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


SCHEMA = build_schema((Path(__file__).parent / "fake_schema.graphql").read_text())
_SCALARS: dict[str, tuple[Any, Any]] = {  # name: (serialize, parse_value)
    "Decimal": (_decimal_out, _decimal),
    "Money": (lambda v: f"{Decimal(v):.2f}", _decimal),
    "UnsignedInt64": (str, int),
    "DateTime": (lambda v: _iso(v) if isinstance(v, datetime) else v, str),
    "URL": (str, str),
}
for _name, (_out, _in) in _SCALARS.items():  # graphql-core 3.3 names, and 3.2's
    _scalar: Any = SCHEMA.type_map[_name]
    _scalar.coerce_output_value = _scalar.serialize = _out
    _scalar.coerce_input_value = _scalar.parse_value = _in
    _scalar.coerce_input_literal = _scalar.parse_literal = lambda node, *_, _in=_in: _in(
        getattr(node, "value", None)
    )
for _interface in ("Node", "Media"):
    SCHEMA.type_map[_interface].resolve_type = (  # type: ignore[attr-defined]
        lambda value, _info, _type: value["__typename"] if isinstance(value, dict) else type(value).__name__
    )


def _cursor(item: Any) -> str:
    last = item.legacy_resource_id
    return base64.b64encode(orjson.dumps({"last_id": last, "last_value": str(last)})).decode()


def _connection(items: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
    if first is None:
        raise _error("you must provide one of first or last", "argumentLiteralsIncompatible")
    start = 0
    if after is not None:
        try:
            last_id = orjson.loads(base64.b64decode(after))["last_id"]
            start = next(i + 1 for i, item in enumerate(items) if item.legacy_resource_id == last_id)
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise _error("Invalid cursor for current pagination.", "invalidCursor") from exc
    page = items[start : start + max(first, 0)]
    edges = [{"cursor": _cursor(item), "node": item} for item in page]
    page_info = {
        "hasNextPage": start + len(page) < len(items),
        "hasPreviousPage": start > 0,
        "startCursor": edges[0]["cursor"] if edges else None,
        "endCursor": edges[-1]["cursor"] if edges else None,
    }
    return {"edges": edges, "nodes": page, "pageInfo": page_info}


def _field_resolver(source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    """camelCase field → snake_case attribute (or dict key); methods get the field's arguments;
    lists become connections when the schema says so, and honour ``first`` otherwise."""
    name = info.field_name
    value = source.get(name) if isinstance(source, dict) else getattr(source, _camel_to_snake(name), None)
    if callable(value):
        value = value(**args)
    if isinstance(value, list):
        if get_named_type(info.return_type).name.endswith("Connection"):
            return _connection(value, args.get("first"), args.get("after"))
        if args.get("first") is not None:
            return value[: args["first"]]
    return value


class _Root:
    """Query and Mutation root fields for one shop."""

    def __init__(self, shop: Shop) -> None:
        self._shop = shop

    def _require(self, field_name: str, scope: str) -> None:
        if not self._shop.has_scope(scope):
            needed = f"`{scope}` access scope."
            raise _error(
                f"Access denied for {field_name} field. Required access: {needed}",
                "ACCESS_DENIED",
                documentation="https://shopify.dev/api/usage/access-scopes",
                requiredAccess=needed,
            )

    def shop(self) -> Shop:
        return self._shop

    def current_app_installation(self) -> dict[str, Any]:
        scopes = [{"handle": s, "description": f"Access to {s}"} for s in self._shop.scopes]
        gid = _gid("AppInstallation", self._shop.legacy_resource_id + 1)
        return {"__typename": "AppInstallation", "id": gid, "accessScopes": scopes}

    def products(self, query: str | None = None, **_: Any) -> list[Product]:
        self._require("products", "read_products")
        found = self._shop.products
        for negate, key, *values in SEARCH_TERM.findall(query or ""):
            wanted = {v.strip().upper() for v in next((v for v in values if v), "").split(",")}
            if key == "status":
                found = [p for p in found if (p.status in wanted) != bool(negate)]
        return found

    def nodes(self, ids: list[str]) -> list[Any]:
        return [self.node(gid) for gid in ids]

    def node(self, id: str) -> Any:
        if not re.fullmatch(r"gid://shopify/\w+/\w+", id):
            raise _error(
                f"Invalid global id '{id}'", "argumentLiteralsIncompatible", typeName="CoercionError"
            )
        found = self._shop.by_gid.get(id)
        if isinstance(found, Product | ProductVariant):
            self._require("nodes", "read_products")
        elif isinstance(found, Order):
            self._require("nodes", "read_orders")
        return found

    def product(self, id: str) -> Product | None:
        return found if isinstance(found := self.node(id), Product) else None

    def product_variant(self, id: str) -> ProductVariant | None:
        return found if isinstance(found := self.node(id), ProductVariant) else None

    def orders(self, query: str | None = None, **_: Any) -> list[Order]:
        self._require("orders", "read_orders")
        return self._shop.find_orders(query)

    def order(self, id: str) -> Order | None:
        self._require("order", "read_orders")
        return found if isinstance(found := self.node(id), Order) else None

    def order_create(self, order: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
        self._require("orderCreate", "write_orders")
        return self._shop.create_order(order, options or {})


def _query_cost(
    selections: Any, parent: Any, data: Any, actual: bool, ctx: dict[str, Any], list_size: int | None = None
) -> int:
    """Shopify's documented cost model: scalars and enums 0, objects 1, connections 2, mutation
    fields 10; a list costs its size (``first``/``ids`` requested, the items returned actually)
    times each item's cost, so nested connections multiply (products(50) x variants(100) would be
    ~5,300, over the 1,000 single-query maximum, and is refused as Shopify refuses it)."""
    total = 0
    for sel in selections:
        if isinstance(sel, InlineFragmentNode | FragmentSpreadNode):
            fragment = sel if isinstance(sel, InlineFragmentNode) else ctx["fragments"][sel.name.value]
            condition = fragment.type_condition
            sub = SCHEMA.type_map[condition.name.value] if condition else parent
            total += _query_cost(fragment.selection_set.selections, sub, data, actual, ctx, list_size)
            continue
        if not isinstance(sel, FieldNode) or sel.name.value.startswith("__"):
            continue
        field_def = parent.fields.get(sel.name.value) if hasattr(parent, "fields") else None
        if field_def is None or sel.selection_set is None:
            continue
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            continue
        args = {a.name.value: value_from_ast_untyped(a.value, ctx["variables"]) for a in sel.arguments or ()}
        value = data.get((sel.alias or sel.name).value) if isinstance(data, dict) else None
        children = sel.selection_set.selections
        unit = 10 if parent is SCHEMA.mutation_type else 2 if named.name.endswith("Connection") else 1
        if is_list_type(get_nullable_type(field_def.type)):
            if actual:
                items = value or []
                total += sum(unit + _query_cost(children, named, item, actual, ctx) for item in items)
            else:
                size = args.get("first") or len(args.get("ids") or ()) or list_size or 1
                total += size * (unit + _query_cost(children, named, None, actual, ctx))
        elif not actual or value is not None:
            inner = args.get("first") if named.name.endswith("Connection") else None
            total += unit + _query_cost(children, named, value, actual, ctx, inner)
    return total


def run(
    shop: Shop, query: str, variables: Any, operation_name: str | None, record: dict[str, Any], throttle: bool
) -> dict[str, Any]:
    """Validate, cost and execute one GraphQL request for a shop; ``throttle`` forces THROTTLED.
    Returns the JSON answer (always HTTP 200) and sets ``record["outcome"]``."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        record["outcome"] = "invalid"
        return {"errors": [_format(exc, "parseError")]}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if record["operationName"] is None and len(operations) == 1 and operations[0].name:
        record["operationName"] = operations[0].name.value
    errors = validate(SCHEMA, document)
    if errors:
        record["outcome"] = "invalid"
        return {"errors": [_format(e) for e in errors]}
    operation = next(
        (o for o in operations if not operation_name or (o.name and o.name.value == operation_name)), None
    )
    if operation is None:
        record["outcome"] = "invalid"
        return {"errors": [_format(GraphQLError(f'No operation named "{operation_name}"'))]}
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    ctx = {"fragments": fragments, "variables": variables if isinstance(variables, dict) else {}}
    root_type = SCHEMA.mutation_type if operation.operation == OperationType.MUTATION else SCHEMA.query_type
    requested = _query_cost(operation.selection_set.selections, root_type, None, False, ctx)
    if requested > MAX_QUERY_COST:
        record["outcome"] = "max cost exceeded"
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST})."
        )
        ext = {
            "code": "MAX_COST_EXCEEDED",
            "cost": requested,
            "maxCost": MAX_QUERY_COST,
            "documentation": RATE_LIMITS_DOC,
        }
        return {"errors": [{"message": message, "extensions": ext}]}
    shop.refill()
    if throttle or shop.currently_available < requested:
        record["outcome"] = "throttled"
        error = {
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
        }
        return {"errors": [error], "extensions": _cost(shop, requested, None)}
    shop.currently_available -= requested
    result = execute_sync(
        SCHEMA, document, _Root(shop), variable_values=ctx["variables"],
        operation_name=operation_name, field_resolver=_field_resolver,
    )  # fmt: skip
    actual = _query_cost(operation.selection_set.selections, root_type, result.data, True, ctx)
    actual = min(actual, requested)
    shop.currently_available = min(shop.maximum_available, shop.currently_available + requested - actual)
    answer: dict[str, Any] = {}
    if result.errors:
        answer["errors"] = [_format(e) for e in result.errors]
    if result.data is not None or not result.errors:
        answer["data"] = result.data
    answer["extensions"] = _cost(shop, requested, actual)
    record["outcome"] = "errors" if result.errors else "ok"
    return answer


def _cost(shop: Shop, requested: int, actual: int | None) -> dict[str, Any]:
    status = {
        "maximumAvailable": shop.maximum_available,
        "currentlyAvailable": int(shop.currently_available),
        "restoreRate": shop.restore_rate,
    }
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}}


_CODES = (  # graphql-ruby's static-validation codes, as Shopify reports them
    ("got invalid value", "INVALID_VARIABLE"),
    ("has invalid value", "INVALID_VARIABLE"),
    ("was not provided", "INVALID_VARIABLE"),
    ("Cannot query field", "undefinedField"),
    ("Unknown argument", "argumentNotAccepted"),
    ("Unknown type", "undefinedType"),
    ("Variable", "variableMismatch"),
    ("Expected value of type", "argumentLiteralsIncompatible"),
    ("is required, but it was not provided", "missingRequiredArguments"),
    ("must have a selection of subfields", "selectionMismatch"),
    ("must not have a selection", "selectionMismatch"),
)


def _format(error: GraphQLError, code: str | None = None) -> dict[str, Any]:
    """Shopify's error entry: message, locations, path (when executed), extensions.code."""
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    extensions = dict(error.extensions or {})
    if "code" not in extensions:
        found = code or next((c for prefix, c in _CODES if prefix in error.message), None)
        extensions["code"] = found or "GRAPHQL_VALIDATION_FAILED"
    out["extensions"] = extensions
    return out
