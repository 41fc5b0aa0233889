"""The ``ctm-pbx`` command line (click): the main group, what every command shares
(``Context``: the config, the database read-only or for writing), the ``db`` group,
and the registration of the command groups, one module each. Wiring only: rules
live in core, I/O in adapters."""

from __future__ import annotations

import importlib
import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
import sqlite_utils

from ctm_pbx import __version__
from ctm_pbx.adapters.config_loader import ConfigError, load_config
from ctm_pbx.adapters.store import (
    StoreError,
    migrate,
    open_db,
    open_readonly,
    summaries,
)
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store.db import (
    MissingDatabase,
    create_database,
    describe,
    restrict_permissions,
)
from ctm_pbx.adapters.store.schema import pending, refuse_newer, unknown
from ctm_pbx.core.clock import iso
from ctm_pbx.core.inventory import (
    SyncPlan,
    plan_config_sync,
    release_refusal,
)
from ctm_pbx.core.model import Config
from ctm_pbx.core.phone import InvalidNumber, to_e164
from ctm_pbx.edges.logs import setup_logging

DEFAULT_CONFIG = "config.yaml"

log = logging.getLogger(__name__)


class Context:
    """What the commands share: the config, read once, and the ways to open the database.

    Commands that only read use ``read_db`` (read-only: they change nothing,
    whatever the config says); the commands that exist to change the inventory
    use ``write_db``; only ``db migrate`` and ``run`` use ``create_db``.
    """

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = read_config(self.config_path)
        return self._config

    @property
    def db_path(self) -> str:
        return self.config.database.path

    def read_db(self) -> sqlite_utils.Database:
        """The database opened read-only; a schema older or newer than the code is said."""
        database = self._open(open_readonly)
        if "tracking_numbers" not in database.table_names():
            raise click.ClickException(
                f"database {self.db_path} has no ctm-pbx tables: create them with "
                "'ctm-pbx db migrate'"
            )
        todo, newer = pending(database), unknown(database)
        if todo:
            click.echo(
                f"warning: database {self.db_path}: its schema is older than this ctm-pbx "
                f"({', '.join(todo)} not applied): run 'ctm-pbx db migrate'",
                err=True,
            )
        if newer:
            click.echo(
                f"warning: database {self.db_path} was upgraded by a newer ctm-pbx "
                f"({', '.join(newer)}): upgrade ctm-pbx",
                err=True,
            )
        return database

    def write_db(self) -> sqlite_utils.Database:
        """The database for a change: it must exist and have this code's schema."""
        database = self._open(lambda path: open_db(path, create=False))
        refuse_newer(database, self.db_path)
        todo = pending(database)
        if todo:
            database.conn.close()
            raise click.ClickException(
                f"database {self.db_path}: its schema is older than this ctm-pbx"
                f" ({', '.join(todo)} not applied): run 'ctm-pbx db migrate' first"
            )
        return database

    def create_db(self, echo) -> sqlite_utils.Database:
        """The database, created if missing (``db migrate``, ``run``), saying what was made."""
        for note in create_database(self.db_path):
            echo(note)
        database = open_db(self.db_path, create=False)  # first: is it a database at all?
        _close_at_exit(database)
        refuse_newer(database, self.db_path)
        for note in restrict_permissions(self.db_path):
            echo(f"other users' access removed: {note}")
        return database

    def _open(self, opener) -> sqlite_utils.Database:
        try:
            database = opener(self.db_path)
        except MissingDatabase as exc:
            raise click.ClickException(
                f"{exc} (database.path in {self.config_path}); 'ctm-pbx db migrate' creates it"
            ) from None
        _close_at_exit(database)
        return database


def _close_at_exit(database: sqlite_utils.Database) -> None:
    """Close when the command ends: the last writer's close merges the WAL into the file."""
    current = click.get_current_context(silent=True)
    if current is not None:
        current.call_on_close(database.conn.close)


def read_config(path: str) -> Config:
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise click.ClickException(
            f"{path}: no such file (give --config PATH or set CTM_PBX_CONFIG)"
        ) from None
    except IsADirectoryError:
        raise click.ClickException(f"{path}: is a folder, not a config file") from None
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        return load_config(path)
    except ConfigError as exc:
        problems = len(exc.errors)
        head = f"{path}: invalid configuration ({problems} problem{'s' * (problems != 1)})"
        raise click.ClickException(head + "\n" + str(exc)) from None


def now_iso() -> str:
    return iso(datetime.now(UTC))


def e164(text: str, config: Config) -> str:
    try:
        return to_e164(text, config.tracking.default_country)
    except InvalidNumber as exc:
        raise click.ClickException(str(exc)) from None


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


pass_ctx: Callable[[Callable[..., Any]], Callable[..., Any]] = click.make_pass_decorator(Context)


def _known_name(kind: str, value: str | None, known: set) -> None:
    """A filter must name something that exists (in the config or the database)."""
    if value is not None and value not in known:
        names = ", ".join(sorted(n for n in known if n)) or "none"
        raise click.ClickException(f"unknown {kind} '{value}' (known: {names})")


