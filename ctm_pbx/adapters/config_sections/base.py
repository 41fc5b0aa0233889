"""What every section of ``config.yaml`` is read with: the builder's state (names declared
per section, numbers claimed per role), names, references, phone numbers, and the keys
of a section taken from the fields of the dataclasses it builds.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from ctm_pbx.adapters.yaml_source import (
    Issues,
    YNode,
    suggest,
)
from ctm_pbx.core.phone import InvalidNumber, to_e164

T = TypeVar("T")


def yaml_keys(
    *classes: type, drop: Collection[str] = ("name",), rename: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The keys of a YAML section: the fields of the dataclasses it builds, in order
    (``rename``: field -> key where they differ; ``drop``: fields no key sets)."""
    rename = rename or {}
    keys: list[str] = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            key = rename.get(f.name, f.name)
            if f.name not in drop and key not in keys:
                keys.append(key)
    return tuple(keys)


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
NAMED_SECTIONS = ("sources", "targets", "pools", "receiving_numbers", "schedules", "routes")
TOP_KEYS = (
    "asterisk", "database", "web", "dashboard", "tracking", "reports", *NAMED_SECTIONS,
    "tracking_numbers", "retention", "webhooks", "outbox", "ga4", "google_ads",
)  # fmt: skip


def optional(
    entries: Mapping[str, YNode], key: str, read: Callable[[YNode], T | None], default: T
) -> T:
    """``read`` the optional entry ``key``; ``default`` when absent or wrong."""
    node = entries.get(key)
    if node is None:
        return default
    value = read(node)
    return default if value is None else value


def required(entries: Mapping[str, YNode], owner: YNode, key: str) -> YNode | None:
    """The required entry ``key`` of ``owner``; records a problem when it is missing."""
    node = entries.get(key)
    if node is None:
        owner.error(f"missing required field '{key}'", line=owner.entry_line)
    return node


class SectionBuilder:
    """The state every section builder shares, and the helpers they all use."""

    def __init__(self, issues: Issues, base_dir: Path) -> None:
        self.issues = issues
        self.base_dir = base_dir
        self.country = "US"
        self.declared: dict[str, set[str]] = {s: set() for s in NAMED_SECTIONS}
        self.numbers: dict[str, dict[str, YNode]] = {"target": {}, "receiving": {}, "tracking": {}}
        self.fallback_refs: dict[str, tuple[str, YNode]] = {}

    def _named(self, node: YNode | None) -> dict[str, YNode]:
        """A name-keyed section; names are checked and remembered for references."""
        if node is None:
            return {}
        entries = node.mapping() or {}
        section = node.path
        for name, value in entries.items():
            if not NAME_RE.match(name):
                value.error(
                    f"invalid name '{name}': use lowercase letters, digits, '-' and '_', "
                    "starting with a letter or digit",
                    line=value.entry_line,
                )
            self.declared[section].add(name)
        return entries

    def _each(
        self, entries: Mapping[str, YNode], build: Callable[[str, YNode], T | None]
    ) -> dict[str, T]:
        built = {name: build(name, node) for name, node in entries.items()}
        return {name: value for name, value in built.items() if value is not None}

    def _number(self, node: YNode, *, allow_null: bool = False) -> str | None:
        """A phone number in E.164."""
        raw = node.text(allow_null=allow_null)
        if raw is None:
            return None
        try:
            return to_e164(raw, self.country)
        except InvalidNumber as exc:
            node.error(str(exc))
            return None

    def _ref(self, node: YNode, section: str, what: str) -> str | None:
        """A name that must be declared in ``section``."""
        name = node.text()
        if name is None:
            return None
        known = self.declared[section]
        if name not in known:
            node.error(f"unknown {what} '{name}'{suggest(name, known)}")
            return None
        return name

    def _claim(self, kind: str, number: str, node: YNode, clashes: tuple[str, ...]) -> None:
        """Remember ``number``; report it if already used by one of ``clashes``."""
        for other in clashes:
            first = self.numbers[other].get(number)
            if first is not None:
                node.error(
                    f"duplicate number {number}: already used by {first.path} (line {first.line})"
                )
                return
        self.numbers[kind].setdefault(number, node)

    def _http_url(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            node.error(f"expected an http(s) URL like 'http://127.0.0.1:8088', got '{value}'")
            return None
        return value.rstrip("/")

    def _local_path(self, node: YNode) -> str | None:
        """A path as ctm-pbx sees it (relative: to the config file's folder)."""
        value = node.text()
        if value is None:
            return None
        return value if Path(value).is_absolute() else os.path.normpath(self.base_dir / value)

    def _time_zone(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            node.error(f"unknown time zone '{value}' (expected an IANA name like America/Chicago)")
            return None
        return value

    def _country(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            node.error(f"unknown country code '{value}' (expected a two-letter code like 'US')")
            return None
        return code
