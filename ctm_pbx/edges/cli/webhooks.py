"""``ctm-pbx webhooks …``: the outbox per destination (webhooks and GA4): what waits,
what failed, what was given up; sending failed events again; a test POST.

``list`` and ``show`` only read (the database is opened read-only); ``retry`` changes
the outbox (the running daemon picks it up within a second); ``test`` writes nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import click

from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import outbox
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.core.clock import iso
from ctm_pbx.core.integrations import webhook_body
from ctm_pbx.core.model import Config
from ctm_pbx.edges import cli as base  # the main group's helpers (it registers this group)


def _known(cfg: Config, name: str) -> None:
    if name not in outbox.configured(cfg):
        names = ", ".join(outbox.configured(cfg)) or "none configured"
        raise click.ClickException(f"no destination '{name}' (destinations: {names})")


@click.group()
def webhooks() -> None:
    """The outbox: events sent to webhooks and GA4, per destination.

    \b
    Example:
      ctm-pbx webhooks list
    """


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@base.pass_ctx
def webhooks_list(ctx, as_json: bool) -> None:
    """Each destination: its events by state, the oldest still to send, and whether
    a 410 disabled it.

    \b
    Example:
      ctm-pbx webhooks list --json
    """
    rows = outbox.destination_rows(ctx.read_db(), outbox.configured(ctx.config))
    if as_json:
        base.emit_json(rows)
        return
    if not rows:
        click.echo("no webhooks or GA4 configured, and nothing in the outbox")
        return
    click.echo(
        f"{'DESTINATION':<16} {'PENDING':>7} {'FAILED':>6} {'DEAD':>5} {'DELIVERED':>9}"
        f" {'SKIPPED':>7}  OLDEST OPEN               URL"
    )
    for r in rows:
        click.echo(
            f"{r['destination']:<16} {r['pending']:>7} {r['failed']:>6} {r['dead']:>5}"
            f" {r['delivered']:>9} {r['skipped']:>7}  {r['oldest_open'] or '-':<25} {r['url']}"
        )
        if r["disabled"]:
            click.echo(f"  disabled: {r['disabled']} ('ctm-pbx webhooks retry' enables it)")


@webhooks.command("show")
@click.argument("destination")
@click.option("--state", type=click.Choice(outbox.STATES), help="Only events in this state.")
@click.option("--event", "event_id", help="One event, with its body.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@base.pass_ctx
def webhooks_show(ctx, destination: str, state, event_id, limit: int, as_json: bool) -> None:
    """A destination's events, newest first: state, attempts, the last error.

    \b
    Example:
      ctm-pbx webhooks show crm --state dead
    """
    found = outbox.events(ctx.read_db(), destination, state, limit if not event_id else 10_000)
    if event_id:
        found = [d for d in found if d.event_id == event_id]
        if not found:
            raise click.ClickException(f"no event {event_id} for {destination}")
    rows = [
        {
            "event_id": d.event_id,
            "type": d.event_type,
            "call_id": d.call_id,
            "state": d.state,
            "attempts": d.attempts,
            "created_at": d.created_at,
            "next_attempt_at": d.next_attempt_at if d.state in outbox.OPEN else None,
            "delivered_at": d.delivered_at,
            "last_status": d.last_status,
            "last_error": d.last_error,
        }
        | ({"body": json.loads(d.payload) if d.payload else None} if event_id else {})
        for d in found
    ]
    if as_json:
        base.emit_json(rows)
        return
    if not rows:
        click.echo(f"no events for {destination}" + (f" in state {state}" if state else ""))
        return
    for r in rows:
        when = r["delivered_at"] or r["next_attempt_at"] or ""
        error = f"  {r['last_error']}" if r["last_error"] else ""
        click.echo(
            f"{r['event_id']}  {r['type']:<15} call {r['call_id']!s:<7} {r['state']:<9}"
            f" {r['attempts']} tries  {when}{error}"
        )
        if "body" in r:
            click.echo(json.dumps(r["body"], indent=2, default=str))


@webhooks.command("retry")
@click.argument("destination")
@click.option("--event", "event_id", help="Only this event (in any state).")
@base.pass_ctx
def webhooks_retry(ctx, destination: str, event_id: str | None) -> None:
    """Send a destination's failed and dead events again, from a fresh count of
    attempts and a fresh age (the waiting ones' age too), and enable it again if an
    HTTP 410 disabled it.

    \b
    Example:
      ctm-pbx webhooks retry crm
    """
    _known(ctx.config, destination)
    db = ctx.write_db()
    with atomic(db, "retry"):
        n = outbox.retry(db, destination, base.now_iso(), event_id)
    click.echo(f"{destination}: {n} event{'s' * (n != 1)} to send again")


@webhooks.command("test")
@click.argument("destination")
@base.pass_ctx
def webhooks_test(ctx, destination: str) -> None:
    """POST one signed test event (type ``test``, the latest call as its ``call``)
    to a webhook now, and say what it answered. Writes nothing.

    \b
    Example:
      ctm-pbx webhooks test crm
    """
    cfg = ctx.config
    hook = cfg.webhooks.get(destination)
    if hook is None:
        _known(cfg, destination)
        raise click.ClickException(f"{destination} is not a webhook (GA4 has no test)")
    db = ctx.read_db()
    row = db.execute("SELECT max(id) FROM calls").fetchone()
    call = call_store.get_call(db, row[0]) if row and row[0] is not None else None
    event_id = f"evt_test_{uuid.uuid4().hex}"
    body = webhook_body(event_id, "test", iso(datetime.now(UTC)), call or {})

    import asyncio

    from ctm_pbx.adapters.outbox_delivery import client_session, send_webhook  # aiohttp

    async def send():  # noqa: ANN202
        async with client_session() as session:
            return await send_webhook(session, hook, body, event_id, "test", 1)

    outcome = asyncio.run(send())
    if not outcome.ok:
        raise click.ClickException(f"{destination}: {outcome.error}")
    click.echo(f"{destination}: HTTP {outcome.status}, event {event_id}")
