"""``ctm-pbx numbers …``: the tracking-number inventory."""

from __future__ import annotations

import click

from ctm_pbx.adapters.number_csv import CsvError, read_rows
from ctm_pbx.adapters.store import (
    StoreError,
)
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.core.inventory import (
    InventoryError,
    NumberRecord,
    check_cli_number,
    check_rows,
    plan_config_sync,
    release_refusal,
)
from ctm_pbx.edges.cli import (
    FORCE,
    Context,
    _known_name,
    _plan_text,
    _sync,
    e164,
    emit_json,
    now_iso,
    pass_ctx,
)

# ---- numbers ---------------------------------------------------------------


@click.group()
def numbers() -> None:
    """Manage tracking numbers (the inventory lives in the database).

    \b
    Example:
      ctm-pbx numbers add "+1 312 555 0142" --source billboard-i90 --route sales
    """


def _checked(ctx: Context, number: str, source, pool, route):
    """The assignment, if ``number`` may take it (``core.inventory.check_cli_number``)."""
    try:
        return check_cli_number(ctx.config, number, source=source, pool=pool, route=route)
    except InventoryError as exc:
        raise click.ClickException(str(exc)) from None


def _record_json(rec: NumberRecord) -> dict:
    return dict(rec.__dict__)


@numbers.command("add")
@click.argument("number")
@click.option("--source", help="Tracking source name (from the config).")
@click.option("--pool", help="Number pool (on-site sources); implies its source.")
@click.option("--route", required=True, help="Route that takes calls to this number.")
@click.option("--label", default="", help="A description, e.g. 'I-90 billboard'.")
@pass_ctx
def numbers_add(ctx: Context, number, source, pool, route, label) -> None:
    """Add a tracking number to the inventory.

    \b
    Example:
      ctm-pbx numbers add "(312) 555-0142" --source billboard-i90 --route sales --label "I-90"
    """
    num = e164(number, ctx.config)
    if source is None and pool is None:
        raise click.ClickException("give --source or --pool: a tracking number tracks a source")
    a = _checked(ctx, num, source, pool, route)
    rec = NumberRecord(num, a.source, a.pool, a.route, label, managed_by="cli")
    number_store.add_numbers(ctx.write_db(), [rec], now=now_iso())
    click.echo(f"added {num} (source {a.source}, pool {a.pool or '-'}, route {a.route})")


@numbers.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_ctx
def numbers_import(ctx: Context, csv_file: str) -> None:
    """Add many numbers from a CSV file: all of them, or none if any row is bad.

    Columns (header row required): number, source, pool, route, label; separated
    by ',' or ';'; UTF-8 (with or without a byte-order mark) or UTF-16.

    \b
    Example:
      ctm-pbx numbers import numbers.csv
    """
    rows, problems = _read_csv(ctx, csv_file)
    if problems:
        raise click.ClickException(
            f"{csv_file}: nothing imported, {len(problems)} bad row(s):\n" + "\n".join(problems)
        )
    database = ctx.write_db()
    try:
        number_store.add_numbers(database, rows, now=now_iso())
    except StoreError as exc:
        raise click.ClickException(f"{csv_file}: nothing imported: {exc}") from None
    click.echo(f"imported {len(rows)} number(s) from {csv_file}")


def _read_csv(ctx: Context, csv_file: str) -> tuple[list[NumberRecord], list[str]]:
    try:
        with click.open_file(csv_file, "rb") as handle:  # "-" is stdin
            data = handle.read()
        rows, problems = read_rows(data)
    except OSError as exc:
        raise click.ClickException(f"cannot read {csv_file}: {exc.strerror}") from None
    except CsvError as exc:
        raise click.ClickException(f"{csv_file}: nothing imported: {exc}") from None
    records, bad = check_rows(ctx.config, [(row.line, row.fields) for row in rows])
    return records, sorted([*problems, *bad], key=lambda p: int(p.split()[1].rstrip(":")))


