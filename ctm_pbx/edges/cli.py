"""The ``ctm-pbx`` command line (click). Wiring only: rules live in core, I/O in adapters."""

from __future__ import annotations

import csv
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import click

from ctm_pbx import __version__
from ctm_pbx.adapters import prompts as prompt_files
from ctm_pbx.adapters.asterisk_conf import render_queues
from ctm_pbx.adapters.config_loader import ConfigError, load_config
from ctm_pbx.adapters.store import StoreError, migrate, open_db
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.core.clock import iso
from ctm_pbx.core.inventory import (
    InventoryError,
    NumberRecord,
    SyncPlan,
    plan_config_sync,
    resolve_assignment,
)
from ctm_pbx.core.model import Config
from ctm_pbx.core.phone import InvalidNumber, to_e164
from ctm_pbx.core.sources import (
    PHASES,
    SourceMatch,
    VisitFacts,
    parse_visit,
    rank_sources,
    resolve_source,
    why_outranked,
)
from ctm_pbx.edges.logs import setup_logging

DEFAULT_CONFIG = "config.yaml"


class Context:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = read_config(self.config_path)
        return self._config

    def db(self):
        """The database, migrated, with the config's numbers synced into the inventory."""
        db = open_db(self.config.database.path)
        migrate(db)
        sync_config_numbers(self.config, db)
        return db


def read_config(path: str) -> Config:
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


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


@db.command("migrate")
@pass_ctx
def db_migrate(ctx: Context) -> None:
    """Create or upgrade the schema, then sync the numbers declared in the config.

    \b
    Example:
      ctm-pbx --config config.yaml db migrate
    """
    database = open_db(ctx.config.database.path)
    applied = migrate(database)
    click.echo(
        f"{ctx.config.database.path}: "
        + (f"applied {', '.join(applied)}" if applied else "schema up to date")
    )
    _sync(ctx, database)


def sync_config_numbers(cfg: Config, database) -> SyncPlan:
    """Make the inventory match the config's ``tracking_numbers`` (every command does)."""
    plan = plan_config_sync(cfg.tracking_numbers, number_store.all_numbers(database))
    if plan.conflicts:
        raise click.ClickException(
            "cannot sync numbers from the config: " + "; ".join(plan.conflicts)
        )
    if plan.changes:
        number_store.apply_sync(database, plan, now=now_iso())
    return plan


def _sync(ctx: Context, database) -> None:
    plan = sync_config_numbers(ctx.config, database)
    click.echo(
        f"config numbers: {len(plan.insert)} added, {len(plan.update)} updated, "
        f"{len(plan.release)} released"
    )


# ---- numbers ---------------------------------------------------------------


@main.group()
def numbers() -> None:
    """Manage tracking numbers (the inventory lives in the database).

    \b
    Example:
      ctm-pbx numbers add "+1 312 555 0142" --source billboard-i90 --route sales
    """


def _assignment(ctx: Context, source, pool, route):
    try:
        return resolve_assignment(ctx.config, source=source, pool=pool, route=route)
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
    a = _assignment(ctx, source, pool, route)
    rec = NumberRecord(num, a.source, a.pool, a.route, label, managed_by="cli")
    try:
        number_store.add_numbers(ctx.db(), [rec], now=now_iso())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {num} (source {a.source}, pool {a.pool or '-'}, route {a.route})")


@numbers.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_ctx
def numbers_import(ctx: Context, csv_file: str) -> None:
    """Add many numbers from a CSV file: all of them, or none if any row is bad.

    Columns (header row required): number, source, pool, route, label.

    \b
    Example:
      ctm-pbx numbers import numbers.csv
    """
    rows, problems = _read_csv(ctx, csv_file)
    if problems:
        raise click.ClickException(
            f"{csv_file}: nothing imported, {len(problems)} bad row(s):\n" + "\n".join(problems)
        )
    try:
        number_store.add_numbers(ctx.db(), rows, now=now_iso())
    except StoreError as exc:
        raise click.ClickException(f"{csv_file}: nothing imported: {exc}") from None
    click.echo(f"imported {len(rows)} number(s) from {csv_file}")


