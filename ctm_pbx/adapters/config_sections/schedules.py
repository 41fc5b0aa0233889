"""The ``schedules`` section of ``config.yaml``: weekly opening hours in a time zone,
with holiday dates.
"""

from __future__ import annotations

from datetime import date

from ctm_pbx.adapters.config_sections.base import (
    SectionBuilder,
    optional,
    required,
    yaml_keys,
)
from ctm_pbx.adapters.yaml_source import YNode
from ctm_pbx.core.schedules import DAYS, Interval, Schedule, parse_days, parse_intervals

SCHEDULE_KEYS = yaml_keys(Schedule, rename={"week": "hours"})


class ScheduleSections(SectionBuilder):
    """Builds the schedules sections (see the module's docstring)."""

    def _schedule(self, name: str, node: YNode) -> Schedule | None:
        m = node.mapping(SCHEDULE_KEYS)
        if m is None:
            return None
        tz_node, hours_node = required(m, node, "time_zone"), required(m, node, "hours")
        tz = self._time_zone(tz_node) if tz_node else None
        week = self._week(hours_node) if hours_node else None
        no_dates: tuple[date, ...] = ()
        holidays = optional(m, "holidays", self._dates, no_dates)
        label = optional(m, "label", YNode.text, "")
        if tz is None or week is None:
            return None
        return Schedule(name, tz, week, holidays, label)

    def _week(self, node: YNode) -> tuple[tuple[Interval, ...], ...] | None:
        entries = node.mapping()
        if entries is None:
            return None
        week: list[list[Interval]] = [[] for _ in DAYS]
        ok = True
        for key, value in entries.items():
            try:
                days = parse_days(key)
            except ValueError as exc:
                value.error(str(exc), line=value.entry_line)
                ok = False
                continue
            texts = (
                [i.text() for i in value.sequence() or []] if value.is_sequence else [value.text()]
            )
            try:
                intervals = [iv for t in texts if t is not None for iv in parse_intervals(t)]
            except ValueError as exc:
                value.error(str(exc))
                ok = False
                continue
            for day in days:
                week[day].extend(intervals)
        return tuple(tuple(day) for day in week) if ok else None

    def _dates(self, node: YNode) -> tuple[date, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        out = []
        for item in items:
            raw = item.text()
            if raw is None:
                return None
            try:
                out.append(date.fromisoformat(raw.strip()))
            except ValueError:
                item.error(f"expected a date like 2026-12-25, got '{raw}'")
                return None
        return tuple(out)
