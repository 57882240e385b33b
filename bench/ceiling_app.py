"""The framework ceiling for ``bench/payments.py``: boltgate's two payment routes doing no work.

``POST /api/payments`` parses a small JSON body into a pydantic model and returns it (201);
``GET /api/payments/{invoice_id}`` returns a small JSON object. Served by uvicorn with boltgate's
settings (uvloop, httptools, access log off), the req/s of these routes is what FastAPI itself
allows on this machine: boltgate's numbers are reported as a percentage of it.

Run: ``uvicorn ceiling_app:app --app-dir bench --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


class Order(BaseModel):
    """The same fields as boltgate's create-payment body in the benchmark."""

    orderId: str
    amount: float
    currency: str
    description: str | None = None


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/payments", status_code=201)
async def create_payment(order: Order) -> Order:
    return order


@app.get("/api/payments/{invoice_id}")
async def get_payment(invoice_id: str) -> dict[str, str]:
    return {"invoiceId": invoice_id, "status": "unpaid"}
