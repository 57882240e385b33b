"""Request shapes of the Shopify channel (camelCase, as the Lightning Enable API has them).

Public routes (catalog, checkout, claim, order status) follow the spec's limits: 1-10 items of
quantity 1-10 (at most 10 units in all), claim tokens of 1-20 characters. A shipping address is
validated here, before anything is sent to Shopify.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from babel import Locale
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,62}[a-z0-9])$")
_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}\.myshopify\.com$")
# Countries and territories a parcel can go to: CLDR's two-letter regions (Babel's data, kept
# current with CLDR) without its groupings and private-use codes, plus AN, which Shopify's
# CountryCode enum still lists. Shopify folds some territories into a country (American Samoa is
# a part of US for it): an order to such a code is refused by Shopify and stays claimable.
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})
COUNTRIES = frozenset(
    code for code in Locale("en").territories if isinstance(code, str) and len(code) == 2 and code.isalpha()
) - _NOT_COUNTRIES | {"AN"}


def _is_country(code: str) -> bool:
    return code in COUNTRIES


_VARIANT_GID = re.compile(r"^gid://shopify/ProductVariant/([0-9]{1,20})$")
MAX_USD = Decimal("100000")
RESERVED_SLUGS = frozenset({"stores", "webhooks", "catalog", "checkout", "claim", "orders"})


def _text(value: str, limit: int) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value:
        raise ValueError("must not be empty")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


def usd(value: object) -> Decimal:
    """A USD amount given as a JSON number or a decimal string, to the cent, 0 ≤ amount ≤ 100,000."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be a USD amount such as 5.99")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError("must be a USD amount such as 5.99") from exc
    if not amount.is_finite() or amount < 0 or amount > MAX_USD:
        raise ValueError(f"must be between 0 and {MAX_USD}")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must have at most 2 decimals")
    return amount.quantize(Decimal("0.01"))


