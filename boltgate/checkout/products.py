"""Checkout products: the merchant's CRUD, and buying one (a payment for its price).

Functions take the caller's session and never commit, except :func:`buy`, which creates a
payment through :func:`boltgate.payment.service.create_payment` (that opens its own
transactions, see there).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.checkout.models import Product
from boltgate.checkout.schemas import ProductCreate, ProductUpdate
from boltgate.context import Context
from boltgate.db.owned import owned
from boltgate.errors import ValidationFailed
from boltgate.kit import money
from boltgate.kit.ids import new_id
from boltgate.payment import service as payment_service
from boltgate.payment.schemas import PaymentCreate
from boltgate.payment.service import PaymentView


def _priced(price: Decimal, currency: str) -> str:
    """The stored price: exact, with the currency's decimals; a BTC price must be a whole sat or more."""
    try:
        text = money.format_amount(price, currency)
    except ValueError as exc:
        places = money.minor_units(currency)
        raise ValidationFailed(
            f"price has more than {places} decimals for {currency}",
            errors={"price": [f"at most {places} decimal places for {currency}"]},
        ) from exc
    if currency == money.BTC and money.btc_to_sats(Decimal(text)) < 1:
        raise ValidationFailed("price is less than 1 sat", errors={"price": ["must be at least 1 sat"]})
    return text


async def create(session: AsyncSession, merchant_id: str, body: ProductCreate, now: datetime) -> Product:
    product = Product(
        id=new_id("prod"),
        merchant_id=merchant_id,
        name=body.name,
        description=body.description,
        price=_priced(body.price, body.currency),
        currency=body.currency,
        image_url=body.imageUrl,
        success_url=body.successUrl,
        cancel_url=body.cancelUrl,
        active=body.active,
        created_at=now,
        updated_at=now,
    )
    session.add(product)
    await session.flush()
    return product


async def get(session: AsyncSession, merchant_id: str, product_id: str) -> Product:
    return await owned(session, Product, merchant_id, product_id, what="product", code="product_not_found")


async def list_page(
    session: AsyncSession, merchant_id: str, *, active: bool | None, limit: int, offset: int
) -> tuple[list[Product], int]:
    where = [Product.merchant_id == merchant_id]
    if active is not None:
        where.append(Product.active.is_(active))
    total = (await session.execute(select(func.count()).select_from(Product).where(*where))).scalar_one()
    stmt = (
        select(Product)
        .where(*where)
        .order_by(Product.created_at.desc(), Product.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.scalars(stmt)).all()), int(total)


async def update(
    session: AsyncSession, merchant_id: str, product_id: str, body: ProductUpdate, now: datetime
) -> Product:
    product = await get(session, merchant_id, product_id)
    given = body.model_fields_set
    currency = body.currency if "currency" in given and body.currency else product.currency
    price = body.price if "price" in given and body.price is not None else Decimal(product.price)
    product.price, product.currency = _priced(price, currency), currency
    if "name" in given and body.name is not None:
        product.name = body.name
    if "active" in given and body.active is not None:
        product.active = body.active
    for field, attribute in (
        ("description", "description"),
        ("imageUrl", "image_url"),
        ("successUrl", "success_url"),
        ("cancelUrl", "cancel_url"),
    ):
        if field in given:
            setattr(product, attribute, getattr(body, field))
    product.updated_at = now
    await session.flush()
    return product


async def remove(session: AsyncSession, merchant_id: str, product_id: str) -> None:
    """Delete a product; payments made for it keep its id in their metadata."""
    await session.delete(await get(session, merchant_id, product_id))


async def find_buyable(ctx: Context, product_id: str) -> Product | None:
    """An active product by id, whoever sells it (``/buy`` links are public)."""
    if not product_id.startswith("prod_") or len(product_id) > 64:
        return None
    async with ctx.db.reading() as session:
        product = await session.get(Product, product_id)
    return product if product is not None and product.active else None


async def buy(ctx: Context, product: Product) -> PaymentView:
    """A new payment for the product's price, with its own order id (each visit is a new order)."""
    body = PaymentCreate(
        orderId=new_id("buy"),
        amount=Decimal(product.price),
        currency=product.currency,
        description=product.name,
        successUrl=product.success_url,
        cancelUrl=product.cancel_url,
        metadata={"productId": product.id, "source": "buy_link"},
    )
    backend, backend_ref = await ctx.backends.for_merchant(product.merchant_id)
    payment, _ = await payment_service.create_payment(
        ctx.db,
        backend,
        ctx.rates,
        ctx.settings,
        product.merchant_id,
        body,
        idempotency_key=None,
        clock=ctx.clock,
        backend_ref=backend_ref,
    )
    return payment