@numbers.command("list")
@click.option("--source", help="Only this source.")
@click.option("--pool", help="Only this pool.")
@click.option("--route", help="Only this route.")
@click.option("--all", "show_all", is_flag=True, help="Include released numbers.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def numbers_list(ctx: Context, source, pool, route, show_all, as_json) -> None:
    """List tracking numbers.

    \b
    Example:
      ctm-pbx numbers list --pool google-ads-sales --json
    """
    database = ctx.read_db()
    stored = number_store.all_numbers(database).values()
    cfg = ctx.config
    for kind, value, names in (
        ("source", source, cfg.sources),
        ("pool", pool, cfg.pools),
        ("route", route, cfg.routes),
    ):
        _known_name(kind, value, set(names) | {getattr(r, kind) for r in stored})
    recs = number_store.list_numbers(
        database, status=None if show_all else "active", source=source, pool=pool, route=route
    )
    if as_json:
        emit_json([_record_json(r) for r in recs])
        return
    if not recs:
        click.echo("no tracking numbers")
        return
    click.echo(f"{'NUMBER':<16} {'SOURCE':<16} {'POOL':<18} {'ROUTE':<12} {'BY':<6} STATUS  LABEL")
    for r in recs:
        click.echo(
            f"{r.number:<16} {r.source or '-':<16} {r.pool or '-':<18} {r.route or '-':<12} "
            f"{r.managed_by:<6} {r.status:<7} {r.label}"
        )


@numbers.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def numbers_show(ctx: Context, number, as_json) -> None:
    """Show one tracking number and its latest calls.

    \b
    Example:
      ctm-pbx numbers show "+1 312 555 0142"
    """
    num = e164(number, ctx.config)
    database = ctx.read_db()
    rec = number_store.get_number(database, num)
    if rec is None:
        declared = any(d.number == num for d in ctx.config.tracking_numbers)
        hint = " (the config declares it: 'ctm-pbx numbers sync' adds it)" if declared else ""
        raise click.ClickException(f"{num} is not in the inventory{hint}")
    recent = call_store.list_calls(database, number=num, limit=5)
    if as_json:
        emit_json({**_record_json(rec), "recent_calls": recent})
        return
    for key, value in _record_json(rec).items():
        click.echo(f"{key + ':':<13} {value if value not in (None, '') else '-'}")
    click.echo(f"{'calls:':<13} {len(recent)} recent")
    for c in recent:
        click.echo(
            f"  #{c['id']} {c['started_at']} {c['caller_number'] or '-'} "
            f"{c['outcome'] or c['status']}"
        )


@numbers.command("assign")
@click.argument("number")
@click.option("--source", help="New tracking source.")
@click.option("--pool", help="New pool (implies its source).")
@click.option("--route", help="New route.")
@click.option("--label", help="New label.")
@pass_ctx
def numbers_assign(ctx: Context, number, source, pool, route, label) -> None:
    """Change a number's source, pool, route or label (others stay as they are).

    \b
    Example:
      ctm-pbx numbers assign "+1 312 555 0142" --route support
    """
    if source is None and pool is None and route is None and label is None:
        raise click.ClickException("nothing to change: give --source, --pool, --route or --label")
    num = e164(number, ctx.config)
    database = ctx.write_db()
    rec = number_store.get_number(database, num)
    if rec is None or rec.status != "active":
        raise click.ClickException(f"{num} is not an active tracking number")
    if rec.managed_by == "config":
        raise click.ClickException(
            f"{num} is declared in the config file (tracking_numbers); change it there"
        )
    if pool is not None:
        new_source, new_pool = source, pool
    elif source is not None:
        new_source, new_pool = source, None  # a new source leaves the old pool
    else:
        new_source, new_pool = rec.source, rec.pool
    a = _checked(ctx, num, new_source, new_pool, route or rec.route)
    new_label = rec.label if label is None else label
    if (a.source, a.pool, a.route, new_label) == (rec.source, rec.pool, rec.route, rec.label):
        raise click.ClickException(
            f"{num} already has source {rec.source}, pool {rec.pool or '-'}, route "
            f"{rec.route}, label '{rec.label}': nothing changed"
        )
    rec = number_store.update_assignment(
        database, num, source=a.source, pool=a.pool, route=a.route, label=label, now=now_iso()
    )
    click.echo(f"{num}: source {rec.source}, pool {rec.pool or '-'}, route {rec.route}")


@numbers.command("release")
@click.argument("number")
@pass_ctx
def numbers_release(ctx: Context, number) -> None:
    """Release a number: calls to it are no longer routed; its history stays.

    \b
    Example:
      ctm-pbx numbers release "+1 312 555 0142"
    """
    num = e164(number, ctx.config)
    number_store.release_number(ctx.write_db(), num, now=now_iso())
    click.echo(f"released {num}")


@numbers.command("sync")
@FORCE
@click.option("--dry-run", is_flag=True, help="Say what the sync would do; change nothing.")
@pass_ctx
def numbers_sync(ctx: Context, force: bool, dry_run: bool) -> None:
    """Sync the numbers declared in the config (tracking_numbers) into the inventory.

    Numbers the config no longer declares are released (and listed); more than
    database.max_release_percent of them only with --force.

    \b
    Example:
      ctm-pbx --config config.yaml numbers sync --dry-run
    """
    if not dry_run:
        _sync(ctx, ctx.write_db(), force=force)
        return
    database = ctx.read_db()
    existing = number_store.all_numbers(database)
    plan = plan_config_sync(ctx.config.tracking_numbers, existing)
    click.echo("dry run, nothing changed; " + _plan_text(plan, "to add", "to update", "to release"))
    for conflict in plan.conflicts:
        click.echo(f"conflict: {conflict}")
    refusal = release_refusal(plan, existing, ctx.config.database.max_release_percent)
    if refusal is not None and not force:
        click.echo(f"refused without --force: {refusal}")
