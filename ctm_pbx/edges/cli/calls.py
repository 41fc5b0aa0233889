"""``ctm-pbx calls …``: the call log."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import click

from ctm_pbx.adapters.store import (
    call_search,
)
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.core.call import path as call_path
from ctm_pbx.core.reports import Filters, ReportError, parse_period
from ctm_pbx.edges.cli import (
    Context,
    _known_name,
    e164,
    emit_json,
    pass_ctx,
)
from ctm_pbx.edges.cli.options import filter_options, period_options, zone

log = logging.getLogger(__name__)


# ---- calls -----------------------------------------------------------------


@click.group()
def calls() -> None:
    """Read the call log.

    \b
    Example:
      ctm-pbx calls list --limit 20
    """


@calls.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@period_options(default=None)
@filter_options
@click.option("--caller", help="Only calls from a number containing these digits.")
@click.option("--tag", help="Only calls with this tag.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@pass_ctx
def calls_list(ctx: Context, limit, as_json, as_csv, **given) -> None:
    """List calls, newest first, filtered like the reports.

    \b
    Example:
      ctm-pbx calls list --outcome no_answer --since 7d
      ctm-pbx calls list --caller 5550142 --json
    """
    database = ctx.read_db()
    filters, period = call_filters(ctx, database, given)
    start, end = (period.start, period.end) if period else (None, None)
    rows = call_search.search_calls(
        database, filters, start=start, end=end, limit=limit, full=as_json
    )
    if as_json:
        emit_json(rows)
        return
    if as_csv:
        call_search.write_csv(sys.stdout, rows)
        return
    if not rows:
        click.echo("no calls")
        return
    click.echo(
        f"{'ID':>5} {'STARTED':<24} {'TRACKING':<13} {'CALLER':<13} {'SOURCE':<14} "
        f"{'ROUTE':<10} {'OUTCOME':<10} {'RING':>5} {'TALK':>6} ANSWERED BY"
    )
    for c in rows:
        click.echo(
            f"{c['id']:>5} {c['started_at']:<24} {c['tracking_number']:<13} "
            f"{c['caller_number'] or '-':<13} {c['source'] or '-':<14} {c['route'] or '-':<10} "
            f"{c['outcome'] or c['status']:<10} {_secs(c['ring_seconds']):>5} "
            f"{_secs(c['talk_seconds']):>6} {c['answered_by'] or '-'}"
        )


@calls.command("export")
@period_options(default="30d")
@filter_options
@click.option("--caller", help="Only calls from a number containing these digits.")
@click.option("--tag", help="Only calls with this tag.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (default: standard output).",
)  # fmt: skip
@pass_ctx
def calls_export(ctx: Context, out_path, **given) -> None:
    """Every call of a period as CSV (oldest first), in batches: any size of log.

    \b
    Example:
      ctm-pbx calls export --since last-month --out november.csv
    """
    database = ctx.read_db()
    filters, period = call_filters(ctx, database, given)
    assert period is not None
    if not out_path:
        call_search.export_csv(sys.stdout, database, filters, period.start, period.end)
        return
    with open(out_path, "w", newline="", encoding="utf-8") as out:
        count = call_search.export_csv(out, database, filters, period.start, period.end)
    click.echo(f"wrote {count} calls to {out_path}", err=True)


def call_filters(ctx: Context, database, given: dict):
    """The filters and period of ``calls list|export`` (the reports' own rules)."""
    cfg = ctx.config
    source = given["source"]
    sources = set(cfg.sources)
    if (
        source
        and source not in sources
        and not call_store.list_calls(database, limit=1, source=source)
    ):
        _known_name("source", source, sources)
    filters = Filters(
        source=source,
        pool=given["pool"],
        number=e164(given["number"], cfg) if given["number"] else None,
        route=given["route"],
        outcome=given["outcome"],
        first_time=given["first_time"],
        caller="".join(ch for ch in given["caller"] or "" if ch.isdigit() or ch == "+") or None,
        tag=given["tag"],
    )
    period = None
    if given["since"] or given["until"]:
        tz, _ = zone(given["tz_name"] or cfg.reports.time_zone)
        try:
            period = parse_period(given["since"], given["until"], now=datetime.now(UTC), tz=tz)
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
    return filters, period


def _secs(value) -> str:
    return "-" if value is None else f"{value:.1f}"


@calls.command("show")
@click.argument("call_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def calls_show(ctx: Context, call_id: int, as_json: bool) -> None:
    """Show one call: who, when, source, outcome and its route path leg by leg.

    \b
    Example:
      ctm-pbx calls show 42
    """
    call = call_store.get_call(ctx.read_db(), call_id)
    if call is None:
        raise click.ClickException(f"no call with id {call_id}")
    if as_json:
        emit_json(call)
        return
    skip = {"path", "legs", "attribution_candidates"}
    for key, value in call.items():
        if key not in skip:
            click.echo(f"{key + ':':<17} {value if value not in (None, '') else '-'}")
    for cand in call.get("attribution_candidates") or []:
        click.echo("  " + _candidate_line(cand))
    click.echo("route path:")
    for entry in call["path"]:
        click.echo("  " + _path_line(entry))


def _candidate_line(cand: dict) -> str:
    """One candidate of the attribution, in words (``someone_else``: none of them)."""
    if cand.get("someone_else"):
        return f"someone else (not a visitor of the window): p={cand['weight']}"
    state = "page open" if cand.get("open_page") else f"idle {cand['idle_minutes']} min"
    if cand.get("idle_minutes", 0) < 0:
        state = "outside the window"
    notes = [state]
    if cand.get("active"):
        notes.append("active lease")
    if cand.get("repeat"):
        notes.append("repeat caller")
    hours = cand.get("zone_hours")
    if hours == 0:
        notes.append("browser in the caller's time zone")
    elif hours is not None:
        notes.append(f"browser {hours} h{'+' if hours >= 3 else ''} from the caller's time zone")
    return f"candidate visitor {cand['visitor_id']}: p={cand['weight']}, {', '.join(notes)}"


def _path_line(entry: dict) -> str:
    return f"{call_path.when(entry)}  {call_path.describe(entry)}"
