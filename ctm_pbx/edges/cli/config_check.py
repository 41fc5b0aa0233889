"""``ctm-pbx config check``: the config file, and the inventory under it."""

from __future__ import annotations

import click

from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store import (
    open_readonly,
)
from ctm_pbx.adapters.store.db import (
    MissingDatabase,
)
from ctm_pbx.core.inventory import (
    cli_number_problems,
)
from ctm_pbx.core.model import Config
from ctm_pbx.edges.cli import (
    Context,
    pass_ctx,
    read_config,
)

# ---- config ----------------------------------------------------------------


@click.group()
def config() -> None:
    """Check the configuration.

    \b
    Example:
      ctm-pbx config check config.yaml
    """


@config.command("check")
@click.argument("path", required=False)
@pass_ctx
def config_check(ctx: Context, path: str | None) -> None:
    """Validate a config file and report every problem with its key path and line.

    The numbers added with the CLI (in the database, if it exists) are checked
    against the config too: their sources, pools and routes exist, and none is
    a target or receiving number. Nothing is written.

    \b
    Example:
      ctm-pbx config check config.example.yaml
    """
    path = path or ctx.config_path
    cfg = read_config(path)
    click.echo(
        f"{path}: OK ({len(cfg.sources)} sources, {len(cfg.targets)} targets, "
        f"{len(cfg.pools)} pools, {len(cfg.receiving_numbers)} receiving numbers, "
        f"{len(cfg.routes)} routes, {len(cfg.tracking_numbers)} tracking numbers declared)"
    )
    sends = [f"webhook {name} ({', '.join(h.events)})" for name, h in cfg.webhooks.items()]
    sends += ["GA4 " + cfg.ga4.measurement_id] if cfg.ga4 else []
    sends += ["Google Ads conversions"] if cfg.google_ads else []
    if sends:
        click.echo("integrations: " + "; ".join(sends))
    _check_inventory(cfg)


def _check_inventory(cfg: Config) -> None:
    """The database's CLI-added numbers under ``cfg``; an error lists those that do not fit."""
    dbpath = cfg.database.path
    try:
        database = open_readonly(dbpath)
    except MissingDatabase:
        click.echo(f"database {dbpath}: not created yet ('ctm-pbx db migrate' creates it)")
        return
    try:
        if "tracking_numbers" not in database.table_names():
            click.echo(f"database {dbpath}: no ctm-pbx tables yet ('ctm-pbx db migrate')")
            return
        # only these can be wrong under a config (the config's own are checked above)
        cli_added = number_store.list_numbers(database, managed_by="cli")
    finally:
        database.conn.close()
    records = {r.number: r for r in cli_added}
    problems = cli_number_problems(cfg, records)
    if problems:
        raise click.ClickException(
            f"database {dbpath}: {len(problems)} number(s) added with the CLI do not fit "
            "this config:\n" + "\n".join(f"  {p}" for p in problems)
        )
    click.echo(f"database {dbpath}: OK ({len(records)} numbers added with the CLI fit the config)")
