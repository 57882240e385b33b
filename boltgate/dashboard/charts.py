"""Charts as inline SVG drawn on the server: no chart library, no script, nothing to load.

Colours and sizes are SVG presentation attributes (not ``style``), which the page's
Content-Security-Policy allows; each bar carries a ``<title>`` that browsers show on hover and
screen readers read, the whole chart has a ``role="img"`` with a label, and every chart comes with
a table of its figures (:func:`figures_table`), for screen readers and for anyone who wants the
exact numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from markupsafe import Markup, escape

from boltgate.kit import money

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 64, 28, 12
BAR = "#f7931a"
REFUND = "#b42318"
INK = "#1f2933"
GRID = "#d9dee3"
# one colour per series of a stacked chart, told apart by colour-blind readers too (Okabe-Ito)
PALETTE = ("#f7931a", "#0072b2", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#5d3a9b", "#e6c229")
OTHER = "#8a949e"

Amount = Decimal | int


def amount_text(value: Amount, unit: str) -> str:
    """``1,234`` sats; a fiat amount with its currency's minor units (``1,234.50`` EUR, ``1,500`` JPY)."""
    if unit == "sats":
        return f"{int(value):,}"
    places = money.minor_units(unit)
    return f"{Decimal(value):,.{places}f}"


def _nice_top(peak: Decimal) -> Decimal:
    """A round axis maximum at or above ``peak`` (1, 2 or 5 times a power of ten)."""
    if peak <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** peak.adjusted()
    for step in (1, 2, 5, 10):
        if peak <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _open(label: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]


def _y_axis(parts: list[str], ticks: Sequence[tuple[float, str]]) -> None:
    """Grid lines with their labels at ``(y, text)``; a label too close to a drawn one is skipped."""
    drawn: list[float] = []
    for y, text in ticks:
        if any(abs(y - other) < 14 for other in drawn):
            continue
        drawn.append(y)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{INK}">'
            f"{escape(text)}</text>"
        )


def _x_label(parts: list[str], index: int, count: int, x: float, day: str) -> None:
    if index % 5 == 0 or index == count - 1:
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10" '
            f'fill="{INK}">{escape(day[5:])}</text>'
        )


def _tick(value: Decimal, unit: str) -> str:
    return amount_text(int(value) if unit == "sats" else value, unit)


