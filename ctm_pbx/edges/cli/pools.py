"""``ctm-pbx pools …``: number pools, how they are used and how big they need to be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from ctm_pbx.core.clock import iso
from ctm_pbx.edges.cli import (
    Context,
    emit_json,
    pass_ctx,
)

# ---- pools -----------------------------------------------------------------


@click.group()
def pools() -> None:
    """Number pools: their numbers, how busy they are, and how big they should be.

    \b
    Example:
      ctm-pbx pools stats
    """


STATS_PERIOD = timedelta(days=7)  # what `pools stats|advise` read of the history


def _pool_rows(ctx: Context):
    from ctm_pbx.adapters.store import leases as lease_store
    from ctm_pbx.adapters.store import pool_stats
    from ctm_pbx.core.pools import pool_metrics, pool_traffic

    database = ctx.read_db()
    now = datetime.now(UTC)
    for pool in ctx.config.pools.values():
        numbers = lease_store.pool_numbers(database, pool.name)
        view = lease_store.pool_view(database, pool, numbers, now)
        counters = pool_stats.pool_counters(database, pool.name)
        traffic = pool_traffic(
            pool_stats.pool_leases(database, numbers, now - STATS_PERIOD, now),
            now - STATS_PERIOD,
            now,
        )
        # shares and peak as pages open, not as leases in their tail
        stats = pool_metrics(view, now, traffic.shared, traffic.peak_open)
        daily = pool_stats.daily_visitors(database, pool.source, now)
        yield pool, numbers, stats, counters, daily, traffic


@pools.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def pools_list(ctx: Context, as_json: bool) -> None:
    """List pools with their source, target, lease settings and numbers.

    \b
    Example:
      ctm-pbx pools list --json
    """
    rows = [
        {
            "pool": p.name,
            "source": p.source,
            "target": p.target,
            "lease_minutes": p.lease_minutes,
            "cooldown_minutes": p.cooldown_minutes,
            "overflow_number": p.overflow_number,
            "numbers": numbers,
        }
        for p, numbers, *_ in _pool_rows(ctx)
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no pools configured")
    for r in rows:
        click.echo(
            f"{r['pool']}: source {r['source']}, target {r['target'] or 'all'}, "
            f"lease {r['lease_minutes']} min, cooldown {r['cooldown_minutes']} min, "
            f"{len(r['numbers'])} numbers: {', '.join(r['numbers']) or '-'}"
        )


@pools.command("stats")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def pools_stats(ctx: Context, as_json: bool) -> None:
    """Utilisation now, and since the counters started: leases, shares, peak concurrency.

    \b
    Example:
      ctm-pbx pools stats
    """
    rows = []
    for _pool, _numbers, stats, counters, daily, traffic in _pool_rows(ctx):
        rows.append(
            {
                **stats.__dict__,
                "leases_total": counters.leases,
                "overflows_total": counters.overflows,
                "crawlers_total": counters.crawlers,
                "capped_total": counters.capped,
                "unconfirmed_total": counters.unconfirmed,
                "peak_at": iso(traffic.peak_at) if traffic.peak_at else None,
                "since": counters.since,
                "daily_visitors_7d": round(daily, 1),
                "leases_7d": traffic.leases,
                "shared_7d": traffic.shared,
                "shared_share_7d": round(traffic.shared_share, 4),
            }
        )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['pool']}: {r['size']} numbers, {r['held']} held, {r['resting']} resting, "
            f"{r['free']} free ({r['utilisation']:.0%} used); {r['active_leases']} active "
            f"leases, {r['shared_leases']} shared now; last 7 days: {r['leases_7d']} leases, "
            f"{r['shared_7d']} ({r['shared_share_7d']:.0%}) saw their number open in another "
            f"visitor's browser, peak {r['peak_concurrent']} pages open at once, "
            f"{r['daily_visitors_7d']:g} visitors a day; since {r['since'] or '-'}: "
            f"{r['leases_total']} leases, {r['overflows_total']} overflow; "
            f"drain defence: {r['crawlers_total']} crawler views, {r['capped_total']} "
            f"capped, {r['unconfirmed_total']} unconfirmed"
        )


@pools.command("advise")
@click.option(
    "--share-probability",
    default=0.01,
    show_default=True,
    type=float,
    help="Acceptable chance that a new visitor must share a number (the peak sizing).",
)
@click.option("--accuracy", type=float, help="Target top-1 accuracy over all calls, e.g. 0.9.")
@click.option("--same-day", type=float, help="Target accuracy of calls made the same day.")
@click.option("--confident", type=float, help="Target share of calls scored >= 0.9.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def pools_advise(
    ctx: Context, share_probability: float, accuracy, same_day, confident, as_json: bool
) -> None:
    """Recommend each pool's size for an accuracy target, from its own traffic.

    With a target, the pool's stored visits of the last 7 days (with their
    closes) are handed out again on pools of other sizes in the real hand-out's
    order, and its calls, each spread over its candidates, are scored again by the
    real scorer with the evidence they had (time zones, repeat callers); the
    answer is the smallest size that reaches the target, with the sizes the
    margin of its measured calls allows. Without one: the peak sizing beside
    CTM's rule of thumb.

    \b
    Example:
      ctm-pbx pools advise --accuracy 0.9
      ctm-pbx pools advise --same-day 0.99 --json
    """
    from ctm_pbx.adapters.pool_accuracy import replay_advice
    from ctm_pbx.core.pools import advise

    if not 0 < share_probability < 1:
        raise click.ClickException("--share-probability must be between 0 and 1")
    targets = {"accuracy": accuracy, "same_day": same_day, "confident": confident}
    for name, value in targets.items():
        if value is not None and not 0 < value < 1:
            flag = "--" + name.replace("_", "-")
            raise click.ClickException(f"{flag} must be between 0 and 1")
    now = datetime.now(UTC)
    rows = []
    for pool, numbers, _stats, _counters, daily, traffic in _pool_rows(ctx):
        advice = advise(traffic.peak_open, daily, share_probability)
        row = {
            "pool": pool.name,
            "size": len(numbers),
            "peak": traffic.peak_open,
            "daily_visitors": round(daily, 1),
            **advice.__dict__,
        }
        wanted = {k: v for k, v in targets.items() if v is not None}
        if wanted:
            row["targets"] = {}
            advised = replay_advice(ctx.read_db(), ctx.config, pool, numbers, wanted, now)
            for metric, target in wanted.items():
                sized = advised[metric]
                row["targets"][metric] = {
                    "target": target,
                    "size": sized.size,
                    "reached": round(sized.reached, 4),
                    "margin": round(sized.margin, 4),
                    "between": list(sized.between),
                    "explanation": sized.explanation,
                }
        rows.append(row)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        if "targets" in r:
            click.echo(f"{r['pool']}: has {r['size']}")
            for metric, t in r["targets"].items():
                click.echo(f"  {metric.replace('_', '-')} {t['target']:g}: {t['explanation']}")
            continue
        click.echo(
            f"{r['pool']}: has {r['size']}, recommended {r['recommended']} "
            f"(by peak {r['by_peak']}, CTM rule {r['ctm_rule']}, 1 per 5 visitors "
            f"{r['findings_rule']})\n  {r['explanation']}"
        )
