"""``ctm-pbx demo seed|clear``: sample calls to look at the reports and dashboard with."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ctm_pbx.adapters.store import demo as demo_store
from ctm_pbx.core.demo import demo_calls


@click.group()
def demo() -> None:
    """Sample calls, marked as such (mode 'demo'), for a first look.

    \b
    Example:
      ctm-pbx demo seed && ctm-pbx report sources
    """


@demo.command("seed")
@click.option("--calls", default=600, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--days", default=45, show_default=True, type=click.IntRange(1, 3650))
@click.option("--seed", default=7, show_default=True, help="The same seed gives the same calls.")
@click.option("--force", is_flag=True, help="Also into a database that has real calls.")
@click.pass_obj
def demo_seed(ctx, calls: int, days: int, seed: int, force: bool) -> None:
    """Write sample calls over the last DAYS days into the call log.

    \b
    Example:
      ctm-pbx demo seed --calls 300 --days 30
    """
    db = ctx.write_db()
    real = demo_store.real_calls(db)
    if real and not force:
        raise click.ClickException(
            f"the database has {real} real calls: sample calls would mix with them "
            "(use --force if that is what you want)"
        )
    rows = demo_calls(ctx.config, now=datetime.now(UTC), days=days, calls=calls, seed=seed)
    replaced = demo_store.clear_demo(db)
    demo_store.seed_demo(db, rows)
    again = f", replacing {replaced} earlier ones" if replaced else ""
    click.echo(f"wrote {len(rows)} sample calls{again} (remove them with: ctm-pbx demo clear)")


@demo.command("clear")
@click.pass_obj
def demo_clear(ctx) -> None:
    """Remove every sample call.

    \b
    Example:
      ctm-pbx demo clear
    """
    click.echo(f"removed {demo_store.clear_demo(ctx.write_db())} sample calls")
