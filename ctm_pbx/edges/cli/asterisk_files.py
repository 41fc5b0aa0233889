"""``ctm-pbx prompts build`` and ``ctm-pbx asterisk queues``: the files Asterisk plays and
reads; ``ctm-pbx asterisk handover``: the calls a dead daemon left in its Stasis app, to
the fail-safe."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import click

from ctm_pbx.adapters import prompts as prompt_files
from ctm_pbx.adapters.asterisk_conf import render_queues
from ctm_pbx.core.model import Config
from ctm_pbx.edges.cli import (
    Context,
    pass_ctx,
    read_config,
)

# ---- prompts ---------------------------------------------------------------


@click.group()
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


@click.group("asterisk")
def asterisk_group() -> None:
    """Asterisk configuration derived from config.yaml; the calls a dead daemon left.

    \b
    Example:
      ctm-pbx asterisk queues --out /etc/asterisk/queues_ctm.conf
      ctm-pbx asterisk handover     # systemd's ExecStopPost=
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


@asterisk_group.command("handover")
@click.option(
    "--force", is_flag=True, help="Even while a ctm-pbx daemon answers on the config's web port."
)
@pass_ctx
def asterisk_handover(ctx: Context, force: bool) -> None:
    """Send the calls waiting in ctm-pbx's Stasis app to the dialplan fail-safe.

    Run it when `ctm-pbx run` has stopped (the systemd unit's ExecStopPost= does, also
    after a crash): a call that was in the app when the daemon died waits there, in
    silence, until the daemon is back; this rings the fail-safe for it, as Stasis()
    does at once for the calls that arrive meanwhile. Their rows come from the call
    spool. While the daemon runs it would take its calls from under it, so it refuses
    when the config's daemon answers on its web port (`--force`: all the same).

    \b
    Example:
      ctm-pbx asterisk handover
    """
    config = ctx.config
    if not config.asterisk.uses_ari:
        click.echo("AGI mode: no Stasis app, nothing to hand over")
        return
    if not force and _daemon_answers(config):
        raise click.ClickException(
            f"a ctm-pbx daemon answers on {config.web.host}:{config.web.port}: its calls are"
            " its own (stop it first, or --force)"
        )
    moved = asyncio.run(_hand_over(config))
    click.echo(f"{len(moved)} calls handed to the fail-safe")


def _daemon_answers(config: Config) -> bool:
    """Whether a ctm-pbx daemon of this config is up: its ``/healthz/live`` answers."""
    from ctm_pbx.edges.web_listener import SERVER_NAME  # what its answers say they are

    host = config.web.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - the listener's, not ours to bind
        host = "127.0.0.1"
    url = f"http://{host}:{config.web.port}/healthz/live"
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our own URL
            return resp.headers.get("Server") == SERVER_NAME
    except urllib.error.HTTPError as exc:
        return exc.headers.get("Server") == SERVER_NAME
    except (OSError, ValueError):
        return False


async def _hand_over(config: Config) -> list[str]:
    import aiohttp  # the web stack: only for this command (``ctm-pbx --help`` needs none)

    from ctm_pbx.adapters.ari_calls import hand_over  # the call handling: only here
    from ctm_pbx.adapters.ari_client import AriClient, AriError

    a = config.asterisk
    ari = AriClient(a.ari_url, a.username, a.password, a.app)
    await ari.start()
    try:
        return await hand_over(ari)
    except (AriError, aiohttp.ClientError, TimeoutError) as exc:
        raise click.ClickException(f"ARI at {a.ari_url}: {exc}") from None
    finally:
        await ari.close()
