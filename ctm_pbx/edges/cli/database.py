"""``ctm-pbx db purge|backup|restore``: retention, backups, and the backup ``db migrate``
takes first. The ``db`` group itself (with ``migrate``) is in ``edges.cli``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import click
import sqlite_utils

from ctm_pbx.adapters.store import backup as backups
from ctm_pbx.adapters.store import retention
from ctm_pbx.adapters.store.schema import pending, version
from ctm_pbx.core.clock import iso
from ctm_pbx.core.retention import Age, RetentionSettings, cutoffs
from ctm_pbx.edges import cli as base  # the main group's helpers (it registers these)

log = logging.getLogger(__name__)


def _kept(age: Age | None) -> str:
    return "for ever" if age is None else age.words


def _policy(settings: RetentionSettings, now: datetime) -> list[str]:
    cut = cutoffs(settings, now)
    rows = (
        ("visitors' IP addresses and user agents", settings.visitor_details, cut.visitor_details),
        ("visits, their page views and leases", settings.visits, cut.visits),
        ("calls", settings.calls, cut.calls),
        ("recordings", settings.recordings, cut.recordings),
        ("voicemail messages", settings.voicemail, cut.voicemail),
    )
    return [
        f"  {what}: kept {_kept(age)}" + (f" (due: before {iso(at)})" if at else "")
        for what, age, at in rows
    ]


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what is due; change nothing.")
@base.pass_ctx
def db_purge(ctx: base.Context, dry_run: bool) -> None:
    """Blank and delete what is older than the config's ``retention`` keeps.

    The daemon does this once a day (retention.purge); this runs it now. IP
    addresses and user agents are blanked, visits (with their page views and
    leases) deleted, calls, recordings and voicemail files deleted by age, in
    short batches (the daemon's calls are written between them).

    \b
    Example:
      ctm-pbx db purge --dry-run
    """
    cfg = ctx.config
    now = datetime.now(UTC)
    cut = cutoffs(cfg.retention, now)
    click.echo("retention (config 'retention'):")
    for line in _policy(cfg.retention, now):
        click.echo(line)
    if dry_run:
        database = ctx.read_db()
        if pending(database):  # what it counts with (m018's indexes) is not there yet
            raise click.ClickException(
                f"database {ctx.db_path}: run 'ctm-pbx db migrate' first (its schema is older)"
            )
        counts = retention.due(database, cut)
        click.echo("would remove (dry run, nothing changed):")
        for line in counts.lines():
            click.echo(f"  {line}")
        return
    database = ctx.write_db()
    counts, problems = retention.purge(
        retention.paced(retention.committing(database)), cut, cfg.asterisk.recordings.readable_dir
    )
    click.echo("removed:")
    for line in counts.lines():
        click.echo(f"  {line}")
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if problems[10:] else [])
        raise click.ClickException(
            f"{len(problems)} file(s) could not be deleted (their calls keep them):\n  "
            + "\n  ".join(shown)
        )


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@base.pass_ctx
def db_backup(ctx: base.Context, file: str) -> None:
    """Copy the database to FILE, consistent while the daemon runs (SQLite's online
    backup). FILE must not exist; it is created mode 0600 (it holds what the
    database holds).

    \b
    Example:
      ctm-pbx db backup /var/backups/ctm-pbx/ctm-$(date +%F).db
    """
    info = backups.backup(ctx.db_path, file)
    click.echo(
        f"backed up {ctx.db_path} to {info.path} ({info.bytes:,} bytes, schema {info.version},"
        f" {info.calls:,} calls)"
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@base.pass_ctx
def db_restore(ctx: base.Context, file: str, yes: bool) -> None:
    """Replace the database with the backup FILE. Refused while any process has the
    database open: stop the daemon first. The database it replaces is kept next to it.

    \b
    Example:
      systemctl stop ctm-pbx
      ctm-pbx db restore /var/backups/ctm-pbx/ctm-2026-12-01.db
      systemctl start ctm-pbx
    """
    target = ctx.db_path
    if backups.in_use(target):
        raise click.ClickException(
            f"database {target} is in use (a ctm-pbx daemon, the dashboard or a command"
            " has it open): stop the daemon first (systemctl stop ctm-pbx)"
        )
    info = backups.check(file, newer_ok=False)
    if not yes:
        click.confirm(
            f"Replace {target} with {file} (schema {info.version}, {info.calls:,} calls)?",
            abort=True,
        )
    restored, kept = backups.restore(target, file, datetime.now(UTC))
    click.echo(f"restored {file} to {target} (schema {restored.version}, {restored.calls:,} calls)")
    if kept:
        click.echo(f"the database it replaced is kept as {kept}")
    database = ctx.read_db()
    if pending(database):
        click.echo("its schema is older than this ctm-pbx: 'ctm-pbx db migrate' upgrades it")


def backup_before_migrate(ctx: base.Context, database: sqlite_utils.Database, echo) -> None:
    """The backup ``db migrate`` (and ``run``) take before applying migrations, next to
    the database, named by its schema and the time (``core``: ``backup_name``)."""
    if ctx.db_path == ":memory:":
        return
    current = version(database)
    if current == "empty":  # a new database: nothing to keep
        return
    name = backups.backup_name(ctx.db_path, current, datetime.now(UTC))
    info = backups.backup(ctx.db_path, name)
    echo(
        f"backed up the database (schema {current}) to {info.path} before migrating"
        f" (to undo the upgrade: ctm-pbx db restore {info.path})"
    )
