"""The ``ctm-pbx`` command line (click). Wiring only: rules live in core, I/O in adapters."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import sqlite_utils

from ctm_pbx import __version__
from ctm_pbx.adapters import prompts as prompt_files
from ctm_pbx.adapters.asterisk_conf import render_queues
from ctm_pbx.adapters.config_loader import ConfigError, load_config
from ctm_pbx.adapters.number_csv import CsvError, read_rows
from ctm_pbx.adapters.store import (
    StoreError,
    call_search,
    migrate,
    open_db,
    open_readonly,
    summaries,
)
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store.db import (
    MissingDatabase,
    create_database,
    describe,
    restrict_permissions,
)
from ctm_pbx.adapters.store.schema import pending, refuse_newer, unknown
from ctm_pbx.core.call import path as call_path
from ctm_pbx.core.clock import iso
from ctm_pbx.core.inventory import (
    InventoryError,
    NumberRecord,
    SyncPlan,
    check_cli_number,
    check_rows,
    cli_number_problems,
    plan_config_sync,
    release_refusal,
)
from ctm_pbx.core.model import Config
from ctm_pbx.core.phone import InvalidNumber, to_e164
from ctm_pbx.core.reports import Filters, ReportError, parse_period
from ctm_pbx.core.sources import (
    PHASES,
    SourceMatch,
    VisitFacts,
    parse_visit,
    rank_sources,
    resolve_source,
    why_outranked,
)
from ctm_pbx.edges.cli_options import filter_options, period_options, zone
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


class _Commands(click.Group):
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


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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


# ---- config ----------------------------------------------------------------


@main.group()
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
        records = number_store.all_numbers(database)
    finally:
        database.conn.close()
    problems = cli_number_problems(cfg, records)
    if problems:
        raise click.ClickException(
            f"database {dbpath}: {len(problems)} number(s) added with the CLI do not fit "
            "this config:\n" + "\n".join(f"  {p}" for p in problems)
        )
    cli = sum(1 for r in records.values() if r.managed_by == "cli" and r.status == "active")
    click.echo(f"database {dbpath}: OK ({cli} numbers added with the CLI fit the config)")


# ---- prompts ---------------------------------------------------------------


@main.group()
def prompts() -> None:
    """Voice prompts for IVR menus.

    \b
    Example:
      ctm-pbx prompts build                 # ivr_prompts/prompts.yaml -> ivr_prompts/*.wav
    """


@prompts.command("build")
@click.option(
    "--texts",
    "texts_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("ivr_prompts/prompts.yaml"),
    show_default=True,
    help="YAML mapping of prompt name to the text to speak.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the WAV files go (default: beside the texts file).",
)
@click.option("--voice", default="en-us", show_default=True, help="An espeak-ng voice.")
@click.option("--speed", default=150, show_default=True, help="Words per minute.")
@click.argument("names", nargs=-1)
def prompts_build(
    texts_path: Path, out_dir: Path | None, voice: str, speed: int, names: tuple[str, ...]
) -> None:
    """Speak prompt texts into 8 kHz mono WAV files (espeak-ng and sox).

    \b
    Example:
      ctm-pbx prompts build --texts my-prompts.yaml --out /usr/share/asterisk/sounds/ctm-pbx
      ctm-pbx prompts build main-menu invalid     # only these
    """
    try:
        texts = prompt_files.read_texts(texts_path)
        unknown = sorted(set(names) - set(texts))
        if unknown:
            raise click.ClickException(f"not in {texts_path}: {', '.join(unknown)}")
        prompt_files.check_tools()
        target = out_dir or texts_path.parent
        target.mkdir(parents=True, exist_ok=True)
        for name in names or tuple(texts):
            built = prompt_files.build_prompt(name, texts[name], target, voice=voice, speed=speed)
            click.echo(f"{built.path}  {built.seconds:.1f} s")
    except (prompt_files.PromptError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


# ---- asterisk --------------------------------------------------------------


@main.group("asterisk")
def asterisk_group() -> None:
    """Asterisk configuration derived from config.yaml.

    \b
    Example:
      ctm-pbx asterisk queues --out /etc/asterisk/queues_ctm.conf
    """


@asterisk_group.command("queues")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (default: standard output).",
)
@pass_ctx
def asterisk_queues(ctx: Context, out_path: Path | None) -> None:
    """The queues of queue routes, for Asterisk's queues.conf (#tryinclude queues_ctm.conf).

    \b
    Example:
      ctm-pbx asterisk queues --out /etc/asterisk/queues_ctm.conf
      asterisk -rx "queue reload all"
    """
    text = render_queues(read_config(ctx.config_path))
    if out_path is None:
        click.echo(text, nl=False)
        return
    try:
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out_path}: {exc}") from None
    click.echo(f"wrote {out_path}", err=True)


# ---- db --------------------------------------------------------------------


@main.group()
def db() -> None:
    """Manage the SQLite database.

    \b
    Example:
      ctm-pbx db migrate
    """


FORCE = click.option(
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


# ---- numbers ---------------------------------------------------------------


@main.group()
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


def _known_name(kind: str, value: str | None, known: set) -> None:
    """A filter must name something that exists (in the config or the database)."""
    if value is not None and value not in known:
        names = ", ".join(sorted(n for n in known if n)) or "none"
        raise click.ClickException(f"unknown {kind} '{value}' (known: {names})")


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


# ---- pools -----------------------------------------------------------------


@main.group()
def pools() -> None:
    """Number pools: their numbers, how busy they are, and how big they should be.

    \b
    Example:
      ctm-pbx pools stats
    """


STATS_PERIOD = timedelta(days=7)  # what `pools stats|advise` read of the history


def _pool_rows(ctx: Context):
    from ctm_pbx.adapters.store import leases as lease_store
    from ctm_pbx.core.pools import pool_metrics, pool_traffic

    database = ctx.read_db()
    now = datetime.now(UTC)
    for pool in ctx.config.pools.values():
        numbers = lease_store.pool_numbers(database, pool.name)
        view = lease_store.pool_view(database, pool, numbers, now)
        counters = lease_store.pool_counters(database, pool.name)
        traffic = pool_traffic(
            lease_store.pool_leases(database, numbers, now - STATS_PERIOD, now),
            now - STATS_PERIOD,
            now,
        )
        # shares and peak as pages open, not as leases in their tail
        stats = pool_metrics(view, now, traffic.shared, traffic.peak_open)
        daily = lease_store.daily_visitors(database, pool.source, now)
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

    With a target, the pool's stored visits of the last 7 days are handed out
    again on pools of other sizes (the real hand-out and scorer), with calls at
    the delays its calls had (each spread over its candidates); the answer is the smallest size that
    reaches the target. Without one: the peak sizing beside CTM's rule of thumb.

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
            for metric, target in wanted.items():
                sized = replay_advice(ctx.read_db(), ctx.config, pool, numbers, metric, target, now)
                row["targets"][metric] = {
                    "target": target,
                    "size": sized.size,
                    "reached": round(sized.reached, 4),
                    "margin": round(sized.margin, 4),
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


# ---- calls -----------------------------------------------------------------


@main.group()
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


# ---- sources ---------------------------------------------------------------


@main.group("sources")
def sources_group() -> None:
    """Inspect tracking sources and test which one a visit is credited to.

    \b
    Example:
      ctm-pbx sources explain --landing "https://www.example.com/?gclid=abc"
    """


@sources_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def sources_list(ctx: Context, as_json: bool) -> None:
    """List the configured sources in the order they are checked (by priority).

    \b
    Example:
      ctm-pbx sources list --json
    """
    rows = [
        {
            "name": s.name,
            "kind": s.kind.value,
            "priority": s.priority,
            "preset": s.preset,
            "last_touch": s.last_touch,
            "label": s.label,
            "rules": len(s.rules),
        }
        for s in sorted(ctx.config.sources.values(), key=lambda s: (s.priority, s.name))
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no sources configured")
        return
    click.echo(
        f"{'NAME':<20} {'KIND':<8} {'PRIORITY':>8} {'PRESET':<15} {'LAST_TOUCH':<10} "
        f"{'RULES':>5}  LABEL"
    )
    for r in rows:
        click.echo(
            f"{r['name']:<20} {r['kind']:<8} {r['priority']:>8} {r['preset'] or '-':<15} "
            f"{'yes' if r['last_touch'] else 'no':<10} {r['rules']:>5}  {r['label']}"
        )


def _visit_summary(facts: VisitFacts) -> str:
    seen = [f"click id {c}" for c in facts.click_ids]
    seen += [f"{k}={v}" for k, v in facts.params if k.startswith("utm_")]
    return ", ".join(seen) or "no click ids or UTM tags"


def _match_json(match: SourceMatch, winner: SourceMatch) -> dict:
    data = dict(match.__dict__)
    data["winner"] = match == winner
    data["lost_because"] = None if match == winner else why_outranked(winner, match)
    return data


@sources_group.command("explain")
@click.option("--landing", required=True, metavar="URL", help="The page the visitor landed on.")
@click.option("--referrer", metavar="URL", help="The page they came from (none: direct).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def sources_explain(ctx: Context, landing: str, referrer: str | None, as_json: bool) -> None:
    """Show which source a visit is credited to, by which rule, and what else matched.

    Landing-URL rules (click ids, UTM tags) are checked before referrer rules,
    and those before direct; within a phase the lower priority wins.

    \b
    Example:
      ctm-pbx sources explain --landing "https://www.example.com/?gclid=abc" \\
          --referrer https://www.google.com/
    """
    facts = parse_visit(landing, referrer)
    ranked = rank_sources(ctx.config.sources, facts)
    decision = resolve_source(ctx.config.sources, facts)
    if as_json:
        emit_json(
            {
                "source": decision.source,
                "rule": decision.rule,
                "phase": decision.phase,
                "matches": [_match_json(m, ranked[0]) for m in ranked],
                "visit": {**facts.__dict__, "params": dict(facts.params)},
            }
        )
        return
    ref = "none"
    if facts.referrer is not None:
        ref = f"{facts.referrer} ({'external' if facts.external_referrer else 'same site'})"
    elif referrer:
        ref = "unreadable, treated as none"
    click.echo(f"landing:  {facts.landing_url or 'unreadable, treated as absent'}")
    click.echo(f"referrer: {ref}")
    click.echo(f"seen:     {_visit_summary(facts)}")
    if decision.source is None:
        click.echo("source:   none: no source matched this visit")
        return
    click.echo(f"source:   {decision.source}")
    click.echo(f"rule:     {decision.rule}")
    click.echo(f"phase:    {decision.phase} (order: {' > '.join(PHASES)}; then priority)")
    others = ranked[1:]
    click.echo("also matched:" + ("" if others else " none"))
    for m in others:
        click.echo(
            f"  {m.source:<20} {m.phase:<9} priority {m.priority:<4} {m.rule}"
            f"  [{why_outranked(ranked[0], m)}]"
        )


# ---- run -------------------------------------------------------------------


@main.command("run")
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
    from ctm_pbx.edges.daemon import run_daemon

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
    try:
        run_daemon(cfg)
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


# command groups in their own modules; they use the helpers above (the call-log
# filters and period options are the reports' own)
from ctm_pbx.edges.cli_ads import ads  # noqa: E402
from ctm_pbx.edges.cli_db import backup_before_migrate, db_backup, db_purge, db_restore  # noqa: E402
from ctm_pbx.edges.cli_demo import demo  # noqa: E402
from ctm_pbx.edges.cli_privacy import privacy  # noqa: E402
from ctm_pbx.edges.cli_reports import report  # noqa: E402
from ctm_pbx.edges.cli_users import users  # noqa: E402
from ctm_pbx.edges.cli_webhooks import webhooks  # noqa: E402

for _group in (report, users, demo, privacy, webhooks, ads):
    main.add_command(_group)
for _command in (db_purge, db_backup, db_restore):
    db.add_command(_command)
