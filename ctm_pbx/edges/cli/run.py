"""``ctm-pbx run``: the daemon, after the database is migrated and the numbers synced."""

from __future__ import annotations

import logging

import click

from ctm_pbx.edges.cli import (
    FORCE,
    Context,
    _migrate,
    _sync,
    pass_ctx,
)

# ---- run -------------------------------------------------------------------


@click.command("run")
@FORCE
@pass_ctx
def run(ctx: Context, force: bool) -> None:
    """Run the daemon: the ARI call router and the web endpoint, until SIGTERM.

    Creates the database if missing, migrates it and syncs the config's numbers
    first; refuses to start if that would release more than
    database.max_release_percent of them (a wrong --config?) unless --force.

    \b
    Example:
      ctm-pbx --config /etc/ctm-pbx/config.yaml run
    """
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    cfg = ctx.config

    def say(text: str) -> None:
        click.echo(text, err=True)

    database = ctx.create_db(say)
    try:
        applied = _migrate(ctx, database, echo=say)
        if applied:
            say(f"database {cfg.database.path}: applied {', '.join(applied)}")
        _sync(ctx, database, force=force, echo=say)
    finally:
        database.conn.close()
    # imported only now: a wrong config or database is said without waiting for the web stack
    from ctm_pbx.edges.daemon import run_daemon

    try:
        run_daemon(cfg)
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
