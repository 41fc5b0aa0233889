"""Voice menus (ivr routes) and ZIP prompts (geo routes): what to play, what keys mean.

ARI mode plays a prompt with ``Read()`` and hands the keys here; the answer says
whether to play again, give up to the menu's default, or go where an option points.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctm_pbx.core.call.actions import CollectDigits
from ctm_pbx.core.call.path import MenuEntry, ZipEntry
from ctm_pbx.core.geo import Location, ZipLookup, locate_zip, valid_zip
from ctm_pbx.core.model import Fallback, FallbackKind, GeoRoute, IvrRoute, Menu


def prompt(route: Menu, *, invalid: bool = False) -> CollectDigits:
    """Play the menu (or the ZIP prompt) and take the caller's keys."""
    if isinstance(route, GeoRoute):
        ask = route.ask_zip
        assert ask is not None
        return CollectDigits(ask.prompts, 5, ask.timeout)
    prompts = route.prompts
    if invalid and route.invalid_prompt:
        prompts = (route.invalid_prompt, *prompts)
    return CollectDigits(prompts, 1, route.menu_timeout, pound_ends=False)


@dataclass(frozen=True)
class MenuAnswer:
    """What keys mean: ``target`` to go to, or (``target`` None) play the menu again
    (``invalid``: after a wrong key). ``entry``: the path entry (None: a replay)."""

    entry: MenuEntry | None
    target: Fallback | None = None
    invalid: bool = False
    chosen: str = ""  # the key of the option taken


def answer(menu: IvrRoute, digits: str, attempts: int, at: str) -> MenuAnswer:
    """The keys pressed in ``menu`` (``""``: none in time); ``attempts``: the failed
    tries before this one."""
    if digits == "*" and not any(o.key == "*" for o in menu.options):
        return MenuAnswer(None)  # star replays the menu
    option = next((o for o in menu.options if o.key == digits), None) if digits else None
    if option is not None:
        entry = MenuEntry(menu.name, digits, at, to=_describe(option.target))
        return MenuAnswer(entry, option.target, chosen=digits)
    entry = MenuEntry(menu.name, digits or None, at, result="timeout" if not digits else "invalid")
    if attempts + 1 < menu.attempts:
        return MenuAnswer(entry, None, invalid=bool(digits))
    return MenuAnswer(entry, menu.default or Fallback(FallbackKind.HANGUP))


@dataclass(frozen=True)
class ZipAnswer:
    """A ZIP code keyed in: where it puts the caller (None: not a ZIP we know), whether
    to ask again."""

    entry: ZipEntry
    where: Location | None
    ask_again: bool


def zip_answer(
    menu: GeoRoute, digits: str, attempts: int, at: str, lookup: ZipLookup | None
) -> ZipAnswer:
    where = locate_zip(digits, lookup) if valid_zip(digits) and lookup else None
    if where is not None:
        return ZipAnswer(ZipEntry(menu.name, digits, at), where, False)
    ask = menu.ask_zip
    again = ask is not None and attempts + 1 < ask.attempts
    return ZipAnswer(ZipEntry(menu.name, digits or None, at, valid=False), None, again)


def _describe(target: Fallback) -> str:
    return target.kind.value if target.value is None else f"{target.kind.value}:{target.value}"