def _axis(peak_up: Decimal, peak_down: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(top, bottom, step) of a value axis: a round step (half of 1, 2 or 5 times a power of ten)
    for the larger peak; each end at a whole number of steps, or a round number below one step."""
    peak = max(peak_up, peak_down)
    step = _nice_top(peak) / 2 if peak > 0 else Decimal(1)

    def reach(value: Decimal) -> Decimal:
        if value <= 0:
            return Decimal(0)
        if value < step:
            return min(_nice_top(value), step)
        return (value / step).to_integral_value(rounding=ROUND_CEILING) * step

    top = reach(peak_up) or (Decimal(0) if peak_down > 0 else step)
    return top, reach(peak_down), step


def _ticks(
    top: Decimal, bottom: Decimal, step: Decimal, zero: float, scale: float, unit: str
) -> list[tuple[float, str]]:
    """Labelled grid lines at both ends and every step (every half step when there is only one,
    up), zero first; none at a fraction of a sat or of the currency's minor unit."""
    places = 0 if unit == "sats" else money.minor_units(unit)
    quantum = Decimal(1).scaleb(-places)
    every = step / 2 if top == step and not bottom else step
    values = {top, -bottom, Decimal(0)}
    values.update(every * n for n in range(-int(bottom / every), int(top / every) + 1))
    order = sorted(values, key=lambda value: (value != 0, value not in (top, -bottom), value))
    return [
        (zero - float(value) * scale, ("\N{MINUS SIGN}" if value < 0 else "") + _tick(abs(value), unit))
        for value in order
        if value == value.quantize(quantum)
    ]


def flow_chart(
    days: Sequence[str], received: Mapping[str, Amount], refunded: Mapping[str, Amount], label: str, unit: str
) -> Markup:
    """One day a slot: what was received as a bar up from the zero line, what was refunded as a
    red bar down from it, both on the same scale (the refund side is drawn only when there are
    refunds). Received bars are ``rect.bar`` with ``data-day``/``data-value``, refunds
    ``rect.refund`` with ``data-day``/``data-refunded``."""
    up, down, step = _axis(
        Decimal(max((received[d] for d in days), default=0)),
        Decimal(max((refunded[d] for d in days), default=0)),
    )
    plot_h = HEIGHT - TOP - BOTTOM
    scale = plot_h / float(up + down)
    zero = TOP + float(up) * scale
    slot = (WIDTH - LEFT - 8) / max(len(days), 1)
    parts = _open(label)
    _y_axis(parts, _ticks(up, down, step, zero, scale, unit))
    if down:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="{INK}"/>')
    for index, day in enumerate(days):
        x = LEFT + index * slot + slot * 0.15
        value, back = received[day], refunded[day]
        height = float(value) * scale
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{zero - height:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{height:.1f}" fill="{BAR}" data-day="{escape(day)}" data-value="{escape(str(value))}">'
            f"<title>{escape(day)}: {escape(amount_text(value, unit))} {escape(unit)} received</title></rect>"
        )
        if back:
            parts.append(
                f'<rect class="refund" x="{x:.1f}" y="{zero:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{float(back) * scale:.1f}" fill="{REFUND}" data-day="{escape(day)}" '
                f'data-refunded="{escape(str(back))}"><title>{escape(day)}: '
                f"{escape(amount_text(back, unit))} {escape(unit)} refunded</title></rect>"
            )
        _x_label(parts, index, len(days), x + slot * 0.35, day)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # what the series stands for (a proxy id; "" for the sum of the others)
    name: str
    colour: str
    values: Mapping[str, int]  # per day


def top_series(
    items: Sequence[tuple[str, str, Mapping[str, int]]], days: Sequence[str], other: str
) -> list[Series]:
    """A coloured series per ``(key, name, per day)``, in the order given; past the palette, the
    rest are summed into one grey series named ``other``."""
    named = len(items) if len(items) <= len(PALETTE) else len(PALETTE) - 1
    shown = [
        Series(key, name, colour, values)
        for (key, name, values), colour in zip(items[:named], PALETTE[:named], strict=True)
    ]
    if named == len(items):
        return shown
    rest = {day: sum(values[day] for _, _, values in items[named:]) for day in days}
    return [*shown, Series("", other, OTHER, rest)]


def stacked_chart(days: Sequence[str], series: Sequence[Series], label: str, unit: str) -> Markup:
    """One bar a day, stacked from its series in order (``rect.seg`` with ``data-day``,
    ``data-series`` (the index) and ``data-value``)."""
    top, _, step = _axis(
        Decimal(max((sum(s.values[d] for s in series) for d in days), default=0)), Decimal(0)
    )
    plot_h = HEIGHT - TOP - BOTTOM
    scale = plot_h / float(top)
    base = TOP + plot_h
    slot = (WIDTH - LEFT - 8) / max(len(days), 1)
    parts = _open(label)
    _y_axis(parts, _ticks(top, Decimal(0), step, base, scale, unit) if series else [(base, "0")])
    for index, day in enumerate(days):
        x = LEFT + index * slot + slot * 0.15
        y = float(base)
        for number, one in enumerate(series):
            value = one.values[day]
            if not value:
                continue
            height = float(value) * scale
            y -= height
            parts.append(
                f'<rect class="seg" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" '
                f'fill="{one.colour}" data-day="{escape(day)}" data-series="{number}" data-value="{value}">'
                f"<title>{escape(day)}, {escape(one.name)}: {escape(amount_text(value, unit))} "
                f"{escape(unit)}</title></rect>"
            )
        _x_label(parts, index, len(days), x + slot * 0.35, day)
    if not series:
        parts.append(
            f'<text x="{(LEFT + WIDTH) / 2:.0f}" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
            f'font-size="13" fill="{INK}">No paid proxy calls in these {len(days)} days</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped


def swatch(colour: str) -> Markup:
    """A small square of a series' colour, for a legend."""
    return Markup(  # noqa: S704 - the colour is one of this module's constants
        f'<svg class="swatch" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true">'
        f'<rect width="12" height="12" rx="2" fill="{escape(colour)}"/></svg>'
    )


def figures_table(
    table_id: str,
    caption: str,
    columns: Sequence[str],
    rows: Sequence[tuple[str, Sequence[Amount]]],
    unit: str,
    total: bool = True,
) -> Markup:
    """The figures of a chart: a row per day (``<th scope="row">``), a cell per column with its
    exact value in ``data-value`` and its shown text, and a total row when ``total``."""
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name in ("Day", *columns))
    parts = [
        f'<table class="list figures" id="{escape(table_id)}"><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>"
    ]

    def row(name: str, values: Sequence[Amount]) -> str:
        cells = "".join(
            f'<td data-value="{escape(str(value))}">{escape(amount_text(value, unit))}</td>'
            for value in values
        )
        return f'<tr><th scope="row">{escape(name)}</th>{cells}</tr>'

    parts.extend(row(day, values) for day, values in rows)
    parts.append("</tbody>")
    if total and rows:
        sums = [sum(values[i] for _, values in rows) for i in range(len(columns))]
        parts.append(f"<tfoot>{row('Total', sums)}</tfoot>")
    parts.append("</table>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped


@dataclass(frozen=True, slots=True)
class FlowFigure:
    """What the revenue page shows of one unit (sats or a fiat currency)."""

    unit: str
    received: str
    refunded: str
    net: str
    net_value: str  # exact, for data-value
    chart: Markup
    table: Markup


def flow_figure(
    figure_id: str,
    days: Sequence[str],
    received: Mapping[str, Amount],
    refunded: Mapping[str, Amount],
    unit: str,
) -> FlowFigure:
    """The chart, the per-day table (received, refunded, net) and the totals of one unit."""
    got, back = sum(received[d] for d in days), sum(refunded[d] for d in days)
    name = "Sats" if unit == "sats" else unit
    rows = [(day, (received[day], refunded[day], received[day] - refunded[day])) for day in days]
    return FlowFigure(
        unit=unit,
        received=amount_text(got, unit),
        refunded=amount_text(back, unit),
        net=amount_text(got - back, unit),
        net_value=str(got - back),
        chart=flow_chart(days, received, refunded, f"{name} received and refunded per day", unit),
        table=figures_table(
            f"{figure_id}-figures",
            f"{name} per UTC day",
            ("Received", "Refunded", "Net"),
            rows,
            unit,
        ),
    )
