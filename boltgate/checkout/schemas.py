"""Shapes of the checkout products API (camelCase, like the rest of the API)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from boltgate.checkout.models import Product
from boltgate.kit import money
from boltgate.kit.clock import rfc3339
from boltgate.payment.schemas import (
    currency_code,
    decimal_text,
    http_url,
    multiline,
    positive_amount,
    printable,
)


def https_url(value: str | None) -> str | None:
    """An image shown on a page: https only (the page's Content-Security-Policy allows no other)."""
    if value is None:
        return None
    checked = http_url(value)
    if checked is None or urlsplit(checked).scheme != "https":
        raise ValueError("must be an absolute https URL")
    return checked


def _exact_price(price: Decimal | None, currency: str | None) -> None:
    if price is not None and currency is not None:
        try:
            money.quantize(price, currency)
        except ValueError as exc:
            places = money.minor_units(currency)
            raise ValueError(f"price has more than {places} decimals for {currency}") from exc


class _ProductFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    price: Decimal | None = Field(None, description="price in `currency`, > 0, at most its decimals")
    currency: str | None = Field(None, min_length=3, max_length=4, description="USD, EUR, … or BTC")
    imageUrl: str | None = Field(None, max_length=2048, description="https URL of a picture")
    successUrl: str | None = Field(None, max_length=2048, description="where a paid buyer is sent")
    cancelUrl: str | None = Field(None, max_length=2048, description="where a buyer who gives up goes")
    active: StrictBool | None = Field(None, description="only active products can be bought")

    _price_text = field_validator("price", mode="before")(decimal_text)

    @field_validator("price")
    @classmethod
    def _price(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else positive_amount(value)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return None if value is None else currency_code(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return printable(value, 200)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return multiline(value)

    @field_validator("imageUrl")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return https_url(value)

    @field_validator("successUrl", "cancelUrl")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return http_url(value)


class ProductCreate(_ProductFields):
    """Body of ``POST /api/checkout/products``."""

    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(description="price in `currency`, > 0, at most its decimals")
    currency: str = Field(min_length=3, max_length=4, description="USD, EUR, … or BTC")
    active: StrictBool = True

    @model_validator(mode="after")
    def _exact(self) -> ProductCreate:
        _exact_price(self.price, self.currency)
        return self


class ProductUpdate(_ProductFields):
    """Body of ``PUT /api/checkout/products/{productId}``: the fields given change, the rest stay."""

    @model_validator(mode="after")
    def _not_null(self) -> ProductUpdate:
        for name in ("name", "price", "currency", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ProductOut(BaseModel):
    productId: str
    name: str
    description: str | None
    price: float = Field(description="decimal price in `currency` (exact decimal digits)")
    currency: str
    imageUrl: str | None
    successUrl: str | None
    cancelUrl: str | None
    active: bool
    buyUrl: str = Field(description="public link: creates a payment and opens its checkout")
    createdAt: datetime
    updatedAt: datetime


class ProductList(BaseModel):
    items: list[ProductOut]
    total: int
    limit: int
    offset: int


def product_out(product: Product, base_url: str) -> dict[str, Any]:
    return {
        "productId": product.id,
        "name": product.name,
        "description": product.description,
        "price": orjson.Fragment(product.price),
        "currency": product.currency,
        "imageUrl": product.image_url,
        "successUrl": product.success_url,
        "cancelUrl": product.cancel_url,
        "active": product.active,
        "buyUrl": f"{base_url}/buy/{product.id}",
        "createdAt": rfc3339(product.created_at),
        "updatedAt": rfc3339(product.updated_at),
    }
