"""The revenue page's figures: payments received on the day they were paid (refunded ones too),
completed refunds subtracted on the day they completed (failed ones not at all), exact fiat per
currency, and L402 revenue per day for each proxy, read from the tables under the charts.

Payments, refunds and proxy sales are made through the API; their times are then moved to chosen
past days (a sale yesterday cannot be made today), so each figure is known for a given day.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from boltgate.dashboard import charts
from boltgate.l402.models import Challenge
from boltgate.lightning import bolt11
from boltgate.payment.models import Payment
from boltgate.refund.models import Refund
from tests.conftest import Gateway
from tests.dashboard.conftest import new_payment, pay
from tests.helpers import auth
from tests.lightning.contract.harness import foreign_invoice
from tests.proxy.conftest import upstream
from tests.proxy.test_forward import pay_402

__all__ = ["upstream"]


@pytest.fixture(scope="module")
async def dash_gateway(make_gateway: Any) -> Gateway:
    # the dashboard's gateway, allowed to forward to the loopback upstream the proxy sales go to,
    # with a rate for a currency without minor units (JPY)
    return await make_gateway(
        proxy_allow_networks=["127.0.0.1"],
        dashboard_signin_rate_limit="100000/second",
        fixed_rates={"EUR": Decimal("92000"), "JPY": Decimal("15000000")},
    )


class Tables(HTMLParser):
    """Every ``<table id=…>`` of a page: its column names and, per row, the row's name and the
    ``data-value`` of each cell; and the text of every element with an id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.columns: dict[str, list[str]] = {}
        self.rows: dict[str, dict[str, list[str]]] = {}
        self.text: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] = []
        self._in_head = False
        self._open: list[list[Any]] = []  # [id, tag, how many <tag> are open inside it and itself]
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id"):
            self._table = found["id"]
            self.columns[self._table], self.rows[self._table] = [], {}
        elif self._table and tag == "thead":
            self._in_head = True
        elif self._table and tag == "tr":
            self._row = []
        elif self._table and tag in ("th", "td"):
            self._cell = []
            if tag == "td":
                self._row.append(found.get("data-value") or "")
        for entry in self._open:
            entry[2] += entry[1] == tag
        if found.get("id"):
            self._open.append([found["id"], tag, 1])
            self.text[found["id"] or ""] = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for name, _, _ in self._open:
            self.text[name] += data

    def handle_endtag(self, tag: str) -> None:
        for entry in self._open:
            entry[2] -= entry[1] == tag
        self._open = [entry for entry in self._open if entry[2] > 0]
        if self._table is None:
            return
        if tag == "th" and self._cell is not None:
            name = "".join(self._cell).strip()
            if self._in_head:
                self.columns[self._table].append(name)
            else:
                self._row.insert(0, name)
            self._cell = None
        elif tag == "td":
            self._cell = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "tr" and self._row and not self._in_head:
            self.rows[self._table][self._row[0]] = self._row[1:]
        elif tag == "table":
            self._table = None

    def row(self, table: str, name: str) -> dict[str, str]:
        """The row ``name`` of ``table`` as {column: data-value}."""
        return dict(zip(self.columns[table][1:], self.rows[table][name], strict=True))


# noon of the day the run started: the days below stay the same (and inside the page's 30) even if
# the test runs past midnight
TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def days_ago(n: int) -> datetime:
    return TODAY - timedelta(days=n)


def day(n: int) -> str:
    return days_ago(n).strftime("%Y-%m-%d")


def refund_sats(payment: dict[str, Any], amount: str) -> int:
    """What the gateway refunds in sats for ``amount`` of a payment: at the payment's own rate."""
    return int(Fraction(Decimal(amount)) * payment["amountSats"] / Fraction(Decimal(payment["asked"])))


async def paid(api: httpx.AsyncClient, key: str, order: str, amount: str, currency: str) -> dict[str, Any]:
    made = await new_payment(api, key, order, amount=amount, currency=currency)
    await pay(api, made)
    for _ in range(200):  # the settlement watcher marks it paid soon after
        got = (await api.get(f"/api/payments/{made['invoiceId']}", headers=auth(key))).json()
        if got["status"] == "paid":
            return {**made, **got, "asked": amount}  # the API's amount is a JSON number
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment not paid: {got}")


async def refund(
    api: httpx.AsyncClient,
    gateway: Gateway,
    key: str,
    payment: dict[str, Any],
    amount: str,
    *,
    ok: bool = True,
) -> dict[str, Any]:
    """A refund of ``amount`` paid to an invoice: one of the dev node's own that no payment uses
    (it settles), or with ``ok=False`` one of another node (no route: the refund fails)."""
    msat = refund_sats(payment, amount) * 1000
    if ok:
        invoice = (await gateway.ctx.backend.create_invoice(amount_msat=msat)).payment_request
    else:
        invoice = foreign_invoice(msat)[0]
    body = {
        "invoiceId": payment["invoiceId"],
        "amount": amount,
        "currency": payment["currency"],
        "lightningInvoice": invoice,
    }
    answer = await api.post("/api/refunds", json=body, headers=auth(key))
    assert answer.status_code == 201, answer.text
    made = dict(answer.json())
    assert made["status"] == ("completed" if ok else "failed"), made
    return made


