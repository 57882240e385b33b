"""Paid content: items a merchant sells per view, the public catalogue, and bundles.

``GET /api/l402/content/{slug}`` answers 402 until paid, then the item (its text, or its file).
``GET /api/l402/content/bundle?slugs=a,b`` sells several items of one merchant for the sum of
their prices with one invoice; the token's ``resources`` caveat names each item, so the same
token also opens ``/api/l402/content/a`` and ``/api/l402/content/b``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.db.owned import owned
from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import new_id
from boltgate.l402 import guard
from boltgate.l402.guard import PAID_RESPONSES
from boltgate.l402.models import ContentItem
from boltgate.l402.schemas import MAX_PRICE_SATS, ContentCreate, ContentUpdate
from boltgate.l402.service import Offer
from boltgate.web import Ctx, Merchant, json_body, json_response, problems, read_json

router = APIRouter(tags=["l402 content"])
MAX_BUNDLE = 20


def resource_of(slug: str) -> str:
    return f"content:{slug}"


def item_out(item: ContentItem, base_url: str, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "slug": item.slug,
        "title": item.title,
        "teaser": item.teaser,
        "priceSats": item.price_sats,
        "contentType": item.content_type,
        "kind": "file" if item.file_data is not None else "text",
        "fileName": item.file_name,
        "active": item.active,
        "url": f"{base_url}/api/l402/content/{item.slug}",
        "createdAt": rfc3339(item.created_at),
        "updatedAt": rfc3339(item.updated_at),
    }
    if full:
        out["body"] = item.body
    return out


async def _own(session: AsyncSession, merchant_id: str, item_id: str) -> ContentItem:
    return await owned(
        session, ContentItem, merchant_id, item_id, what="content item", code="content_not_found"
    )


# --- the merchant's items ---------------------------------------------------------------------


@router.post(
    "/api/l402/items",
    status_code=201,
    responses=problems(400, 401, 409, 429),
    openapi_extra=json_body(ContentCreate),
    summary="Add a paid content item (text or a base64 file)",
)
async def create_item(request: Request, ctx: Ctx, merchant: Merchant) -> Response:
    body = await read_json(request, ContentCreate, ctx.settings.max_body_bytes * 32)
    if (body.body is None) == (body.fileBase64 is None):
        raise ValidationFailed(
            "give exactly one of body or fileBase64", errors={"body": ["body or fileBase64"]}
        )
    data = None
    if body.fileBase64 is not None:
        try:
            data = base64.b64decode(body.fileBase64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed("fileBase64 is not base64", errors={"fileBase64": ["not base64"]}) from exc
    now = ctx.clock()
    item = ContentItem(
        id=new_id("cnt"),
        merchant_id=merchant.merchant_id,
        slug=body.slug,
        title=body.title,
        teaser=body.teaser,
        body=body.body,
        file_data=data,
        file_name=body.fileName,
        content_type=body.contentType,
        price_sats=body.priceSats,
        active=body.active,
        created_at=now,
        updated_at=now,
    )
    try:
        async with ctx.db.writing() as session:
            session.add(item)
    except IntegrityError as exc:
        raise Conflict(f"the slug {body.slug!r} is taken", code="slug_taken") from exc
    return json_response(item_out(item, ctx.settings.base_url, full=True), 201)


@router.get("/api/l402/items", responses=problems(401, 429), summary="Your paid content items")
async def list_items(ctx: Ctx, merchant: Merchant) -> Response:
    async with ctx.db.reading() as session:
        items = (
            await session.scalars(
                select(ContentItem)
                .where(ContentItem.merchant_id == merchant.merchant_id)
                .order_by(ContentItem.created_at.desc())
            )
        ).all()
    return json_response({"items": [item_out(i, ctx.settings.base_url) for i in items], "total": len(items)})


@router.get("/api/l402/items/{item_id}", responses=problems(401, 404, 429), summary="One of your items")
async def get_item(ctx: Ctx, merchant: Merchant, item_id: str) -> Response:
    async with ctx.db.reading() as session:
        item = await _own(session, merchant.merchant_id, item_id)
    return json_response(item_out(item, ctx.settings.base_url, full=True))


@router.put(
    "/api/l402/items/{item_id}",
    responses=problems(400, 401, 404, 429),
    openapi_extra=json_body(ContentUpdate),
    summary="Change an item (the fields given)",
)
async def update_item(request: Request, ctx: Ctx, merchant: Merchant, item_id: str) -> Response:
    body = await read_json(request, ContentUpdate, ctx.settings.max_body_bytes * 32)
    given = body.model_fields_set
    for name in ("title", "priceSats", "active"):
        if name in given and getattr(body, name) is None:
            raise ValidationFailed(f"{name} cannot be null", errors={name: ["cannot be null"]})
    async with ctx.db.writing() as session:
        item = await _own(session, merchant.merchant_id, item_id)
        if "body" in given and item.file_data is not None:
            raise ValidationFailed("this item is a file", errors={"body": ["the item is a file"]})
        for field, attribute in (
            ("title", "title"),
            ("teaser", "teaser"),
            ("body", "body"),
            ("priceSats", "price_sats"),
            ("active", "active"),
        ):
            if field in given:
                setattr(item, attribute, getattr(body, field))
        item.updated_at = ctx.clock()
    return json_response(item_out(item, ctx.settings.base_url, full=True))


@router.delete("/api/l402/items/{item_id}", status_code=204, responses=problems(401, 404, 429))
async def delete_item(ctx: Ctx, merchant: Merchant, item_id: str) -> Response:
    async with ctx.db.writing() as session:
        await session.delete(await _own(session, merchant.merchant_id, item_id))
    return Response(status_code=204)


# --- public: catalogue, items, bundles --------------------------------------------------------


@router.get(
    "/api/l402/content",
    dependencies=guard.PUBLIC,
    responses=problems(400, 429),
    summary="The catalogue of paid content (free)",
)
async def catalogue(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    where = [ContentItem.active.is_(True)]
    async with ctx.db.reading() as session:
        total = (
            await session.execute(select(func.count()).select_from(ContentItem).where(*where))
        ).scalar_one()
        items = (
            await session.scalars(
                select(ContentItem)
                .where(*where)
                .order_by(ContentItem.created_at.desc())
                .limit(limit)
                .offset(offset)
            )
        ).all()
    base = ctx.settings.base_url
    public = [{k: v for k, v in item_out(i, base).items() if k not in ("active", "id")} for i in items]
    return json_response({"items": public, "total": int(total), "limit": limit, "offset": offset})


async def _active(ctx: Ctx, slugs: list[str]) -> list[ContentItem]:
    async with ctx.db.reading() as session:
        found = (
            await session.scalars(
                select(ContentItem).where(ContentItem.slug.in_(slugs), ContentItem.active.is_(True))
            )
        ).all()
    by_slug = {item.slug: item for item in found}
    missing = [slug for slug in slugs if slug not in by_slug]
    if missing:
        raise NotFound(f"no such content: {', '.join(missing)[:200]}", code="content_not_found")
    return [by_slug[slug] for slug in slugs]


def _deliver(item: ContentItem) -> Response:
    if item.file_data is not None:
        name = (item.file_name or item.slug).replace('"', "")
        return Response(
            item.file_data,
            media_type=item.content_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(item.body or "", media_type=item.content_type)


@router.get(
    "/api/l402/content/bundle",
    dependencies=guard.PUBLIC,
    responses={**PAID_RESPONSES, **problems(400, 404)},
    summary="Several items of one merchant with one payment",
)
async def bundle(
    request: Request, ctx: Ctx, slugs: Annotated[str, Query(min_length=1, max_length=2100)]
) -> Response:
    wanted = list(dict.fromkeys(s.strip() for s in slugs.split(",") if s.strip()))
    if not wanted or len(wanted) > MAX_BUNDLE:
        raise ValidationFailed(
            f"name 1 to {MAX_BUNDLE} slugs", errors={"slugs": [f"1 to {MAX_BUNDLE} comma-separated slugs"]}
        )
    items = await _active(ctx, wanted)
    merchants = {item.merchant_id for item in items}
    if len(merchants) != 1:
        raise ValidationFailed("a bundle's items must come from one seller", errors={"slugs": ["one seller"]})
    total = sum(item.price_sats for item in items)
    if total > MAX_PRICE_SATS:
        raise ValidationFailed("the bundle is too expensive", errors={"slugs": ["price too high"]})
    name = "bundle:" + "+".join(wanted)
    offer = Offer(  # the token opens the bundle route itself and each of its items
        resource=name,
        amount_sats=total,
        merchant_id=merchants.pop(),
        description=f"{len(items)} items",
        resources=(name, *(resource_of(slug) for slug in wanted)),
    )
    payment = await guard.require(ctx, request, offer)
    base = ctx.settings.base_url
    return json_response(
        {
            "items": [
                {**item_out(i, base, full=True), "body": i.body if i.file_data is None else None}
                for i in items
            ],
            "totalSats": total,
            "paymentHash": payment.payment_hash,
        }
    )


@router.get(
    "/api/l402/content/{slug}",
    dependencies=guard.PUBLIC,
    responses={**PAID_RESPONSES, **problems(404)},
    summary="A paid item: 402 until paid, then its text or file",
)
async def content(request: Request, ctx: Ctx, slug: str) -> Response:
    (item,) = await _active(ctx, [slug]) if len(slug) <= 100 else await _active(ctx, ["-"])
    offer = Offer(
        resource=resource_of(item.slug),
        amount_sats=item.price_sats,
        merchant_id=item.merchant_id,
        description=item.title,
    )
    await guard.require(ctx, request, offer)
    return _deliver(item)
