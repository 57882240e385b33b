"""The state of the fake Shopify stores: plain objects that tests read and change directly.

A ``Shop`` holds products (with their variants) and orders; ``Shop.create_order`` is orderCreate's
logic, and ``order_payload`` / ``product_payload`` build the REST-shaped JSON that webhooks carry.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

_T = TypeVar("_T")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SEARCH_TERM = re.compile(r"""(-?)(\w+):(?:"([^"]*)"|'([^']*)'|(\S+))""")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _decimal(value: Any) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"invalid decimal {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"invalid decimal {value!r}")
    return result


def _decimal_out(value: Decimal) -> str:
    """Shopify's ``Decimal`` scalar: ``"25.0"``, ``"18.99"`` (trailing zeros dropped, one kept)."""
    text = format(Decimal(value).normalize(), "f")
    return text if "." in text else f"{text}.0"


def _gid(kind: str, legacy_id: int) -> str:
    return f"gid://shopify/{kind}/{legacy_id}"


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(eq=False)
class ProductVariant:
    product: Product = field(repr=False)
    legacy_resource_id: int
    title: str
    price: Decimal
    inventory_quantity: int
    inventory_policy: str = "DENY"  # DENY | CONTINUE
    sku: str | None = None
    position: int = 1
    compare_at_price: Decimal | None = None

    @property
    def id(self) -> str:
        return _gid("ProductVariant", self.legacy_resource_id)

    @property
    def display_name(self) -> str:
        return f"{self.product.title} - {self.title}"

    @property
    def available_for_sale(self) -> bool:
        in_stock = self.inventory_quantity > 0 or self.inventory_policy == "CONTINUE"
        return self.product.status == "ACTIVE" and in_stock


@dataclass(eq=False)
class Product:
    shop: Shop = field(repr=False)
    legacy_resource_id: int
    title: str
    handle: str
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED | DRAFT
    description: str = ""
    image_url: str | None = None
    vendor: str = ""
    product_type: str = ""
    tags: list[str] = field(default_factory=list)
    variants: list[ProductVariant] = field(default_factory=list)
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    @property
    def id(self) -> str:
        return _gid("Product", self.legacy_resource_id)

    @property
    def description_html(self) -> str:
        return f"<p>{self.description}</p>" if self.description else ""

    @property
    def total_inventory(self) -> int:
        return sum(variant.inventory_quantity for variant in self.variants)

    @property
    def featured_media(self) -> dict[str, Any] | None:
        if self.image_url is None:
            return None
        image: dict[str, Any] = {"id": _gid("ImageSource", self.legacy_resource_id), "url": self.image_url}
        image |= {"altText": self.title, "width": 1024, "height": 1024}
        return {
            "__typename": "MediaImage",
            "id": _gid("MediaImage", self.legacy_resource_id + 7),
            "alt": self.title,
            "mediaContentType": "IMAGE",
            "preview": {"image": image},
            "image": image,
        }


@dataclass(eq=False)
class Fulfillment:
    order: Order = field(repr=False)
    legacy_resource_id: int
    name: str
    tracking_info: list[dict[str, str | None]]
    status: str = "SUCCESS"
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    delivered_at: datetime | None = None

    @property
    def id(self) -> str:
        return _gid("Fulfillment", self.legacy_resource_id)


@dataclass(eq=False)
class Order:
    """An order as orderCreate stored it: everything sent is kept (``input``, ``options``)."""

    shop: Shop = field(repr=False)
    legacy_resource_id: int
    number: int
    currency_code: str
    total: Decimal
    display_financial_status: str | None
    input: dict[str, Any]
    options: dict[str, Any]
    line_items: list[dict[str, Any]]
    display_fulfillment_status: str = "UNFULFILLED"
    fulfillments: list[Fulfillment] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    created_at: datetime = field(default_factory=_now)
    cancelled_at: datetime | None = None

    @property
    def id(self) -> str:
        return _gid("Order", self.legacy_resource_id)

    @property
    def name(self) -> str:
        return f"#{self.number}"

    def __getattr__(self, name: str) -> Any:  # email, note, tags, test, source_identifier, ...
        if name.startswith("_") or name == "input":
            raise AttributeError(name)
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        default: Any = [] if camel in ("tags", "transactions", "shippingLines") else None
        value = self.input.get(camel, default)
        return (value or False) if camel == "test" else value

    @property
    def closed(self) -> bool:
        return False

    @property
    def status_page_url(self) -> str:
        return f"https://{self.shop.domain}/{self.shop.legacy_resource_id}/orders/{self.token}/authenticate?key={self.token[:8]}"

    @property
    def total_price_set(self) -> dict[str, Any]:
        money = {"amount": self.total, "currencyCode": self.currency_code}
        return {"shopMoney": money, "presentmentMoney": money}


