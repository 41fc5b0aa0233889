"""``ctm-pbx report …``: which advertising brings calls, as tables, JSON or CSV.

Wiring only: periods, buckets and metrics are ``core.reports``' rules, the sums are
``adapters.store.reports``' queries. Registered on the main group by ``edges.cli``.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import click

from ctm_pbx.adapters.pool_accuracy import pool_accuracy
from ctm_pbx.adapters.store.reports import run_report
from ctm_pbx.core.reports import (
    METRICS,
    WEEKDAYS,
    Dimension,
    Filters,
    QualifiedCall,
    Report,
    ReportError,
    change,
    parse_period,
)
from ctm_pbx.edges import cli as base  # the main group's helpers (it registers this group)
from ctm_pbx.edges.cli.options import filter_options, period_options, zone

# subcommand -> (dimension, heading)
REPORTS: dict[str, tuple[Dimension, str]] = {
    "sources": (Dimension.SOURCE, "SOURCE"),
    "campaigns": (Dimension.CAMPAIGN, "CAMPAIGN"),
    "keywords": (Dimension.KEYWORD, "KEYWORD"),
    "content": (Dimension.CONTENT, "AD CONTENT"),
    "mediums": (Dimension.MEDIUM, "MEDIUM"),
    "landing-pages": (Dimension.LANDING_PAGE, "LANDING PAGE"),
    "referrers": (Dimension.REFERRER, "REFERRER"),
    "numbers": (Dimension.NUMBER, "TRACKING NUMBER"),
    "pools": (Dimension.POOL, "POOL"),
    "routes": (Dimension.ROUTE, "ROUTE"),
    "agents": (Dimension.AGENT, "ANSWERED BY"),
    "regions": (Dimension.REGION, "REGION"),
    "area-codes": (Dimension.AREA_CODE, "AREA CODE"),
    "hours": (Dimension.HOUR, "WEEKDAY HOUR"),
    "timeline": (Dimension.DAY, "PERIOD"),
}
TIMELINE = {"day": Dimension.DAY, "week": Dimension.WEEK, "month": Dimension.MONTH}
# what a person reads: (heading, metric, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("CALLS", "calls", "n"),
    ("ANSWERED", "answered", "n"),
    ("RATE", "answer_rate", "%"),
    ("MISSED", "missed", "n"),
    ("FIRST", "first_time", "n"),
    ("QUALIFIED", "qualified", "n"),
    ("AVG TALK", "avg_talk_seconds", "t"),
    ("CONF", "avg_confidence", "%"),
    ("≥0.9", "confident_share", "%"),
)
NONE_LABEL = "(none)"


def _fmt(value: float | int | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.0f} %"
    if kind == "t":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}:{seconds:02d}"
    return str(value)


def _change(row, metric: str = "calls") -> str:
    """``+12 %`` against the previous period; ``new`` where it had none."""
    now, before = row.metrics.get(metric), row.previous.get(metric)
    if now and not before:
        return "new"
    delta = change(now, before)
    return "-" if delta is None else f"{delta * 100:+.0f} %"


def _span(start: datetime, end: datetime, tz) -> str:
    """``2026-12-01 – 2026-12-02`` (whole local days, the last included) or with times."""
    a, b = start.astimezone(tz), end.astimezone(tz)
    if a.time() == b.time() == datetime.min.time():
        last = (b - timedelta(days=1)).date()
        return a.date().isoformat() if last == a.date() else f"{a.date()} – {last}"
    return f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M}"


def _heading(title: str, rep: Report, tz, zone_is_set: bool) -> str:
    p = rep.period
    zone = rep.time_zone if zone_is_set else "UTC: set reports.time_zone"
    named = "" if p.label[:1].isdigit() else f"{p.label}, "
    return (
        f"{title}, {named}{_span(p.start, p.end, tz)} ({zone}); "
        f"change against {_span(p.previous_start, p.previous_end, tz)}"
    )


def print_table(title: str, key_heading: str, rep: Report, tz, zone_is_set: bool) -> None:
    """An aligned table: a row per key, most calls first, then the total."""
    click.echo(_heading(title, rep, tz, zone_is_set))
    rows = [(r.key if r.key is not None else NONE_LABEL, r) for r in rep.rows]
    rows.append(("TOTAL", rep.total))
    heads = [COLUMNS[0][0], "CHANGE", *(h for h, _, _ in COLUMNS[1:])]
    timed = rep.dimension.is_time  # buckets have no previous-period twin: only the total
    table = [
        [key, _fmt(r.metrics["calls"], "n"), _change(r) if not timed or r is rep.total else ""]
        + [_fmt(r.metrics[m], kind) for _, m, kind in COLUMNS[1:]]
        for key, r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(
        [key_heading, *heads])]  # fmt: skip
    for line in [[key_heading, *heads], *table]:
        first, *rest = line
        click.echo(
            f"{first:<{widths[0]}}  "
            + "  ".join(f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))
        )


def print_heat_map(rep: Report, tz, zone_is_set: bool) -> None:
    """Calls per weekday (rows) and local hour (columns)."""
    click.echo(_heading("Calls by hour of day and weekday", rep, tz, zone_is_set))
    cells = {r.key: r.metrics["calls"] for r in rep.rows}
    width = max([2] + [len(str(v)) for v in cells.values()])
    click.echo("     " + " ".join(f"{h:>{width}}" for h in [f"{h:02d}" for h in range(24)]))
    for day in WEEKDAYS:
        counts = [cells.get(f"{day} {h:02d}", 0) for h in range(24)]
        click.echo(f"{day}  " + " ".join(f"{c or '.':>{width}}" for c in counts))
    click.echo(f"total {rep.total.metrics['calls']} calls")


def report_dicts(rep: Report) -> list[dict]:
    """Rows for --json/--csv: the key, every metric, and the previous period's calls."""
    out = []
    for row in [*rep.rows, rep.total]:
        item: dict = {"key": row.key if row is not rep.total else "TOTAL"}
        item.update(row.metrics)
        item["previous_calls"] = row.previous.get("calls") if row.previous else None
        item["calls_change"] = change(row.metrics.get("calls"), item["previous_calls"])
        out.append(item)
    return out