async def proxy_sale(api: httpx.AsyncClient, proxy: dict[str, Any], path: str) -> str:
    """One paid call through the proxy (402, pay, call again with the token); its payment hash."""
    first = await api.get(proxy["proxyUrl"] + path)
    token, _, _ = await pay_402(api, first)
    answer = await api.get(proxy["proxyUrl"] + path, headers={"Authorization": token})
    assert answer.status_code == 200, answer.text
    invoice = first.headers.get_list("www-authenticate")[0].split('invoice="')[1].rstrip('"')
    return bolt11.decode(invoice).payment_hash.hex()


async def new_proxy(api: httpx.AsyncClient, key: str, name: str, price: int, target: str) -> dict[str, Any]:
    body = {"name": name, "targetBaseUrl": target, "defaultPriceSats": price}
    created = await api.post("/api/proxy", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    return dict(created.json())


async def move(db: Any, model: Any, key: Any, ids: list[str], column: str, when: datetime) -> None:
    async with db.writing() as session:
        await session.execute(update(model).where(key.in_(ids)).values({column: when}))


async def test_net_revenue_per_day_and_l402_revenue_per_proxy_per_day(
    dash, api, dash_gateway, make_merchant, db, upstream
):
    _, key = await make_merchant("Net Revenue Shop")
    # EUR: two sales 5 days ago; one 3 days ago refunded in full 2 days ago; one 2 days ago refunded
    # in part that same day; a refund that fails (nothing paid back); and a payment never paid
    p1 = await paid(api, key, "eur-1", "10.00", "EUR")
    p2 = await paid(api, key, "eur-2", "4.50", "EUR")
    p3 = await paid(api, key, "eur-3", "20.00", "EUR")
    p4 = await paid(api, key, "eur-4", "8.00", "EUR")
    await new_payment(api, key, "eur-unpaid", amount="99.00")
    r3 = await refund(api, dash_gateway, key, p3, "20.00")
    r4 = await refund(api, dash_gateway, key, p4, "3.25")
    failed = await refund(api, dash_gateway, key, p2, "4.50", ok=False)
    # BTC: 5,000 sats 4 days ago, 2,000 of them refunded yesterday; JPY: a whole-yen currency
    btc = await paid(api, key, "btc-1", "0.00005", "BTC")
    rb = await refund(api, dash_gateway, key, btc, "0.00002")
    jpy = await paid(api, key, "jpy-1", "1500", "JPY")
    refunded = await api.get(f"/api/payments/{p3['invoiceId']}", headers=auth(key))
    assert refunded.json()["status"] == "refunded"  # and still counted as received, below

    # L402: "Weather" sells 2 x 21 sats (4 days ago, 2 days ago), "Quotes" 1 x 50 (2 days ago);
    # "Idle" sells nothing
    weather = await new_proxy(api, key, "Weather", 21, upstream.base_url)
    quotes = await new_proxy(api, key, "Quotes", 50, upstream.base_url)
    await new_proxy(api, key, "Idle", 7, upstream.base_url)
    w1 = await proxy_sale(api, weather, "/forecast/paris")
    w2 = await proxy_sale(api, weather, "/forecast/oslo")
    q1 = await proxy_sale(api, quotes, "/quote")

    await move(db, Payment, Payment.id, [p1["invoiceId"], p2["invoiceId"]], "paid_at", days_ago(5))
    await move(db, Payment, Payment.id, [btc["invoiceId"]], "paid_at", days_ago(4))
    await move(db, Payment, Payment.id, [p3["invoiceId"]], "paid_at", days_ago(3))
    await move(db, Payment, Payment.id, [p4["invoiceId"]], "paid_at", days_ago(2))
    await move(db, Payment, Payment.id, [jpy["invoiceId"]], "paid_at", days_ago(1))
    await move(db, Refund, Refund.id, [r3["refundId"], r4["refundId"]], "completed_at", days_ago(2))
    await move(db, Refund, Refund.id, [rb["refundId"]], "completed_at", days_ago(1))
    await move(db, Refund, Refund.id, [failed["refundId"]], "failed_at", days_ago(2))
    await move(db, Challenge, Challenge.payment_hash, [w1], "paid_at", days_ago(4))
    await move(db, Challenge, Challenge.payment_hash, [w2, q1], "paid_at", days_ago(2))

    client = await dash()
    await client.sign_in(key)
    page = await client.get("/dashboard/revenue")
    assert page.status_code == 200
    html = page.text
    found = Tables(html)
    assert "completed" in found.text["revenue-rule"] and "received" in found.text["revenue-rule"]

    # EUR, exact: gross on the day of payment (the refunded 20.00 included), refunds on their day
    eur = "eur-figures"
    assert found.columns[eur] == ["Day", "Received", "Refunded", "Net"]
    assert len(found.rows[eur]) == 31  # 30 days and the total
    assert found.row(eur, day(5)) == {"Received": "14.50", "Refunded": "0", "Net": "14.50"}
    assert found.row(eur, day(4)) == {"Received": "0", "Refunded": "0", "Net": "0"}
    assert found.row(eur, day(3)) == {"Received": "20.00", "Refunded": "0", "Net": "20.00"}
    assert found.row(eur, day(2)) == {"Received": "8.00", "Refunded": "23.25", "Net": "-15.25"}
    assert found.row(eur, "Total") == {"Received": "42.50", "Refunded": "23.25", "Net": "19.25"}
    assert 'data-currency="EUR">19.25<' in html
    assert f'data-day="{day(2)}" data-refunded="23.25"' in html  # the red bar of the refunds
    assert f'data-day="{day(3)}" data-value="20.00"' in html  # the refunded sale, still received
    # JPY has no minor units; BTC payments are in sats only
    assert found.row("jpy-figures", "Total") == {"Received": "1500", "Refunded": "0", "Net": "1500"}
    assert "btc-figures" not in found.rows

    # sats: each payment's own sats, and each refund's
    sats = "sats-figures"
    assert found.row(sats, day(5))["Received"] == str(p1["amountSats"] + p2["amountSats"])
    assert found.row(sats, day(4)) == {"Received": "5000", "Refunded": "0", "Net": "5000"}
    refunded_2 = r3["amountSats"] + r4["amountSats"]
    assert refunded_2 == refund_sats(p3, "20.00") + refund_sats(p4, "3.25")
    assert found.row(sats, day(2)) == {
        "Received": str(p4["amountSats"]),
        "Refunded": str(refunded_2),
        "Net": str(p4["amountSats"] - refunded_2),
    }
    assert found.row(sats, day(1)) == {
        "Received": str(jpy["amountSats"]),
        "Refunded": "2000",
        "Net": str(jpy["amountSats"] - 2000),
    }
    gross = sum(p["amountSats"] for p in (p1, p2, p3, p4, btc, jpy))
    assert found.row(sats, "Total") == {
        "Received": str(gross),
        "Refunded": str(refunded_2 + 2000),
        "Net": str(gross - refunded_2 - 2000),
    }
    assert found.text["sats-total"] == f"{gross - refunded_2 - 2000:,}"

    # L402: a series per proxy that earned, largest first, per day
    l402 = "l402-figures"
    assert found.columns[l402] == ["Day", "Quotes", "Weather", "Total"]
    assert found.row(l402, day(4)) == {"Quotes": "0", "Weather": "21", "Total": "21"}
    assert found.row(l402, day(2)) == {"Quotes": "50", "Weather": "21", "Total": "71"}
    assert found.row(l402, day(3)) == {"Quotes": "0", "Weather": "0", "Total": "0"}
    assert found.row(l402, "Total") == {"Quotes": "50", "Weather": "42", "Total": "92"}
    assert found.text["l402-total"] == "92"
    assert found.columns["l402-proxies"] == ["Proxy", "Paid tokens", "Revenue"]
    assert found.rows["l402-proxies"] == {"Quotes": ["1", "50"], "Weather": ["2", "42"], "Idle": ["0", "0"]}
    assert f'data-day="{day(2)}" data-series="0" data-value="50"' in html
    assert f'data-day="{day(2)}" data-series="1" data-value="21"' in html


async def test_a_merchant_without_sales_sees_zeros_and_no_currency(dash, make_merchant):
    _, key = await make_merchant("Quiet Shop")
    client = await dash()
    await client.sign_in(key)
    page = await client.get("/dashboard/revenue")
    assert page.status_code == 200
    found = Tables(page.text)
    assert found.row("sats-figures", "Total") == {"Received": "0", "Refunded": "0", "Net": "0"}
    assert set(found.rows) == {"sats-figures", "l402-proxies", "l402-figures"}  # no fiat section
    assert found.columns["l402-figures"] == ["Day", "Total"]
    assert "No paid proxy calls in these 30 days" in page.text and 'class="refund"' not in page.text


def test_past_eight_proxies_the_smallest_are_one_grey_series():
    days = ["2026-01-01", "2026-01-02"]
    items = [(f"p{n}", f"Proxy {n}", {days[0]: 100 - n, days[1]: n}) for n in range(10)]
    series = charts.top_series(items, days, "Other proxies")
    assert [s.name for s in series] == [*(f"Proxy {n}" for n in range(7)), "Other proxies"]
    assert len({s.colour for s in series}) == 8 and series[-1].colour == charts.OTHER
    assert series[-1].values == {days[0]: 93 + 92 + 91, days[1]: 7 + 8 + 9}
    assert [s.key for s in charts.top_series(items[:8], days, "Other")] == [f"p{n}" for n in range(8)]