def _read_csv(ctx: Context, csv_file: str) -> tuple[list[NumberRecord], list[str]]:
    try:
        handle = click.open_file(csv_file, encoding="utf-8")  # "-" is stdin
    except OSError as exc:
        raise click.ClickException(f"cannot read {csv_file}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        fields = {f.strip().lower() for f in (reader.fieldnames or [])}
        if "number" not in fields or "route" not in fields:
            raise click.ClickException(
                f"{csv_file}: the header must name at least 'number' and 'route' columns"
            )
        records, problems, seen = [], [], {}
        for row in reader:
            line = reader.line_num
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            try:
                num = to_e164(row.get("number", ""), ctx.config.tracking.default_country)
                if num in seen:
                    raise InventoryError(f"{num} already on line {seen[num]}")
                seen[num] = line
                source, pool = row.get("source") or None, row.get("pool") or None
                if source is None and pool is None:
                    raise InventoryError("needs a source or a pool")
                a = resolve_assignment(
                    ctx.config, source=source, pool=pool, route=row.get("route") or None
                )
                if a.route is None:
                    raise InventoryError("needs a route")
                records.append(
                    NumberRecord(
                        num, a.source, a.pool, a.route, row.get("label", ""), managed_by="cli"
                    )
                )
            except (InvalidNumber, InventoryError) as exc:
                problems.append(f"  line {line}: {exc}")
    return records, problems


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
    recs = number_store.list_numbers(
        ctx.db(), status=None if show_all else "active", source=source, pool=pool, route=route
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
    database = ctx.db()
    rec = number_store.get_number(database, num)
    if rec is None:
        raise click.ClickException(f"{num} is not in the inventory")
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
    num = e164(number, ctx.config)
    database = ctx.db()
    rec = number_store.get_number(database, num)
    if rec is None or rec.status != "active":
        raise click.ClickException(f"{num} is not an active tracking number")
    if pool is not None:
        new_source, new_pool = source, pool
    elif source is not None:
        new_source, new_pool = source, None  # a new source leaves the old pool
    else:
        new_source, new_pool = rec.source, rec.pool
    a = _assignment(ctx, new_source, new_pool, route or rec.route)
    try:
        rec = number_store.update_assignment(
            database, num, source=a.source, pool=a.pool, route=a.route, label=label, now=now_iso()
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
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
    try:
        number_store.release_number(ctx.db(), num, now=now_iso())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"released {num}")


@numbers.command("sync")
@pass_ctx
def numbers_sync(ctx: Context) -> None:
    """Sync the numbers declared in the config (tracking_numbers) into the inventory.

    \b
    Example:
      ctm-pbx --config config.yaml numbers sync
    """
    _sync(ctx, ctx.db())


# ---- pools -----------------------------------------------------------------


@main.group()
def pools() -> None:
    """Number pools: their numbers, how busy they are, and how big they should be.

    \b
    Example:
      ctm-pbx pools stats
    """


def _pool_rows(ctx: Context):
    from ctm_pbx.adapters.store import leases as lease_store
    from ctm_pbx.core.pools import pool_metrics

    database = ctx.db()
    now = datetime.now(UTC)
    for pool in ctx.config.pools.values():
        numbers = lease_store.pool_numbers(database, pool.name)
        view = lease_store.pool_view(database, pool, numbers, now)
        counters = lease_store.pool_counters(database, pool.name)
        stats = pool_metrics(view, now, counters.shares, counters.peak_concurrent)
        daily = lease_store.daily_visitors(database, pool.source, now)
        yield pool, numbers, stats, counters, daily


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
    for _pool, _numbers, stats, counters, daily in _pool_rows(ctx):
        rows.append(
            {
                **stats.__dict__,
                "leases_total": counters.leases,
                "overflows_total": counters.overflows,
                "crawlers_total": counters.crawlers,
                "capped_total": counters.capped,
                "unconfirmed_total": counters.unconfirmed,
                "peak_at": counters.peak_at,
                "since": counters.since,
                "daily_visitors_7d": round(daily, 1),
            }
        )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['pool']}: {r['size']} numbers, {r['held']} held, {r['resting']} resting, "
            f"{r['free']} free ({r['utilisation']:.0%} used); {r['active_leases']} active "
            f"leases, {r['shared_leases']} shared now; since {r['since'] or '-'}: "
            f"{r['leases_total']} leases, {r['shares_total']} shared, "
            f"{r['overflows_total']} overflow, peak {r['peak_concurrent']} at once; "
            f"drain defence: {r['crawlers_total']} crawler views, {r['capped_total']} "
            f"capped, {r['unconfirmed_total']} unconfirmed"
        )


