"""Charts as SVG text, rendered on the server: no script, no CDN, nothing to build.

Pure functions from numbers to markup. Colours are the Okabe-Ito palette, which
people with any common colour-vision deficiency can tell apart; every chart has a
title, labelled axes or values, a legend where colours carry meaning, and a
``<title>`` per mark so a hover (or a screen reader) gives the exact figure. The
``viewBox`` lets a chart shrink to a phone's width.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
OTHER = "#999999"  # what is left after the palette's series
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def colour(index: int) -> str:
    return PALETTE[index] if index < len(PALETTE) else OTHER


def axis_ticks(value: float, most: int = 5) -> list[int]:
    """The ticks of a value axis from 0 to just above ``value``: a step of 1, 2 or 5
    times a power of ten, the fewest ticks above the largest value while there are at
    most ``most`` steps (21 calls: 0, 5, ..., 25; not an axis to 50 that halves the bars)."""
    if value <= 0:
        return [0, 1]
    step = 1
    while True:
        for m in (1, 2, 5):
            if math.ceil(value / (m * step)) <= most:
                n = math.ceil(value / (m * step))
                return [i * m * step for i in range(n + 1)]
        step *= 10


def _legend_bottom(height: int, series: int) -> int:
    """The height of a chart whose legend (six series a row) starts at ``height - 14``:
    just below its last row, no empty band under it."""
    rows = max(1, (series + 5) // 6)
    return height - 4 + 22 * (rows - 1)


def stacked_bars(
    labels: list[str], series: dict[str, list[int]], *, title: str, y_label: str = "calls"
) -> str:
    """Vertical bars per label (a day), stacked by series (a source), with a legend."""
    width, height, left, bottom, top_pad = 1100, 300, 44, 50, 28
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    ticks = axis_ticks(max(totals, default=0))
    top = ticks[-1]
    n = max(1, len(labels))
    slot = plot_w / n
    bar = max(1.0, slot * 0.8)
    out = [
        f'<svg class="chart wide" viewBox="0 0 {width} {_legend_bottom(height, len(series))}" '
        f'role="img" aria-label="{escape(title)}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-weight="600" font-size="14">{escape(title)}</text>',
    ]
    for tick in ticks:
        y = top_pad + plot_h - plot_h * tick / top
        out.append(
            f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    out.append(
        f'<text transform="translate(12 {top_pad + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    every = max(1, round(n / 10))  # at most ~10 axis labels
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar) / 2
        y = top_pad + plot_h
        for s, (name, values) in enumerate(series.items()):
            value = values[i]
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour(s)}"><title>{escape(label)}: {escape(name)} {value}</title></rect>'
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{top_pad + plot_h + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    out.append(
        f'<line x1="{left}" x2="{width - 12}" y1="{top_pad + plot_h}" '
        f'y2="{top_pad + plot_h}" stroke="#333"/>'
    )
    legend_y = height - 14
    for s, name in enumerate(series):
        col, row = s % 6, s // 6
        x, y = left + col * 175, legend_y + row * 22
        out.append(
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour(s)}"/>'
            f'<text x="{x + 18}" y="{y}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


BARS_WIDTH = 360  # a phone's box shows it whole at a readable size (dashboard.css)


def horizontal_bars(items: list[tuple[str, int]], *, title: str, unit: str = "calls") -> str:
    """One bar per item (a source and its calls), the value written at the bar's end.
    Narrow enough for a phone's width without scrolling: the values are at the right."""
    row_h, left, width = 24, 112, BARS_WIDTH
    height = 30 + row_h * max(1, len(items))
    top = max([1, *(v for _, v in items)])  # the longest bar takes the width
    plot_w = width - left - 40
    out = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-weight="600" font-size="14">{escape(title)}</text>',
    ]
    for i, (name, value) in enumerate(items):
        y = 28 + i * row_h
        w = plot_w * value / top
        short = name if len(name) <= 17 else name[:16] + "…"
        out.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(short)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{colour(0)}"><title>{escape(name)}: {value} {escape(unit)}</title></rect>'
            f'<text x="{left + w + 6:.1f}" y="{y + 15}">{value}</text>'
        )
    if not items:
        out.append(f'<text x="{left}" y="46" fill="#555">no calls in this period</text>')
    out.append("</svg>")
    return "".join(out)


