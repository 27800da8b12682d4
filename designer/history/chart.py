"""Charts as server-rendered SVG: no JavaScript library, readable without JavaScript, styled by CSS classes.

Text inside the SVG (labels, tooltips) is escaped like any other template output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

# Drawn at about the size it is shown, so its text stays as large as the page's small print.
WIDTH, HEIGHT = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 36, 6, 10, 22
# A day label every this many bars keeps the axis readable at 30 days on a narrow screen.
LABEL_EVERY = 5


@dataclass(frozen=True)
class Series:
    """One stacked layer: ``key`` names its CSS class (``seg-<key>``), e.g. a run status."""

    key: str
    label: str
    values: list[int]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True)
class Chart:
    title: str
    svg: SafeString
    legend: list[Series]  # the series with a non-zero total, for the legend beside the SVG
    empty: bool


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, ... at or above ``value``: round numbers with a whole half."""
    step = 1
    while True:
        for factor in (2, 4, 10):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars(chart_id: str, title: str, days: list[date], series: list[Series], unit: str) -> Chart:
    """A bar per day, stacked by series; each segment has a tooltip with its day, label and count."""
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    top = _nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1)
    parts: list[str] = [
        format_html('<svg class="chart" id="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-t {}-d" '
                    'preserveAspectRatio="xMidYMid meet">', chart_id, WIDTH, HEIGHT, chart_id, chart_id),
        format_html('<title id="{}-t">{}</title>', chart_id, title),
        format_html('<desc id="{}-d">{}</desc>', chart_id, _description(days, series, unit)),
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(format_html('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>',
                                 LEFT, WIDTH - RIGHT, f"{y:.1f}", f"{y:.1f}"))
        parts.append(format_html('<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                                 LEFT - 6, f"{y + 4:.1f}", int(top * fraction)))
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for layer in series:
            value = layer.values[i]
            if not value:
                continue
            height = plot_h * value / top
            y -= height
            parts.append(format_html(
                '<rect class="seg seg-{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {} {}</title></rect>',
                layer.key, f"{x:.1f}", f"{y:.1f}", f"{bar:.1f}", f"{height:.1f}",
                day.strftime("%b %d"), value, layer.label.lower(), unit,
            ))
        last = i == len(days) - 1
        # A periodic label a whole period before the last one, so the two never overlap, even drawn
        # larger on a phone.
        if last or (i % LABEL_EVERY == 0 and len(days) - 1 - i >= LABEL_EVERY):
            # The last label ends at its bar, so it is not cut off at the edge.
            parts.append(format_html('<text class="axis" x="{}" y="{}" text-anchor="{}">{}</text>',
                                     f"{x + (bar if last else bar / 2):.1f}", HEIGHT - 6,
                                     "end" if last else "middle", day.strftime("%b %d")))
    parts.append("</svg>")
    return Chart(title=title, svg=mark_safe("".join(parts)),  # noqa: S308 (every part was escaped above)
                 legend=[s for s in series if s.total], empty=not any(totals))


def _description(days: list[date], series: list[Series], unit: str) -> str:
    if not days:
        return "No data."
    totals = ", ".join(f"{s.label.lower()} {s.total}" for s in series if s.total) or "none"
    return f"{days[0]:%b %d} to {days[-1]:%b %d}, {unit}: {totals}."