def emit_csv(rows: list[dict], columns: list[str]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)


def make_command(name: str, dimension: Dimension, key_heading: str) -> click.Command:
    @click.command(name)
    @period_options()
    @filter_options
    @click.option("--tag", help="Only calls with this tag.")
    @click.option("--json", "as_json", is_flag=True, help="JSON output.")
    @click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
    @click.pass_obj
    def command(ctx, since, until, tz_name, source, pool, number, route, outcome, first_time,
                tag, as_json, as_csv, by="day"):  # fmt: skip
        cfg = ctx.config
        tz, zone_is_set = zone(tz_name or cfg.reports.time_zone)
        filters = Filters(
            source=source,
            pool=pool,
            number=base.e164(number, cfg) if number else None,
            route=route,
            outcome=outcome,
            first_time=first_time,
            tag=tag or None,
        )
        dim = TIMELINE[by] if dimension is Dimension.DAY else dimension
        try:
            period = parse_period(since, until, now=datetime.now(UTC), tz=tz)
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
        qualified = QualifiedCall(min_talk_seconds=cfg.reports.qualified_min_talk_seconds)
        # unique callers (a scan of the period's calls) only where they are printed
        rep = run_report(ctx.read_db(), dim, period, tz, filters, qualified,
                         unique=as_json or as_csv)  # fmt: skip
        if as_json:
            base.emit_json(
                {
                    "report": name,
                    "dimension": dim.value,
                    "time_zone": rep.time_zone,
                    "period": {
                        "label": period.label,
                        "start": period.start,
                        "end": period.end,
                        "previous_start": period.previous_start,
                        "previous_end": period.previous_end,
                    },  # fmt: skip
                    "rows": report_dicts(rep),
                }
            )
        elif as_csv:
            emit_csv(report_dicts(rep), ["key", *METRICS, "previous_calls", "calls_change"])
        elif dim is Dimension.HOUR:
            print_heat_map(rep, tz, zone_is_set)
        else:
            title = f"Calls by {key_heading.lower()}"
            print_table(title, key_heading, rep, tz, zone_is_set)

    if dimension is Dimension.DAY:
        command = click.option(
            "--by", type=click.Choice(list(TIMELINE)), default="day", show_default=True
        )(command)
    command.help = (
        f"Calls by {key_heading.lower()}: counts, answer rate, first-time and qualified "
        f"calls, talk time and attribution confidence, with the change against the "
        f"previous period.\n\n\b\nExample:\n  ctm-pbx report {name} --since 7d"
    )
    return command


@click.command("accuracy")
@period_options()
@click.option("--confident", default=0.9, show_default=True, type=click.FloatRange(0.01, 0.99),
              help="The share of calls at >= 0.9 confidence the advice aims for.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_obj
def accuracy(ctx, since, until, tz_name, confident: float, as_json: bool) -> None:
    """Per pool: is it big enough for attribution you can trust (CTM's accuracy report).

    Visitors a day, pages open at the peak, how often a visit saw its number open in
    another visitor's browser, calls, mean confidence and the share of calls at >= 0.9
    in the period; then the size the pool's own last 7 days of traffic needs to reach
    --confident, in plain words.

    \b
    Example:
      ctm-pbx report accuracy --since 30d
    """
    cfg = ctx.config
    tz, _zone_set = zone(tz_name or cfg.reports.time_zone)
    try:
        period = parse_period(since, until, now=datetime.now(UTC), tz=tz)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    qualified = QualifiedCall(min_talk_seconds=cfg.reports.qualified_min_talk_seconds)
    found = pool_accuracy(ctx.read_db(), cfg, period, tz, qualified, confident, datetime.now(UTC))
    rows = [{k: v for k, v in asdict(p).items() if k != "daily_peaks"} for p in found]
    if as_json:
        base.emit_json({"period": period.label, "target_confident": confident, "pools": rows})
        return
    if not rows:
        click.echo("no pools configured")
        return
    for r in rows:
        click.echo(
            f"{r['pool']}: {r['size']} numbers, {r['daily_visitors']:g} visitors a day, "
            f"peak {r['peak_pages_open']} pages open, {r['share_rate']:.0%} of visits shared; "
            f"{r['calls']} calls in {period.label}, mean confidence "
            f"{_fmt(r['avg_confidence'], '%')}, {_fmt(r['confident_share'], '%')} at >= 0.9"
        )
        click.echo(f"  {r['verdict']}")


@click.group()
def report() -> None:
    """Reports: which sources, campaigns and keywords bring calls.

    \b
    Example:
      ctm-pbx report sources --since this-month
    """


for _name, (_dimension, _heading_text) in REPORTS.items():
    report.add_command(make_command(_name, _dimension, _heading_text))
report.add_command(accuracy)