@dataclass(eq=False)
class Shop:
    ids: Callable[[str], int] = field(repr=False)
    domain: str
    name: str
    currency: str = "USD"
    client_id: str | None = None
    client_secret: str = "shpss_test_secret"
    scopes: tuple[str, ...] = ("read_products", "write_orders")
    email: str = "owner@example.com"
    tokens: set[str] = field(default_factory=set)
    legacy_resource_id: int = 0
    products: list[Product] = field(default_factory=list, repr=False)
    orders: list[Order] = field(default_factory=list, repr=False)
    by_gid: dict[str, Any] = field(default_factory=dict, repr=False)
    next_order_number: int = 1001
    maximum_available: float = 2000.0
    restore_rate: float = 100.0
    currently_available: float = 2000.0
    _bucket_at: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return _gid("Shop", self.legacy_resource_id)

    @property
    def myshopify_domain(self) -> str:
        return self.domain

    @property
    def currency_code(self) -> str:
        return self.currency

    @property
    def url(self) -> str:
        return f"https://{self.domain}"

    def has_scope(self, scope: str) -> bool:  # a write scope implies its read scope
        return scope in self.scopes or scope.replace("read_", "write_", 1) in self.scopes

    def add_product(
        self,
        title: str,
        variants: list[dict[str, Any]] | None = None,
        *,
        status: str = "ACTIVE",
        description: str = "",
        image_url: str | None = None,
        vendor: str = "",
        tags: list[str] | None = None,
    ) -> Product:
        """Variants are dicts: ``title, price, inventory, policy (DENY|CONTINUE), sku``."""
        handle = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"
        taken = {product.handle for product in self.products}
        handle = next(
            h for n in itertools.count() if (h := handle if n == 0 else f"{handle}-{n}") not in taken
        )
        product = Product(
            self, self.ids("Product"), title, handle, status.upper(), description, image_url, vendor
        )
        product.tags = list(tags or [])
        for position, spec in enumerate(variants or [{"title": "Default Title", "price": "10.00"}], 1):
            variant = ProductVariant(
                product,
                self.ids("ProductVariant"),
                spec.get("title", "Default Title"),
                _decimal(spec.get("price", "10.00")),
                int(spec.get("inventory", 0)),
                spec.get("policy", "DENY").upper(),
                spec.get("sku"),
                position,
                _decimal(spec["compare_at_price"]) if spec.get("compare_at_price") else None,
            )
            product.variants.append(variant)
            self.by_gid[variant.id] = variant
        self.products.append(product)
        self.by_gid[product.id] = product
        return product

    def variant(self, gid: str) -> ProductVariant:
        return self._get(gid, ProductVariant)

    def product(self, gid: str) -> Product:
        return self._get(gid, Product)

    def order(self, gid: str) -> Order:
        return self._get(gid, Order)

    def _get(self, gid: str, kind: type[_T]) -> _T:
        found = self.by_gid.get(gid)
        if not isinstance(found, kind):
            raise KeyError(f"no {kind.__name__} {gid} in {self.domain}")
        return found

    def set_price(self, variant_gid: str, price: str | Decimal) -> None:
        self.variant(variant_gid).price = _decimal(price)
        self.variant(variant_gid).product.updated_at = _now()

    def set_inventory(self, variant_gid: str, quantity: int, policy: str | None = None) -> None:
        variant = self.variant(variant_gid)
        variant.inventory_quantity = quantity
        if policy is not None:
            variant.inventory_policy = policy.upper()

    def set_policy(self, variant_gid: str, policy: str) -> None:
        self.variant(variant_gid).inventory_policy = policy.upper()

    def archive(self, product_gid: str) -> None:
        self.product(product_gid).status = "ARCHIVED"

    def find_orders(self, query: str | None) -> list[Order]:
        """Orders newest first, filtered by ``tag:``, ``source_identifier:`` and ``name:`` terms (exact,
        tags case-insensitive, ``-`` negates); other search fields are ignored, as Shopify does."""
        found = list(reversed(self.orders))
        for negate, key, *values in SEARCH_TERM.findall(query or ""):
            value = next((v for v in values if v), "")
            if key in ("tag", "source_identifier", "name"):
                found = [o for o in found if _order_matches(o, key, value) != bool(negate)]
        return found

    def fulfil(
        self,
        order_gid: str,
        company: str | None,
        number: str | None,
        url: str | None = None,
        *,
        delivered: bool = False,
    ) -> Fulfillment:
        order = self.order(order_gid)
        info = [{"company": company, "number": number, "url": url}] if (company or number or url) else []
        fulfillment = Fulfillment(
            order, self.ids("Fulfillment"), f"{order.name}.{len(order.fulfillments) + 1}", info
        )
        fulfillment.delivered_at = _now() if delivered else None
        order.fulfillments.append(fulfillment)
        order.display_fulfillment_status = "FULFILLED"
        self.by_gid[fulfillment.id] = fulfillment
        return fulfillment

    def cancel(self, order_gid: str) -> Order:
        order = self.order(order_gid)
        order.cancelled_at = _now()
        return order

    # -- orderCreate

    def create_order(self, data: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """orderCreate: returns the payload ``{order, userErrors}``. Line items are priced by their
        ``priceSet`` or else the variant's price; ``inventoryBehaviour`` (default BYPASS) decides
        whether stock is claimed, and DECREMENT_OBEYING_POLICY refuses a DENY variant short of it."""
        errors: list[dict[str, Any]] = []

        def fail(path: list[str | int], message: str, code: str = "INVALID") -> None:
            errors.append({"field": ["order", *map(str, path)], "message": message, "code": code})

        if data.get("email") is not None and not EMAIL.match(data["email"]):
            fail(["email"], "Email is invalid")
        if not data.get("lineItems"):
            fail(["lineItems"], "Line items must have at least one line item")
        lines: list[dict[str, Any]] = []
        wanted: dict[ProductVariant, int] = {}
        for i, item in enumerate(data.get("lineItems") or []):
            variant = self.by_gid.get(item.get("variantId") or "")
            if item.get("variantId") is not None and not isinstance(variant, ProductVariant):
                fail(["lineItems", i, "variantId"], "Variant does not exist")
                variant = None
            elif variant is None and not (item.get("title") and item.get("priceSet")):
                fail(["lineItems", i, "title"], "Title and price are required for a custom line item")
            if item["quantity"] < 1:
                fail(["lineItems", i, "quantity"], "Quantity must be greater than or equal to 1")
            price = item["priceSet"]["shopMoney"]["amount"] if item.get("priceSet") else None
            price = _decimal(price if price is not None else getattr(variant, "price", 0))
            lines.append({**item, "variant": variant, "price": price})
            if variant is not None:
                wanted[variant] = wanted.get(variant, 0) + item["quantity"]
        behaviour = options.get("inventoryBehaviour") or "BYPASS"
        for i, line in enumerate(lines):
            variant = line["variant"]
            short = variant is not None and wanted[variant] > variant.inventory_quantity
            if behaviour == "DECREMENT_OBEYING_POLICY" and short and variant.inventory_policy == "DENY":
                message = f"Unable to reserve inventory for {variant.display_name}"
                fail(["lineItems", i], message, "INVENTORY_CLAIM_FAILED")
        if errors:
            return {"order": None, "userErrors": errors}
        if behaviour != "BYPASS":
            for variant, quantity in wanted.items():
                variant.inventory_quantity -= quantity
        shipping = [_decimal(s["priceSet"]["shopMoney"]["amount"]) for s in data.get("shippingLines") or []]
        total = sum((line["price"] * line["quantity"] for line in lines), Decimal(0)) + sum(shipping)
        status = data.get("financialStatus")
        if status is None:  # derived from the successful sales, as Shopify does when it is not given
            sales = data.get("transactions") or []
            paid = sum(
                t["amountSet"]["shopMoney"]["amount"]
                for t in sales
                if t.get("kind") in ("SALE", "CAPTURE") and t.get("status") == "SUCCESS"
            )
            status = "PAID" if total > 0 and paid >= total else "PENDING"
        for line in lines:
            line["id"] = self.ids("LineItem")
        currency = data.get("currency") or self.currency
        order = Order(
            self, self.ids("Order"), self.next_order_number, currency, total, status, data, options, lines
        )
        self.next_order_number += 1
        self.orders.append(order)
        self.by_gid[order.id] = order
        return {"order": order, "userErrors": []}

    def refill(self) -> None:
        now = time.monotonic()
        restored = (now - self._bucket_at) * self.restore_rate
        self.currently_available = min(self.maximum_available, self.currently_available + restored)
        self._bucket_at = now


def _order_matches(order: Order, key: str, value: str) -> bool:
    if key == "tag":
        return value.lower() in (tag.lower() for tag in order.tags)
    if key == "name":
        return order.name.lstrip("#") == value.lstrip("#")
    return bool(order.source_identifier == value)


def order_payload(order: Order) -> dict[str, Any]:
    """The REST Order resource, as ``orders/*`` webhooks carry it (snake_case)."""
    address = order.shipping_address
    fulfilled = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}
    return {
        "id": order.legacy_resource_id,
        "admin_graphql_api_id": order.id,
        "name": order.name,
        "order_number": order.number,
        "email": order.email,
        "created_at": _iso(order.created_at),
        "updated_at": _iso(_now()),
        "cancelled_at": _iso(order.cancelled_at),
        "cancel_reason": "other" if order.cancelled_at else None,
        "currency": order.currency_code,
        "total_price": f"{order.total:.2f}",
        "financial_status": (order.display_financial_status or "pending").lower(),
        "fulfillment_status": fulfilled.get(order.display_fulfillment_status),
        "tags": ", ".join(order.tags),
        "note": order.note,
        "source_identifier": order.source_identifier,
        "source_name": order.source_name or "web",
        "test": order.test,
        "order_status_url": order.status_page_url,
        "shipping_address": {_camel_to_snake(k): v for k, v in address.items()} if address else None,
        "line_items": [
            {
                "id": line["id"],
                "admin_graphql_api_id": _gid("LineItem", line["id"]),
                "variant_id": line["variant"].legacy_resource_id if line["variant"] else None,
                "product_id": line["variant"].product.legacy_resource_id if line["variant"] else None,
                "title": line["variant"].product.title if line["variant"] else line.get("title"),
                "quantity": line["quantity"],
                "price": f"{line['price']:.2f}",
                "sku": line["variant"].sku if line["variant"] else line.get("sku"),
            }
            for line in order.line_items
        ],
        "fulfillments": [_fulfillment_payload(f) for f in order.fulfillments],
    }


