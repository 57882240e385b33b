"""Charts as inline SVG drawn on the server: no chart library, no script, nothing to load.

Colours and sizes are SVG presentation attributes (not ``style``), which the page's
Content-Security-Policy allows; each bar carries a ``<title>`` that browsers show on hover and
screen readers read, and the whole chart has a ``role="img"`` with a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 64, 28, 12
BAR = "#f7931a"
INK = "#1f2933"
GRID = "#d9dee3"


def _number(value: Decimal | int) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return f"{value:,}"


def _nice_top(peak: Decimal) -> Decimal:
    """A round axis maximum at or above ``peak`` (1, 2 or 5 times a power of ten)."""
    if peak <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** peak.adjusted()
    for step in (1, 2, 5, 10):
        if peak <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def bar_chart(points: Sequence[tuple[str, Decimal | int]], label: str, unit: str) -> Markup:
    """Vertical bars, one per point (``(day "YYYY-MM-DD", value)``), with a labelled y axis."""
    top = _nice_top(Decimal(max((v for _, v in points), default=0)))
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        tick = top * Decimal(str(fraction))
        tick_text = _number(int(tick)) if unit == "sats" else _number(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{INK}">'
            f"{escape(tick_text)}</text>"
        )
    for index, (day, value) in enumerate(points):
        height = float(Decimal(value) / top) * plot_h if top else 0.0
        x = LEFT + index * slot + slot * 0.15
        y = TOP + plot_h - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" '
            f'fill="{BAR}" data-day="{escape(day)}" data-value="{escape(str(value))}">'
            f"<title>{escape(day)}: {escape(_number(value))} {escape(unit)}</title></rect>"
        )
        if index % 5 == 0 or index == len(points) - 1:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10" '
                f'fill="{INK}">{escape(day[5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped


def hbar_chart(items: Sequence[tuple[str, int]], label: str, unit: str) -> Markup:
    """Horizontal bars, one per named item (a proxy and its revenue), largest first."""
    rows = sorted(items, key=lambda item: -item[1])[:20]
    peak = max((v for _, v in rows), default=0) or 1
    row_h, name_w, value_w = 26, 200, 110
    height = max(len(rows), 1) * row_h + 8
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, (name, value) in enumerate(rows):
        y = 4 + index * row_h
        width = (WIDTH - name_w - value_w) * value / peak
        short = name if len(name) <= 28 else name[:27] + "…"
        parts.append(
            f'<text x="{name_w - 8}" y="{y + 16}" text-anchor="end" font-size="12" fill="{INK}">'
            f"{escape(short)}</text>"
        )
        parts.append(
            f'<rect class="bar" x="{name_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 8}" '
            f'fill="{BAR}" data-value="{value}">'
            f"<title>{escape(name)}: {value:,} {escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text x="{name_w + width + 6:.1f}" y="{y + 16}" font-size="12" fill="{INK}">'
            f"{escape(_number(value))} {escape(unit)}</text>"
        )
    if not rows:
        parts.append(f'<text x="8" y="20" font-size="12" fill="{INK}">No paid requests yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped
