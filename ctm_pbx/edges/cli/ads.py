"""``ctm-pbx ads export``: Google Ads click conversions (qualified calls with a gclid,
gbraid or wbraid) as the click-conversion upload template's CSV. Reads only."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from ctm_pbx.adapters.store import ads as ads_store
from ctm_pbx.core.integrations import ads_time_zone
from ctm_pbx.core.reports import QualifiedCall, ReportError, parse_period
from ctm_pbx.edges import cli as base  # the main group's helpers (it registers this group)
from ctm_pbx.edges.cli.options import zone


@click.group()
def ads() -> None:
    """Google Ads offline click conversions.

    \b
    Example:
      ctm-pbx ads export --since 7d --csv > conversions.csv
    """


@ads.command("export")
@click.option("--since", default="30d", show_default=True,
              help="From: a date, a date-time, a span (7d) or a period (last-month).")  # fmt: skip
@click.option("--until", help="To (inclusive date, or a date-time); default now.")
@click.option("--csv", "as_csv", is_flag=True, required=True,
              help="The click-conversion upload template's CSV (the only format).")  # fmt: skip
@base.pass_ctx
def ads_export(ctx, since: str, until: str | None, as_csv: bool) -> None:
    """Qualified calls with a Google click id, as Google Ads' click-conversion upload
    template (Parameters:TimeZone line, Google Click ID / GBRAID / WBRAID, Conversion
    Name, Conversion Time, Conversion Value, Conversion Currency).

    \b
    Example:
      ctm-pbx ads export --since 2026-12-01 --csv
    """
    cfg = ctx.config
    if cfg.google_ads is None:
        raise click.ClickException(f"no google_ads section in {ctx.config_path}")
    tz_name = ads_time_zone(cfg)
    tz, _ = zone(tz_name)
    try:
        period = parse_period(since, until, now=datetime.now(UTC), tz=tz)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    qualified = QualifiedCall(min_talk_seconds=cfg.reports.qualified_min_talk_seconds)
    db = ctx.read_db()
    found = ads_store.conversions(db, cfg.google_ads, qualified, period.start, period.end)
    ads_store.write_csv(sys.stdout, found, tz_name)