def _fulfillment_payload(fulfillment: Fulfillment) -> dict[str, Any]:
    info = fulfillment.tracking_info
    numbers = [i["number"] for i in info if i["number"]]
    urls = [i["url"] for i in info if i["url"]]
    return {
        "id": fulfillment.legacy_resource_id,
        "admin_graphql_api_id": fulfillment.id,
        "order_id": fulfillment.order.legacy_resource_id,
        "name": fulfillment.name,
        "status": fulfillment.status.lower(),
        "service": "manual",
        "shipment_status": "delivered" if fulfillment.delivered_at else None,
        "created_at": _iso(fulfillment.created_at),
        "updated_at": _iso(fulfillment.updated_at),
        "tracking_company": info[0]["company"] if info else None,
        "tracking_number": numbers[0] if numbers else None,
        "tracking_numbers": numbers,
        "tracking_url": urls[0] if urls else None,
        "tracking_urls": urls,
    }


def product_payload(product: Product) -> dict[str, Any]:
    """The REST Product resource, as ``products/*`` webhooks carry it (snake_case)."""
    image = {"id": product.legacy_resource_id + 3, "src": product.image_url} if product.image_url else None
    return {
        "id": product.legacy_resource_id,
        "admin_graphql_api_id": product.id,
        "title": product.title,
        "body_html": product.description_html,
        "handle": product.handle,
        "vendor": product.vendor,
        "product_type": product.product_type,
        "status": product.status.lower(),
        "tags": ", ".join(product.tags),
        "created_at": _iso(product.created_at),
        "updated_at": _iso(product.updated_at),
        "variants": [
            {
                "id": v.legacy_resource_id,
                "admin_graphql_api_id": v.id,
                "product_id": product.legacy_resource_id,
                "title": v.title,
                "price": f"{v.price:.2f}",
                "compare_at_price": None if v.compare_at_price is None else f"{v.compare_at_price:.2f}",
                "sku": v.sku,
                "position": v.position,
                "inventory_policy": v.inventory_policy.lower(),
                "inventory_quantity": v.inventory_quantity,
            }
            for v in product.variants
        ],
        "image": image,
        "images": [image] if image else [],
    }