@pools.command("advise")
@click.option(
    "--share-probability",
    default=0.01,
    show_default=True,
    type=float,
    help="Acceptable chance that a new visitor must share a number.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def pools_advise(ctx: Context, share_probability: float, as_json: bool) -> None:
    """Recommend each pool's size from its observed peak and daily visitors.

    Beside CTM's rule of thumb (1 number per 20 daily visitors per source).

    \b
    Example:
      ctm-pbx pools advise --share-probability 0.01
    """
    from ctm_pbx.core.pools import advise

    if not 0 < share_probability < 1:
        raise click.ClickException("--share-probability must be between 0 and 1")
    rows = []
    for pool, numbers, _stats, counters, daily in _pool_rows(ctx):
        advice = advise(counters.peak_concurrent, daily, share_probability)
        rows.append(
            {
                "pool": pool.name,
                "size": len(numbers),
                "peak": counters.peak_concurrent,
                "daily_visitors": round(daily, 1),
                **advice.__dict__,
            }
        )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
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
@click.option("--number", help="Only calls to this tracking number.")
@click.option("--source", help="Only calls from this source.")
@click.option(
    "--outcome",
    type=click.Choice(["answered", "no_answer", "busy", "failed", "abandoned", "unknown"]),
)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def calls_list(ctx: Context, limit, number, source, outcome, as_json) -> None:
    """List calls, newest first.

    \b
    Example:
      ctm-pbx calls list --outcome no_answer --json
    """
    num = e164(number, ctx.config) if number else None
    rows = call_store.list_calls(ctx.db(), limit=limit, number=num, source=source, outcome=outcome)
    if as_json:
        emit_json(rows)
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
    call = call_store.get_call(ctx.db(), call_id)
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
        click.echo(
            f"  candidate visitor {cand['visitor_id']}: p={cand['weight']}, idle "
            f"{cand['idle_minutes']} min{' (active lease)' if cand['active'] else ''}"
        )
    click.echo("route path:")
    for entry in call["path"]:
        click.echo("  " + _path_line(entry))


def _path_line(entry: dict) -> str:
    if "failsafe" in entry:
        return f"{entry['at']}  fail-safe: {entry['failsafe']}"
    if "fallback" in entry:
        to = entry.get("to_route") or entry.get("to_number") or ""
        return (
            f"{entry['at']}  fallback of {entry['from_route']}: {entry['fallback']} {to}".rstrip()
        )
    rings = ", ".join(f"{r['name']}={r['result']}" for r in entry.get("rings", []))
    return (
        f"{entry['started_at']}  step {entry['step']} route {entry.get('route') or '-'}: "
        f"{rings} ({entry['dial_status'] or 'no result'}, rang {entry['ring_seconds']}s)"
    )


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
@pass_ctx
def run(ctx: Context) -> None:
    """Run the daemon: the ARI call router and the web endpoint, until SIGTERM.

    \b
    Example:
      ctm-pbx --config /etc/ctm-pbx/config.yaml run
    """
    from ctm_pbx.edges.daemon import run_daemon

    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    cfg = ctx.config
    database = open_db(cfg.database.path)
    applied = migrate(database)
    if applied:
        click.echo(f"database {cfg.database.path}: applied {', '.join(applied)}", err=True)
    _sync(ctx, database)
    database.conn.close()
    try:
        run_daemon(cfg)
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
