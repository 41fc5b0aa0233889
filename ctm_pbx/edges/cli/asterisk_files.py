"""``ctm-pbx prompts build`` and ``ctm-pbx asterisk queues``: the files Asterisk plays and
reads; ``ctm-pbx asterisk handover``: the calls a dead daemon left in its Stasis app, to
the fail-safe."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import click

from ctm_pbx.adapters import prompts as prompt_files
from ctm_pbx.adapters.ari_client import AriClient, AriError
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
@pass_ctx
def asterisk_handover(ctx: Context) -> None:
    """Send the calls waiting in ctm-pbx's Stasis app to the dialplan fail-safe.

    Run it when `ctm-pbx run` has stopped (the systemd unit's ExecStopPost= does, also
    after a crash): a call that was in the app when the daemon died waits there, in
    silence, until the daemon is back; this rings the fail-safe for it, as Stasis()
    does at once for the calls that arrive meanwhile. Their rows come from the call
    spool. While the daemon runs, it would take its calls from under it.

    \b
    Example:
      ctm-pbx asterisk handover
    """
    config = ctx.config
    if not config.asterisk.uses_ari:
        click.echo("AGI mode: no Stasis app, nothing to hand over")
        return
    try:
        moved = asyncio.run(_hand_over(config))
    except (AriError, aiohttp.ClientError, TimeoutError) as exc:
        raise click.ClickException(f"ARI at {config.asterisk.ari_url}: {exc}") from None
    click.echo(f"{len(moved)} calls handed to the fail-safe")


async def _hand_over(config: Config) -> list[str]:
    from ctm_pbx.adapters.ari_calls import hand_over  # the call handling: only here

    a = config.asterisk
    ari = AriClient(a.ari_url, a.username, a.password, a.app)
    await ari.start()
    try:
        return await hand_over(ari)
    finally:
        await ari.close()
