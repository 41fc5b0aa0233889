"""``ctm-pbx users …``: who may log in to the dashboard. Passwords are asked for
(twice, hidden) or read from standard input with ``--password-stdin``, never taken
from the command line, where other users of the machine could read them."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from ctm_pbx.adapters.store import users as user_store
from ctm_pbx.core.users import Role, UserError
from ctm_pbx.edges import cli as base  # the main group's helpers (it registers this group)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def users() -> None:
    """Dashboard users: admins (edit tags and notes) and viewers.

    \b
    Example:
      ctm-pbx users add alice --role admin
    """


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="viewer",
              show_default=True)  # fmt: skip
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def users_add(ctx, name: str, role: str, password_stdin: bool) -> None:
    """Add a user; the password is asked for.

    \b
    Example:
      ctm-pbx users add alice --role admin
    """
    db = ctx.write_db()
    try:
        user_store.add_user(db, name, _password(password_stdin), Role(role), datetime.now(UTC))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {role} {name}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def users_passwd(ctx, name: str, password_stdin: bool) -> None:
    """Set a user's password (their sessions end).

    \b
    Example:
      ctm-pbx users passwd alice
    """
    try:
        user_store.set_password(ctx.write_db(), name, _password(password_stdin), datetime.now(UTC))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password of {name} changed; their sessions ended")


@users.command("remove")
@click.argument("name")
@click.pass_obj
def users_remove(ctx, name: str) -> None:
    """Remove a user (their sessions end).

    \b
    Example:
      ctm-pbx users remove alice
    """
    try:
        user_store.remove_user(ctx.write_db(), name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed {name}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_obj
def users_list(ctx, as_json: bool) -> None:
    """List the users.

    \b
    Example:
      ctm-pbx users list
    """
    rows = user_store.list_users(ctx.read_db())
    if as_json:
        base.emit_json(rows)
        return
    if not rows:
        click.echo("no users (add one with: ctm-pbx users add NAME --role admin)")
        return
    width = max(len("NAME"), *(len(r["name"]) for r in rows))
    click.echo(f"{'NAME':<{width}}  {'ROLE':<6}  CREATED")
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['role']:<6}  {r['created_at']}")
