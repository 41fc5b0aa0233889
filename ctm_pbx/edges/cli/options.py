"""Options shared by the commands that read the call log (``report``, ``calls list|export``):
the filters and the period, with the same names and rules everywhere."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from ctm_pbx.core.call.actions import Outcome


def zone(name: str | None) -> tuple[ZoneInfo, bool]:
    """The report's zone: ``name`` (``--tz``, else ``reports.time_zone``) or UTC."""
    if not name:
        return ZoneInfo("UTC"), False
    try:
        return ZoneInfo(name), True
    except (ZoneInfoNotFoundError, ValueError):
        raise click.ClickException(f"unknown time zone '{name}' (e.g. America/Chicago)") from None


def filter_options(fn: Callable) -> Callable:
    """The call-log filters, shared by ``report`` and ``calls list|export``."""
    options = [
        click.option("--source", help="Only calls from this source."),
        click.option("--pool", help="Only calls to numbers of this pool."),
        click.option("--number", help="Only calls to this tracking number."),
        click.option("--route", help="Only calls taken by this route."),
        click.option("--outcome", type=click.Choice([o.value for o in Outcome])),
        click.option(
            "--first-time/--repeat",
            "first_time",
            default=None,
            help="Only first-time callers, or only callers who called before.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def period_options(default: str | None = "30d") -> Callable[[Callable], Callable]:
    """--since, --until and --tz (the period in the business's time zone)."""
    options = [
        click.option(
            "--since",
            default=default,
            show_default=default is not None,
            help="A date, a span ending now (24h, 7d, 4w) or today, yesterday, "
            "this-week, last-week, this-month, last-month, this-year, last-year.",
        ),
        click.option("--until", help="Last day (a date, included) or a date-time."),
        click.option("--tz", "tz_name", help="Time zone (default: reports.time_zone)."),
    ]

    def apply(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply
