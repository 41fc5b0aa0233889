"""Load ``config.yaml`` into a validated ``Config``.

Every problem is collected and raised at once as a ``ConfigError`` whose
issues carry the key path and YAML line. The node walking lives in
``yaml_source``; each section's schema in ``config_sections``; this module puts them
together and checks what crosses sections.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ctm_pbx.adapters.config_sections.base import (
    NAMED_SECTIONS,
    TOP_KEYS,
    optional,
)
from ctm_pbx.adapters.config_sections.integrations import IntegrationSections
from ctm_pbx.adapters.config_sections.numbers import NumberSections
from ctm_pbx.adapters.config_sections.routes import RouteSections
from ctm_pbx.adapters.config_sections.schedules import ScheduleSections
from ctm_pbx.adapters.config_sections.settings import SettingsSections
from ctm_pbx.adapters.config_sections.sources import SourceSections
from ctm_pbx.adapters.yaml_source import (
    ConfigError,
    ConfigIssue,
    Issues,
    YNode,
    compose,
)
from ctm_pbx.core.model import (
    AsteriskSettings,
    Config,
    DashboardSettings,
    OutboxSettings,
    ReportSettings,
    TrackingSettings,
    WebSettings,
)
from ctm_pbx.core.retention import RetentionSettings

__all__ = ["ConfigError", "ConfigIssue", "load_config", "parse_config"]

log = logging.getLogger(__name__)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at ``path``; raises ``ConfigError``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        issue = ConfigIssue("", None, f"cannot read config file: {exc}")
        raise ConfigError([issue], str(path)) from None
    return parse_config(text, str(path), env=env, base_dir=file.resolve().parent)


def parse_config(
    text: str,
    path: str = "<string>",
    *,
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Validate config ``text``; ``path`` names it in messages.

    ``env`` resolves ``${VAR}`` (default ``os.environ``); relative paths are taken
    against ``base_dir`` (default: ``path``'s directory, or the working directory).
    """
    issues = Issues(os.environ if env is None else env)
    if base_dir is None:
        base_dir = Path(path).resolve().parent if path != "<string>" else Path.cwd()
    # A large config makes hundreds of thousands of nodes, none of them garbage: the
    # cycle collector would walk them over and over (a third of the time at 10,000
    # tracking numbers). It runs again once the config is built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        root = compose(text, issues)
        config = None
        if not issues.items:
            config = _Builder(issues, Path(base_dir)).build(
                root, None if path == "<string>" else path
            )
    finally:
        if collecting:
            gc.enable()
    if issues.items or config is None:
        raise ConfigError(issues.sorted(), path)
    log.debug("loaded config %s", path)
    return config


class _Builder(
    SettingsSections,
    IntegrationSections,
    SourceSections,
    RouteSections,
    ScheduleSections,
    NumberSections,
):
    """Builds a ``Config`` from the root node, recording problems as it goes: each
    section's builder is in ``config_sections``."""

    def build(self, root: YNode | None, path: str | None) -> Config | None:
        top = {} if root is None else root.mapping(TOP_KEYS)
        if top is None:
            return None
        sections = {name: self._named(top.get(name)) for name in NAMED_SECTIONS}
        tracking = optional(top, "tracking", self._tracking, TrackingSettings())
        self.country = tracking.default_country
        sources = self._each(sections["sources"], self._source)
        targets = self._each(sections["targets"], self._target)
        pools = self._each(sections["pools"], lambda n, v: self._pool(n, v, sources))
        receiving = self._each(sections["receiving_numbers"], self._receiving)
        schedules = self._each(sections["schedules"], self._schedule)
        routes = self._each(sections["routes"], self._route)
        self._check_fallback_cycles()
        web = optional(top, "web", self._web, WebSettings())
        dashboard = optional(top, "dashboard", self._dashboard, DashboardSettings())
        if dashboard.enabled and dashboard.port == web.port and "dashboard" in top:
            entries = top["dashboard"].mapping() or {}
            entries.get("port", top["dashboard"]).error(
                f"the dashboard needs its own port: {web.port} is the visitor API's (web.port)"
            )
        return Config(
            asterisk=optional(top, "asterisk", self._asterisk, AsteriskSettings()),
            database=self._database(top.get("database")),
            web=web,
            tracking=tracking,
            reports=optional(top, "reports", self._reports, ReportSettings()),
            dashboard=dashboard,
            retention=optional(top, "retention", self._retention, RetentionSettings()),
            sources=sources,
            targets=targets,
            pools=pools,
            receiving_numbers=receiving,
            routes=routes,
            schedules=schedules,
            tracking_numbers=self._tracking_numbers(
                top.get("tracking_numbers"), sources, pools, targets, receiving
            ),
            webhooks=self._webhooks(top.get("webhooks")),
            outbox=optional(top, "outbox", self._outbox, OutboxSettings()),
            ga4=optional(top, "ga4", self._ga4, None),
            google_ads=optional(top, "google_ads", self._google_ads, None),
            path=path,
        )