class _LazyGroup(click.Group):
    """A group whose commands live in their own modules, imported when named.

    A command pays only for its own imports (``config check`` does not load the web
    stack); ``--help`` imports every module, to show each command's help line.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}  # command name -> "module:attribute", under ctm_pbx.edges.cli

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            found = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
            self.add_command(found, cmd_name)
        return self.commands.get(cmd_name)


class _Commands(_LazyGroup):
    """The command group that turns every failure into one line and exit status 1.

    Store and SQLite errors are said with the database's name; anything else
    (a bug) is one line too, its traceback logged at debug level (``-v``).
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            obj = ctx.obj if isinstance(ctx.obj, Context) else None
            path = obj.db_path if obj is not None and obj._config is not None else "?"
            raise click.ClickException(describe(exc, path)) from None
        except Exception as exc:
            log.debug("internal error", exc_info=True)
            raise click.ClickException(
                f"internal error: {type(exc).__name__}: {exc} (run with -v to see where)"
            ) from None


# the command groups, each in its own module (they use the helpers here)
COMMANDS = {
    "config": "config_check:config",
    "prompts": "asterisk_files:prompts",
    "asterisk": "asterisk_files:asterisk_group",
    "numbers": "numbers:numbers",
    "pools": "pools:pools",
    "calls": "calls:calls",
    "sources": "sources:sources_group",
    "run": "run:run",
    "report": "reports:report",
    "users": "users:users",
    "demo": "demo:demo",
    "privacy": "privacy:privacy",
    "webhooks": "webhooks:webhooks",
    "ads": "ads:ads",
}
DB_COMMANDS = {
    "purge": "database:db_purge",
    "backup": "database:db_backup",
    "restore": "database:db_restore",
}


@click.group(cls=_Commands, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="CTM_PBX_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    metavar="PATH",
    help="The YAML configuration (or set CTM_PBX_CONFIG).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(__version__, prog_name="ctm-pbx")
@click.pass_context
def main(ctx: click.Context, config_path: str, verbose: bool) -> None:
    """ctm-pbx: self-hosted call tracking for Asterisk.

    \b
    Example:
      ctm-pbx --config /etc/ctm-pbx/config.yaml numbers list
    """
    setup_logging(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = Context(config_path)


# ---- db --------------------------------------------------------------------


@main.group(cls=_LazyGroup, lazy=DB_COMMANDS)
def db() -> None:
    """Manage the SQLite database.

    \b
    Example:
      ctm-pbx db migrate
    """


FORCE: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--force",
    is_flag=True,
    help="Release numbers the config no longer declares even beyond database.max_release_percent.",
)


@db.command("migrate")
@FORCE
@pass_ctx
def db_migrate(ctx: Context, force: bool) -> None:
    """Create (if missing) or upgrade the database, then sync the config's numbers.

    The only command, with ``run``, that creates the database (mode 0600).

    \b
    Example:
      ctm-pbx --config config.yaml db migrate
    """
    database = ctx.create_db(click.echo)
    applied = _migrate(ctx, database)
    click.echo(
        f"{ctx.db_path}: " + (f"applied {', '.join(applied)}" if applied else "schema up to date")
    )
    _sync(ctx, database, force=force)


def _migrate(ctx: Context, database: sqlite_utils.Database, echo=click.echo) -> list[str]:
    """Apply pending migrations, after a backup of the database as it was (when it had
    a schema); a failure says which were applied and which was undone."""
    from ctm_pbx.edges.cli.database import backup_before_migrate

    todo = pending(database)
    if todo:
        backup_before_migrate(ctx, database, echo)
    try:
        return migrate(database)
    except sqlite3.Error as exc:
        left = pending(database)
        done = [name for name in todo if name not in left]
        applied = f"applied {', '.join(done)}" if done else "applied nothing"
        failed = left[0] if left else "the last"
        raise click.ClickException(
            f"{describe(exc, ctx.db_path)}; {applied}; {failed} was rolled back:"
            " fix that and run 'ctm-pbx db migrate' again"
        ) from None


def sync_config_numbers(cfg: Config, database, *, force: bool = False) -> SyncPlan:
    """Make the inventory match the config's ``tracking_numbers``.

    Only ``db migrate``, ``numbers sync`` and ``run`` do. Refused when it would
    release more than ``database.max_release_percent`` of the config's numbers,
    unless ``force``.
    """
    existing = number_store.all_numbers(database)
    plan = plan_config_sync(cfg.tracking_numbers, existing)
    if plan.conflicts:
        raise click.ClickException(
            "cannot sync numbers from the config: " + "; ".join(plan.conflicts)
        )
    refusal = None if force else release_refusal(plan, existing, cfg.database.max_release_percent)
    if refusal is not None:
        raise click.ClickException(f"not syncing the config's numbers: {refusal}")
    if plan.changes:
        number_store.apply_sync(database, plan, now=now_iso())
    return plan


def _sync(ctx: Context, database, *, force: bool, echo=click.echo) -> None:
    plan = sync_config_numbers(ctx.config, database, force=force)
    echo(_plan_text(plan, "added", "updated", "released"))
    with database.conn:  # the reports' summary counts the configured qualified calls
        minimum = ctx.config.reports.qualified_min_talk_seconds
        if summaries.sync_rule(database, minimum):
            echo(f"report summaries rebuilt: qualified calls now talk >= {minimum:g} s")


def _plan_text(plan: SyncPlan, added: str, updated: str, released: str) -> str:
    text = (
        f"config numbers: {len(plan.insert)} {added}, {len(plan.update)} {updated}, "
        f"{len(plan.release)} {released}"
    )
    if plan.release:
        text += f" ({', '.join(plan.release)}: calls to them are no longer routed)"
    return text
