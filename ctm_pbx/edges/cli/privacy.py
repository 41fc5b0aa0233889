"""``ctm-pbx privacy forget``: a person's data erased on request (what is removed and
what stays: ``adapters/store/privacy.py``)."""

from __future__ import annotations

import contextlib

import click

from ctm_pbx.adapters.store import privacy as erasure
from ctm_pbx.core.phone import InvalidNumber, to_e164
from ctm_pbx.edges import cli as base  # the main group's helpers (it registers this group)


@click.group()
def privacy() -> None:
    """Personal data: erase a person's on request.

    \b
    Example:
      ctm-pbx privacy forget --caller "(312) 555-0142"
    """


@privacy.command("forget")
@click.option(
    "--visitor",
    "visitors",
    multiple=True,
    metavar="ID",
    help="A website visitor's id (the ctm_vid the page stores; calls show it).",
)
@click.option("--caller", "callers", multiple=True, metavar="NUMBER",
              help="A caller's number, written any common way.")  # fmt: skip
@base.pass_ctx
def privacy_forget(ctx: base.Context, visitors: tuple[str, ...], callers: tuple[str, ...]) -> None:
    """Remove a visitor's visits and leases, or make a caller's calls anonymous (their
    number, name, location, keys pressed, comment, recordings and voicemail), and say
    what was done. Calls stay counted in reports (source, route, outcome).

    \b
    Example:
      ctm-pbx privacy forget --visitor 7f3c9a0e2b
      ctm-pbx privacy forget --caller +13125550142
    """
    if not visitors and not callers:
        raise click.UsageError("give --visitor ID or --caller NUMBER (or several)")
    cfg = ctx.config
    database = ctx.write_db()
    problems = []
    for visitor in visitors:
        done = erasure.forget_visitor(database, visitor.strip())
        _say(f"visitor {visitor}", done)
        problems += done.problems
    for caller in callers:
        stored = {caller.strip()}
        with contextlib.suppress(InvalidNumber):  # else stored as the caller ID came
            stored.add(to_e164(caller, cfg.tracking.default_country))
        done = erasure.forget_caller(database, sorted(stored), cfg.asterisk.recordings.readable_dir)
        _say(f"caller {caller}", done)
        problems += done.problems
    if problems:
        raise click.ClickException(
            f"{len(problems)} file(s) could not be deleted; their calls were left as they were"
            " (fix the permissions and run this again):\n  " + "\n  ".join(problems)
        )


def _say(who: str, done: erasure.Erasure) -> None:
    click.echo(f"{who}:")
    for line in done.lines():
        click.echo(f"  {line}")