def heat_map_svg(grid: list[list[int]], days: tuple[str, ...], *, title: str) -> str:
    """Weekday rows by hour columns, darker for more calls (one blue, light to dark).
    Narrow enough for a phone's width without scrolling, like ``horizontal_bars``."""
    cell, left, top_pad = 14, 32, 40
    width, height = left + cell * 24 + 6, top_pad + cell * len(days) + 40
    peak = max((max(row) for row in grid), default=0) or 1
    out = [
        f'<svg class="chart bars heat" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-weight="600" font-size="14">{escape(title)}</text>',
    ]
    for hour in range(0, 24, 3):
        out.append(
            f'<text x="{left + cell * hour + cell / 2}" y="{top_pad - 6}" '
            f'text-anchor="middle">{hour:02d}</text>'
        )
    for d, day in enumerate(days):
        y = top_pad + d * cell
        out.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{day}</text>')
        for hour, value in enumerate(grid[d]):
            share = value / peak
            fill = "#f2f2f2" if not value else _blend("#cfe3f3", "#08306b", share)
            out.append(
                f'<rect x="{left + hour * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{fill}"><title>{day} {hour:02d}:00: {value} calls</title></rect>'
            )
    out.append(
        f'<text x="{left}" y="{height - 12}" fill="#555">local hour of day; darker = more '
        f"calls (most: {peak})</text></svg>"
    )
    return "".join(out)


def _blend(light: str, dark: str, share: float) -> str:
    a = [int(light[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(dark[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def grouped_lines(
    labels: list[str], series: dict[str, list[int]], limits: dict[str, int], *, title: str
) -> str:
    """A line per series over the labels (days), each with its limit dashed in its colour,
    values marked, and a legend."""
    width, height, left, bottom, top_pad = 1100, 280, 44, 50, 28
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    ticks = axis_ticks(max([*(max(v, default=0) for v in series.values()), *limits.values(), 1]))
    top = ticks[-1]
    n = max(1, len(labels) - 1)
    x_of = [left + plot_w * i / n for i in range(len(labels))]

    def y_of(value: float) -> float:
        return top_pad + plot_h - plot_h * value / top

    out = [
        f'<svg class="chart wide" viewBox="0 0 {width} {_legend_bottom(height, len(series))}" '
        f'role="img" aria-label="{escape(title)}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-weight="600" font-size="14">{escape(title)}</text>',
    ]
    for tick in ticks:
        y = y_of(tick)
        out.append(
            f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    out.append(
        f'<text transform="translate(12 {top_pad + plot_h / 2}) rotate(-90)" '
        'text-anchor="middle">pages open</text>'
    )
    for i, label in enumerate(labels):
        # the first and last labels sit at the plot's edges: anchored inside it
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        out.append(
            f'<text x="{x_of[i]:.1f}" y="{top_pad + plot_h + 16}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    for s, (name, values) in enumerate(series.items()):
        col = colour(s)
        if name in limits:
            y = y_of(limits[name])
            out.append(
                f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{col}" stroke-dasharray="6 4"><title>{escape(name)}: '
                f"{limits[name]} numbers</title></line>"
            )
        points = " ".join(f"{x_of[i]:.1f},{y_of(v):.1f}" for i, v in enumerate(values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{col}" stroke-width="2.5"/>')
        for i, v in enumerate(values):
            out.append(
                f'<circle cx="{x_of[i]:.1f}" cy="{y_of(v):.1f}" r="4" fill="{col}">'
                f"<title>{escape(name)} {escape(labels[i])}: {v} pages open</title></circle>"
            )
    legend_y = height - 14
    for s, name in enumerate(series):
        x, y = left + (s % 6) * 175, legend_y + (s // 6) * 22
        out.append(
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour(s)}"/>'
            f'<text x="{x + 18}" y="{y}">{escape(name)}</text>'
        )
    out.append(
        f'<line x1="{left}" x2="{width - 12}" y1="{top_pad + plot_h}" '
        f'y2="{top_pad + plot_h}" stroke="#333"/></svg>'
    )
    return "".join(out)