def variant_number(value: object) -> int:
    """A variant id as Shopify's numeric id (number or digits) or its GID."""
    if isinstance(value, bool):
        raise ValueError("must be a variant id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = _VARIANT_GID.match(value.strip())
        text = match.group(1) if match else value.strip()
        if not text.isdigit() or len(text) > 20:
            raise ValueError("must be a variant id (a number or gid://shopify/ProductVariant/…)")
        number = int(text)
    else:
        raise ValueError("must be a variant id")
    if number <= 0 or number >= 2**63:
        raise ValueError("must be a variant id")
    return number


class ShippingGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    countries: list[str] = Field(min_length=1, max_length=250)  # ISO 3166-1 alpha-2, or "*" for the rest
    rateUsd: Annotated[Decimal, Field(description="flat shipping per order, USD")]
    freeOverUsd: Decimal | None = Field(None, description="orders whose items reach this ship free")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _text(value, 64)

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        found = [c.strip().upper() for c in value]
        for code in found:
            if code != "*" and not _is_country(code):
                raise ValueError(f"{code[:10]!r} is not an ISO 3166-1 alpha-2 country code (or *)")
        if len(set(found)) != len(found):
            raise ValueError("a country is listed twice")
        return found

    @field_validator("rateUsd", "freeOverUsd", mode="before")
    @classmethod
    def _usd(cls, value: object) -> Decimal | None:
        return None if value is None else usd(value)


class Shipping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[ShippingGroup] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _distinct(self) -> Shipping:
        seen: set[str] = set()
        names: set[str] = set()
        for group in self.groups:
            if group.name.lower() in names:
                raise ValueError(f"two shipping groups are named {group.name!r}")
            names.add(group.name.lower())
            for code in group.countries:
                if code in seen:
                    raise ValueError(f"country {code} is in two shipping groups")
                seen.add(code)
        return self

    def stored(self) -> dict[str, Any]:
        return {
            "groups": [
                {
                    "name": g.name,
                    "countries": g.countries,
                    "rateUsd": str(g.rateUsd),
                    "freeOverUsd": None if g.freeOverUsd is None else str(g.freeOverUsd),
                }
                for g in self.groups
            ]
        }


DEFAULT_SHIPPING = {
    "groups": [{"name": "domestic", "countries": ["US"], "rateUsd": "0.00", "freeOverUsd": None}]
}


class _StoreFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storeName: str | None = Field(None, max_length=200)
    accessToken: str | None = Field(None, min_length=8, max_length=255)
    clientId: str | None = Field(None, min_length=1, max_length=255)
    clientSecret: str | None = Field(None, min_length=8, max_length=255)
    webhookSecret: str | None = Field(None, min_length=8, max_length=255)
    shipping: Shipping | None = None
    active: bool | None = None

    @field_validator("storeName")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, 200)

    @field_validator("accessToken", "clientId", "clientSecret", "webhookSecret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and (value != value.strip() or _CONTROL.search(value) or " " in value):
            raise ValueError("must not contain spaces or control characters")
        return value


class StoreCreate(_StoreFields):
    slug: str = Field(min_length=3, max_length=64, description="public name in the store's URLs")
    shopDomain: str = Field(max_length=255, description="the store's <name>.myshopify.com domain")

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be 3-64 lower-case letters, digits and inner hyphens")
        if value in RESERVED_SLUGS:
            raise ValueError(f"{value!r} is reserved")
        return value

    @field_validator("shopDomain")
    @classmethod
    def _shop(cls, value: str) -> str:
        value = value.strip().lower().removeprefix("https://").rstrip("/")
        if not _SHOP.match(value):
            raise ValueError("must be the store's <name>.myshopify.com domain")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> StoreCreate:
        if not self.accessToken and not (self.clientId and self.clientSecret):
            raise ValueError("give accessToken, or clientId and clientSecret")
        return self


class StoreUpdate(_StoreFields):
    @model_validator(mode="after")
    def _pair(self) -> StoreUpdate:
        if (self.clientId is None) != (self.clientSecret is None):
            raise ValueError("clientId and clientSecret change together")
        return self


class CheckoutItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variantId: int
    quantity: int = Field(ge=1, le=10)

    @field_validator("variantId", mode="before")
    @classmethod
    def _variant(cls, value: object) -> int:
        return variant_number(value)

    @field_validator("quantity", mode="before")
    @classmethod
    def _whole(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number from 1 to 10")
        return value


class CheckoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[CheckoutItem] = Field(min_length=1, max_length=10)
    shippingCountry: str | None = Field(
        None, description="ISO 3166-1 alpha-2 country the order ships to (or the X-Buyer-Location header)"
    )

    @field_validator("shippingCountry")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().upper()
        if not _is_country(value):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code")
        return value

    @model_validator(mode="after")
    def _totals(self) -> CheckoutCreate:
        ids = [item.variantId for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("a variant is listed twice: give it once with its quantity")
        if sum(item.quantity for item in self.items) > 10:
            raise ValueError("at most 10 units per checkout in all")
        return self


class ShippingAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    firstName: str | None = Field(None, max_length=100)
    lastName: str = Field(max_length=100)
    company: str | None = Field(None, max_length=200)
    address1: str = Field(max_length=200)
    address2: str | None = Field(None, max_length=200)
    city: str = Field(max_length=100)
    province: str | None = Field(None, max_length=100)
    provinceCode: str | None = Field(None, max_length=10)
    zip: str | None = Field(None, max_length=20)
    countryCode: str
    phone: str | None = Field(None, max_length=30)

    @field_validator("firstName", "lastName", "company", "address1", "address2", "city", "province")
    @classmethod
    def _line(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, 200)

    @field_validator("provinceCode", "zip")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _text(value, 20)
        if not re.fullmatch(r"[A-Za-z0-9 -]{1,20}", value):
            raise ValueError("must be letters, digits, spaces and hyphens")
        return value

    @field_validator("countryCode")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.strip().upper()
        if not _is_country(value):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"\+?[0-9 ()./-]{4,30}", value.strip()):
            raise ValueError("must be a phone number")
        return value.strip()


class ClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claimToken: str = Field(min_length=1, max_length=20)
    email: str = Field(max_length=254)
    shippingAddress: ShippingAddress

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value) or _CONTROL.search(value):
            raise ValueError("must be an email address")
        return value
