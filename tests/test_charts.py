"""The charts' value axes: the bars fill the plot (an axis just above the largest value,
in steps people count in), and every chart still renders with no data."""

from __future__ import annotations

import re

import pytest

from ctm_pbx.core import charts


@pytest.mark.parametrize(
    ("largest", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (5, [0, 1, 2, 3, 4, 5]),
        (7, [0, 2, 4, 6, 8]),
        (21, [0, 5, 10, 15, 20, 25]),  # the example's busiest day: not an axis to 50
        (48, [0, 10, 20, 30, 40, 50]),
        (100, [0, 20, 40, 60, 80, 100]),
        (101, [0, 50, 100, 150]),
        (2_400, [0, 500, 1000, 1500, 2000, 2500]),
    ],
)
def test_axis_ticks(largest: int, ticks: list[int]) -> None:
    assert charts.axis_ticks(largest) == ticks


def test_the_busiest_day_takes_most_of_the_plots_height() -> None:
    days = [f"12-{d:02d}" for d in range(1, 31)]
    series = {"google-ads": [6] * 30, "organic": [15] * 29 + [0]}  # 21 a day at most
    svg = charts.stacked_bars(days, series, title="Calls per day")
    labels = [int(t) for t in re.findall(r'text-anchor="end">(\d+)</text>', svg)]
    assert labels == [0, 5, 10, 15, 20, 25]


def test_horizontal_bars_scale_to_the_largest_value() -> None:
    svg = charts.horizontal_bars([("a", 69), ("b", 23)], title="By source")
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[0] == pytest.approx(charts.BARS_WIDTH - 112 - 40)
    assert widths[1] == pytest.approx(widths[0] / 3, abs=0.1)


@pytest.mark.parametrize(
    "svg",
    [
        charts.stacked_bars([], {}, title="t"),
        charts.horizontal_bars([], title="t"),
        charts.grouped_lines([], {}, {}, title="t"),
    ],
)
def test_no_data_still_renders(svg: str) -> None:
    assert svg.startswith("<svg") and svg.endswith("</svg>")
