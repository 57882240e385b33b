"""Checkout products API: the merchant's products, sold through public ``/buy/{productId}`` links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from boltgate.checkout import products
from boltgate.checkout.schemas import ProductCreate, ProductList, ProductOut, ProductUpdate, product_out
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(prefix="/api/checkout/products", tags=["checkout"])


@router.post(
    "",
    status_code=201,
    response_model=ProductOut,
    responses=problems(400, 401, 429),
    openapi_extra=json_body(ProductCreate),
    summary="Create a product (its buyUrl is a public link that opens a checkout)",
)
async def create_product(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, ProductCreate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        product = await products.create(session, merchant.merchant_id, body, ctx.clock())
    headers = {"Location": f"/api/checkout/products/{product.id}"}
    return json_response(product_out(product, ctx.settings.base_url), 201, headers)


@router.get(
    "",
    response_model=ProductList,
    responses=problems(400, 401, 429),
    summary="List your products, newest first",
)
async def list_products(
    ctx: Ctx,
    merchant: Merchant,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    async with ctx.db.reading() as session:
        items, total = await products.list_page(
            session, merchant.merchant_id, active=active, limit=limit, offset=offset
        )
    base = ctx.settings.base_url
    return json_response(
        {"items": [product_out(p, base) for p in items], "total": total, "limit": limit, "offset": offset}
    )


@router.get(
    "/{product_id}",
    response_model=ProductOut,
    responses=problems(401, 404, 429),
    summary="Get a product",
)
async def get_product(ctx: Ctx, merchant: Merchant, product_id: str) -> Response:
    async with ctx.db.reading() as session:
        product = await products.get(session, merchant.merchant_id, product_id)
    return json_response(product_out(product, ctx.settings.base_url))


@router.put(
    "/{product_id}",
    response_model=ProductOut,
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(ProductUpdate),
    summary="Change a product (the fields given); deactivate it to stop sales",
)
async def update_product(request: Request, ctx: Ctx, merchant: Merchant, product_id: str) -> Response:
    body = await read_json(request, ProductUpdate, ctx.settings.max_body_bytes)
    async with ctx.db.writing() as session:
        product = await products.update(session, merchant.merchant_id, product_id, body, ctx.clock())
    return json_response(product_out(product, ctx.settings.base_url))


@router.delete(
    "/{product_id}",
    status_code=204,
    responses=problems(401, 404, 429),
    summary="Delete a product (payments made for it are kept)",
)
async def delete_product(ctx: Ctx, merchant: Merchant, product_id: str) -> Response:
    async with ctx.db.writing() as session:
        await products.remove(session, merchant.merchant_id, product_id)
    return Response(status_code=204)
