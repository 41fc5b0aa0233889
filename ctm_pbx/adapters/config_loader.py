"""Load ``config.yaml`` into a validated ``Config``.

Every problem is collected and raised at once as a ``ConfigError`` whose
issues carry the key path and YAML line. The node walking lives in
``yaml_source``; this module holds the schema and the cross-references.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping
from datetime import date
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from ctm_pbx.adapters.yaml_source import (
    ConfigError,
    ConfigIssue,
    Issues,
    YNode,
    compose,
    suggest,
)
from ctm_pbx.core.client_address import parse_networks
from ctm_pbx.core.geo import REGION_NAMES, GeoRule
from ctm_pbx.core.inventory import InventoryError, role_clash, source_of_pool
from ctm_pbx.core.model import (
    EVENT_TYPES,
    AgiSettings,
    AmiSettings,
    AsteriskMode,
    AsteriskSettings,
    Config,
    ConversionValues,
    DashboardSettings,
    DatabaseSettings,
    Fallback,
    FallbackKind,
    Ga4Settings,
    GeoRoute,
    GoogleAdsSettings,
    IvrRoute,
    MatchRule,
    MenuOption,
    MetricsSettings,
    OutboxSettings,
    Pool,
    Prompt,
    QueueRoute,
    QueueSettings,
    QueueStrategy,
    ReceivingNumber,
    RecordingSettings,
    ReportSettings,
    Route,
    RouteOrder,
    RouteTarget,
    RouteType,
    SequentialRoute,
    Source,
    SourceKind,
    Target,
    TrackingNumberDecl,
    TrackingSettings,
    Webhook,
    WebSettings,
)
from ctm_pbx.core.phone import InvalidNumber, to_e164
from ctm_pbx.core.presets import Preset, get_preset, preset_names
from ctm_pbx.core.retention import Age, AgeError, RetentionSettings, parse_age
from ctm_pbx.core.schedules import DAYS, Interval, Schedule, parse_days, parse_intervals
from ctm_pbx.core.tags import TagError, parse_tags

__all__ = ["ConfigError", "ConfigIssue", "load_config", "parse_config"]

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PROMPT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/-]*$")
DEFAULT_DIAL = "PJSIP/{number}@carrier"
DEFAULT_PRIORITY = 50
DIAL_PLACEHOLDERS = ("number", "digits")

NAMED_SECTIONS = ("sources", "targets", "pools", "receiving_numbers", "schedules", "routes")
TOP_KEYS = (
    "asterisk", "database", "web", "dashboard", "tracking", "reports", *NAMED_SECTIONS,
    "tracking_numbers", "retention", "webhooks", "outbox", "ga4", "google_ads",
)  # fmt: skip
WEBHOOK_KEYS = ("url", "secret", "events", "headers", "timeout_seconds")
OUTBOX_KEYS = ("max_attempts", "max_age_hours", "backoff_first_seconds", "backoff_max_seconds")
GA4_KEYS = (
    "measurement_id", "api_secret", "endpoint", "events", "event_name", "value", "values",
    "currency", "timeout_seconds",
)  # fmt: skip
GOOGLE_ADS_KEYS = (
    "conversion_name", "value", "values", "currency", "time_zone", "feed_token",
    "feed_username", "feed_password", "feed_days",
)  # fmt: skip
VALUES_KEYS = ("tags", "routes", "sources")
HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP header name (a token)
# headers the worker sets itself: a destination's own headers may not replace them
RESERVED_HEADERS = {"content-type", "content-length", "host", "x-ctm-signature", "x-ctm-event",
                    "x-ctm-event-id", "x-ctm-attempt"}  # fmt: skip
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MEASUREMENT_ID_RE = re.compile(r"^G-[A-Z0-9]+$")


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


ASTERISK_KEYS = yaml_keys(AsteriskSettings)
RECORDING_KEYS = yaml_keys(RecordingSettings)
AGI_KEYS = yaml_keys(AgiSettings)
AMI_KEYS = yaml_keys(AmiSettings)
DATABASE_KEYS = yaml_keys(DatabaseSettings)
WEB_KEYS = yaml_keys(WebSettings)
TRACKING_KEYS = yaml_keys(TrackingSettings)
REPORT_KEYS = yaml_keys(ReportSettings)
DASHBOARD_KEYS = yaml_keys(DashboardSettings)
METRICS_KEYS = yaml_keys(MetricsSettings)
METRICS_TOKEN_MIN = 16  # characters: a token is a password that no one types
RETENTION_KEYS = yaml_keys(RetentionSettings)
RETENTION_AGES = tuple(key for key in RETENTION_KEYS if key != "purge")
SOURCE_KEYS = yaml_keys(Source, drop=("name",), rename={"rules": "match"})
RULE_KEYS = yaml_keys(MatchRule)
TARGET_KEYS = yaml_keys(Target)
POOL_KEYS = yaml_keys(Pool)
RECEIVING_KEYS = yaml_keys(ReceivingNumber, rename={"dial_string": "dial"})
QUEUE_KEYS = yaml_keys(QueueSettings)
# every kind's fields (the builders say which kind may have which)
ROUTE_KEYS = yaml_keys(
    SequentialRoute,
    GeoRoute,
    IvrRoute,
    QueueSettings,
    rename={"geo_rules": "rules", "menu_timeout": "timeout"},
)
PROMPT_KEYS = ("prompts", "timeout", "attempts")
MENU_KEYS = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"}
IVR_ONLY = ("prompts", "options", "timeout", "attempts", "invalid_prompt")
SCHEDULE_KEYS = yaml_keys(Schedule, rename={"week": "hours"})
GEO_RULE_KEYS = ("states", "area_codes", "zip_prefixes", "route")
ROUTE_TARGET_KEYS = yaml_keys(RouteTarget)
FALLBACK_KEYS = ("route", "number", "receiving_number", "voicemail")
TRACKING_NUMBER_KEYS = yaml_keys(TrackingNumberDecl)


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


def _opt(
    entries: Mapping[str, YNode], key: str, read: Callable[[YNode], T | None], default: T
) -> T:
    """``read`` the optional entry ``key``; ``default`` when absent or wrong."""
    node = entries.get(key)
    if node is None:
        return default
    value = read(node)
    return default if value is None else value


def _req(entries: Mapping[str, YNode], owner: YNode, key: str) -> YNode | None:
    """The required entry ``key`` of ``owner``; records a problem when it is missing."""
    node = entries.get(key)
    if node is None:
        owner.error(f"missing required field '{key}'", line=owner.entry_line)
    return node


class _Builder:
    """Builds a ``Config`` from the root node, recording problems as it goes."""

    def __init__(self, issues: Issues, base_dir: Path) -> None:
        self.issues = issues
        self.base_dir = base_dir
        self.country = "US"
        self.declared: dict[str, set[str]] = {s: set() for s in NAMED_SECTIONS}
        self.numbers: dict[str, dict[str, YNode]] = {"target": {}, "receiving": {}, "tracking": {}}
        self.fallback_refs: dict[str, tuple[str, YNode]] = {}

    def build(self, root: YNode | None, path: str | None) -> Config | None:
        top = {} if root is None else root.mapping(TOP_KEYS)
        if top is None:
            return None
        sections = {name: self._named(top.get(name)) for name in NAMED_SECTIONS}
        tracking = _opt(top, "tracking", self._tracking, TrackingSettings())
        self.country = tracking.default_country
        sources = self._each(sections["sources"], self._source)
        targets = self._each(sections["targets"], self._target)
        pools = self._each(sections["pools"], lambda n, v: self._pool(n, v, sources))
        receiving = self._each(sections["receiving_numbers"], self._receiving)
        schedules = self._each(sections["schedules"], self._schedule)
        routes = self._each(sections["routes"], self._route)
        self._check_fallback_cycles()
        web = _opt(top, "web", self._web, WebSettings())
        dashboard = _opt(top, "dashboard", self._dashboard, DashboardSettings())
        if dashboard.enabled and dashboard.port == web.port and "dashboard" in top:
            entries = top["dashboard"].mapping() or {}
            entries.get("port", top["dashboard"]).error(
                f"the dashboard needs its own port: {web.port} is the visitor API's (web.port)"
            )
        return Config(
            asterisk=_opt(top, "asterisk", self._asterisk, AsteriskSettings()),
            database=self._database(top.get("database")),
            web=web,
            tracking=tracking,
            reports=_opt(top, "reports", self._reports, ReportSettings()),
            dashboard=dashboard,
            retention=_opt(top, "retention", self._retention, RetentionSettings()),
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
            outbox=_opt(top, "outbox", self._outbox, OutboxSettings()),
            ga4=_opt(top, "ga4", self._ga4, None),
            google_ads=_opt(top, "google_ads", self._google_ads, None),
            path=path,
        )

    # -- helpers -------------------------------------------------------------------

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

    # -- settings ------------------------------------------------------------------

    def _tracking(self, node: YNode) -> TrackingSettings | None:
        m = node.mapping(TRACKING_KEYS)
        if m is None:
            return None
        default = TrackingSettings()
        return TrackingSettings(
            default_country=_opt(m, "default_country", self._country, default.default_country),
            first_touch_days=_opt(
                m, "first_touch_days", lambda n: n.integer(1), default.first_touch_days
            ),
            attribution_window_minutes=_opt(
                m,
                "attribution_window_minutes",
                lambda n: n.integer(1),
                default.attribution_window_minutes,
            ),
            max_leases_per_client=_opt(
                m, "max_leases_per_client", lambda n: n.integer(1), default.max_leases_per_client
            ),
            confirm_seconds=_opt(
                m, "confirm_seconds", lambda n: n.integer(20), default.confirm_seconds
            ),
            max_visits_per_day=_opt(
                m, "max_visits_per_day", lambda n: n.integer(1), default.max_visits_per_day
            ),
        )

    def _country(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            node.error(f"unknown country code '{value}' (expected a two-letter code like 'US')")
            return None
        return code

    def _asterisk(self, node: YNode) -> AsteriskSettings | None:
        m = node.mapping(ASTERISK_KEYS)
        if m is None:
            return None
        d = AsteriskSettings()
        return AsteriskSettings(
            ari_url=_opt(m, "ari_url", self._http_url, d.ari_url),
            username=_opt(m, "username", YNode.text, d.username),
            password=_opt(m, "password", YNode.text, d.password),
            app=_opt(m, "app", YNode.text, d.app),
            mode=_opt(m, "mode", _mode, d.mode),
            agi=_opt(m, "agi", self._agi, d.agi),
            ami=_opt(m, "ami", self._ami, d.ami),
            recordings=_opt(m, "recordings", self._recordings, d.recordings),
            call_spool=_opt(m, "call_spool", self._local_path, d.call_spool),
        )

    def _local_path(self, node: YNode) -> str | None:
        """A path as ctm-pbx sees it (relative: to the config file's folder)."""
        value = node.text()
        if value is None:
            return None
        return value if Path(value).is_absolute() else os.path.normpath(self.base_dir / value)

    def _recordings(self, node: YNode) -> RecordingSettings | None:
        m = node.mapping(RECORDING_KEYS)
        if m is None:
            return None
        d = RecordingSettings()
        local = _opt(m, "local_dir", YNode.text, None)
        if local is not None and not Path(local).is_absolute():
            local = os.path.normpath(self.base_dir / local)
        return RecordingSettings(
            dir=_opt(m, "dir", YNode.text, d.dir),
            local_dir=local,
            voicemail_max_seconds=_opt(
                m, "voicemail_max_seconds", lambda n: n.integer(5, 3600), d.voicemail_max_seconds
            ),
        )

    def _agi(self, node: YNode) -> AgiSettings | None:
        m = node.mapping(AGI_KEYS)
        if m is None:
            return None
        d = AgiSettings()
        return AgiSettings(
            host=_opt(m, "host", YNode.text, d.host),
            port=_opt(m, "port", lambda n: n.integer(1, 65535), d.port),
            timeout_ms=_opt(m, "timeout_ms", lambda n: n.integer(50, 60_000), d.timeout_ms),
        )

    def _ami(self, node: YNode) -> AmiSettings | None:
        m = node.mapping(AMI_KEYS)
        if m is None:
            return None
        d = AmiSettings()
        return AmiSettings(
            host=_opt(m, "host", YNode.text, d.host),
            port=_opt(m, "port", lambda n: n.integer(1, 65535), d.port),
            username=_opt(m, "username", YNode.text, d.username),
            secret=_opt(m, "secret", YNode.text, d.secret),
        )

    def _http_url(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            node.error(f"expected an http(s) URL like 'http://127.0.0.1:8088', got '{value}'")
            return None
        return value.rstrip("/")

    def _database(self, node: YNode | None) -> DatabaseSettings:
        m = {} if node is None else node.mapping(DATABASE_KEYS) or {}
        d = DatabaseSettings()
        raw = _opt(m, "path", YNode.text, d.path)
        percent = _opt(m, "max_release_percent", lambda n: n.integer(0, 100), d.max_release_percent)
        if raw == ":memory:":
            return DatabaseSettings(path=raw, max_release_percent=percent)
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        return DatabaseSettings(path=os.path.normpath(path), max_release_percent=percent)

    def _dashboard(self, node: YNode) -> DashboardSettings | None:
        m = node.mapping(DASHBOARD_KEYS)
        if m is None:
            return None
        d = DashboardSettings()
        return DashboardSettings(
            enabled=_opt(m, "enabled", YNode.boolean, d.enabled),
            host=_opt(m, "host", YNode.text, d.host),
            port=_opt(m, "port", lambda n: n.integer(1, 65535), d.port),
            metrics=_opt(m, "metrics", self._metrics, d.metrics),
        )

    def _metrics(self, node: YNode) -> MetricsSettings | None:
        m = node.mapping(METRICS_KEYS)
        if m is None:
            return None
        token = _opt(m, "token", YNode.text, None)
        username = _opt(m, "username", YNode.text, None)
        password = _opt(m, "password", YNode.text, None)
        if token is not None and len(token) < METRICS_TOKEN_MIN:
            m["token"].error(f"a metrics token needs at least {METRICS_TOKEN_MIN} characters")
        if token is not None and (username is not None or password is not None):
            m["token"].error("give a token or a username and password, not both")
        for given, missing in (("username", "password"), ("password", "username")):
            if given in m and missing not in m:
                m[given].error(f"basic auth needs '{missing}' too")
        if username is not None and password is not None and not password:
            m["password"].error("the metrics password is empty")
        return MetricsSettings(
            enabled=_opt(m, "enabled", YNode.boolean, True),
            token=token,
            username=username,
            password=password,
        )

    def _retention(self, node: YNode) -> RetentionSettings | None:
        m = node.mapping(RETENTION_KEYS)
        if m is None:
            return None
        d = RetentionSettings()
        ages = {key: getattr(d, key) for key in RETENTION_AGES}
        for key in RETENTION_AGES:
            if key in m:
                ages[key] = _age(m[key], getattr(d, key))
        return RetentionSettings(**ages, purge=_opt(m, "purge", YNode.boolean, d.purge))

    def _reports(self, node: YNode) -> ReportSettings | None:
        m = node.mapping(REPORT_KEYS)
        if m is None:
            return None
        d = ReportSettings()
        return ReportSettings(
            time_zone=_opt(m, "time_zone", self._time_zone, d.time_zone),
            qualified_min_talk_seconds=_opt(
                m,
                "qualified_min_talk_seconds",
                lambda n: n.integer(0, 86400),
                d.qualified_min_talk_seconds,
            ),
        )

    def _web(self, node: YNode) -> WebSettings | None:
        m = node.mapping(WEB_KEYS)
        if m is None:
            return None
        d = WebSettings()
        return WebSettings(
            host=_opt(m, "host", YNode.text, d.host),
            port=_opt(m, "port", lambda n: n.integer(1, 65535), d.port),
            allowed_origins=_opt(m, "allowed_origins", self._origins, d.allowed_origins),
            trusted_proxies=_opt(m, "trusted_proxies", self._networks, d.trusted_proxies),
            max_connections=_opt(
                m, "max_connections", lambda n: n.integer(1, 1_000_000), d.max_connections
            ),
            max_connections_per_client=_opt(
                m,
                "max_connections_per_client",
                lambda n: n.integer(1, 1_000_000),
                d.max_connections_per_client,
            ),
        )

    def _networks(self, node: YNode) -> tuple[str, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        networks = (self._network(item) for item in items)
        return tuple(n for n in networks if n is not None)

    def _network(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        try:
            (net,) = parse_networks([value])
        except ValueError:
            node.error(f"expected an IP address or network like '10.0.0.0/8', got '{value}'")
            return None
        return str(net)

    def _origins(self, node: YNode) -> tuple[str, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        origins = (self._origin(item) for item in items)
        return tuple(o for o in origins if o is not None)

    def _origin(self, node: YNode) -> str | None:
        """``scheme://host[:port]``, lowercased, without a trailing slash."""
        value = node.text()
        if value is None:
            return None
        parts = urlsplit(value.strip())
        try:
            port = parts.port
        except ValueError:
            port = -1
        bad = (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
            or port == -1
        )
        if bad:
            node.error(
                f"expected an origin like 'https://www.example.com' "
                f"(scheme://host[:port], no path), got '{value}'"
            )
            return None
        suffix = f":{port}" if port is not None else ""
        return f"{parts.scheme}://{parts.hostname}{suffix}".lower()

    # -- integrations (webhooks, the outbox, GA4, Google Ads) ------------------------

    def _webhooks(self, node: YNode | None) -> dict[str, Webhook]:
        if node is None:
            return {}
        out = {}
        for name, value in (node.mapping() or {}).items():
            if not NAME_RE.match(name) or name == "ga4":
                value.error(
                    f"invalid webhook name '{name}': lowercase letters, digits, '-' and '_'"
                    " ('ga4' is the GA4 destination's)",
                    line=value.entry_line,
                )
                continue
            hook = self._webhook(name, value)
            if hook is not None:
                out[name] = hook
        return out

    def _webhook(self, name: str, node: YNode) -> Webhook | None:
        m = node.mapping(WEBHOOK_KEYS)
        if m is None:
            return None
        url_node, secret_node = _req(m, node, "url"), _req(m, node, "secret")
        url = self._webhook_url(url_node) if url_node is not None else None
        secret = secret_node.text() if secret_node is not None else None
        if secret is not None and len(secret) < 16:
            secret_node.error("the secret must be at least 16 characters")  # type: ignore[union-attr]
            secret = None
        d = Webhook(name, "", "")
        events = _opt(m, "events", self._events, d.events)
        headers = _opt(m, "headers", self._headers, d.headers)
        timeout = _opt(m, "timeout_seconds", lambda n: n.integer(1, 300), None)
        if url is None or secret is None:
            return None
        return Webhook(
            name=name,
            url=url,
            secret=secret,
            events=events,
            headers=headers,
            timeout_seconds=float(timeout) if timeout is not None else d.timeout_seconds,
        )

    def _webhook_url(self, node: YNode) -> str | None:
        """An http(s) URL, kept as written (its path may end in '/')."""
        value = node.text()
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            node.error(f"expected an https URL like 'https://crm.example.com/hooks', got '{value}'")
            return None
        return value

    def _events(self, node: YNode) -> tuple[str, ...] | None:
        values = node.text_list()
        if values is None:
            return None
        for value in values:
            if value not in EVENT_TYPES:
                hint = suggest(value, EVENT_TYPES) or f" (one of {', '.join(EVENT_TYPES)})"
                node.error(f"unknown event '{value}'{hint}")
                return None
        if not values:
            node.error("list at least one event")
            return None
        return tuple(dict.fromkeys(values))

    def _headers(self, node: YNode) -> tuple[tuple[str, str], ...] | None:
        m = node.mapping()
        if m is None:
            return None
        out = []
        for key, value in m.items():
            if not HEADER_RE.match(key) or key.lower() in RESERVED_HEADERS:
                value.error(f"'{key}' cannot be a custom header", line=value.entry_line)
                continue
            text = value.text()
            if text is None:
                continue
            if "\r" in text or "\n" in text:
                value.error("a header value must be one line")
                continue
            out.append((key, text))
        return tuple(out)

    def _outbox(self, node: YNode) -> OutboxSettings | None:
        m = node.mapping(OUTBOX_KEYS)
        if m is None:
            return None
        d = OutboxSettings()
        first = _opt(m, "backoff_first_seconds", lambda n: n.integer(1, 3600), None)
        cap = _opt(m, "backoff_max_seconds", lambda n: n.integer(1, 86400), None)
        out = OutboxSettings(
            max_attempts=_opt(m, "max_attempts", lambda n: n.integer(1, 1000), d.max_attempts),
            max_age_hours=_opt(
                m, "max_age_hours", lambda n: n.integer(1, 24 * 90), d.max_age_hours
            ),
            backoff_first_seconds=float(first) if first else d.backoff_first_seconds,
            backoff_max_seconds=float(cap) if cap else d.backoff_max_seconds,
        )
        if out.backoff_max_seconds < out.backoff_first_seconds:
            m.get("backoff_max_seconds", node).error(
                "backoff_max_seconds must be at least backoff_first_seconds"
            )
            return None
        return out

    def _ga4(self, node: YNode) -> Ga4Settings | None:
        m = node.mapping(GA4_KEYS)
        if m is None:
            return None
        mid_node, secret_node = _req(m, node, "measurement_id"), _req(m, node, "api_secret")
        mid = mid_node.text() if mid_node is not None else None
        if mid is not None and not MEASUREMENT_ID_RE.match(mid):
            mid_node.error(f"expected a GA4 measurement id like 'G-ABC123XYZ', got '{mid}'")  # type: ignore[union-attr]
            mid = None
        secret = secret_node.text() if secret_node is not None else None
        d = Ga4Settings("", "")
        name = _opt(m, "event_name", YNode.text, d.event_name)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name):
            m["event_name"].error(
                "a GA4 event name: letters, digits and '_', starting with a letter, at most 40"
            )
            return None
        endpoint = _opt(m, "endpoint", self._http_url, d.endpoint)
        value = _opt(m, "value", self._amount, None)
        values = _opt(m, "values", self._values, d.values)
        currency = _opt(m, "currency", self._currency, d.currency)
        timeout = _opt(m, "timeout_seconds", lambda n: n.integer(1, 300), None)
        events = _opt(m, "events", self._events, d.events)
        if mid is None or secret is None:
            return None
        return Ga4Settings(
            measurement_id=mid,
            api_secret=secret,
            endpoint=endpoint,
            events=events,
            event_name=name,
            value=value,
            values=values,
            currency=currency,
            timeout_seconds=float(timeout) if timeout is not None else d.timeout_seconds,
        )

    def _google_ads(self, node: YNode) -> GoogleAdsSettings | None:
        m = node.mapping(GOOGLE_ADS_KEYS)
        if m is None:
            return None
        name_node = _req(m, node, "conversion_name")
        name = name_node.text() if name_node is not None else None
        d = GoogleAdsSettings("")
        token = _opt(m, "feed_token", YNode.text, None)
        password = _opt(m, "feed_password", YNode.text, None)
        if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{24,128}", token):
            m["feed_token"].error(
                "the feed token is the secret part of the URL: 24 to 128 letters, digits,"
                " '-' or '_' (e.g. from: openssl rand -hex 16)"
            )
            token = None
        if token is not None and not password:
            m["feed_token"].error("feed_token needs feed_password (the feed asks for basic auth)")
            return None
        if password is not None and len(password) < 12:
            m["feed_password"].error("the feed password must be at least 12 characters")
            return None
        out = GoogleAdsSettings(
            conversion_name=name or "",
            value=_opt(m, "value", self._amount, None),
            values=_opt(m, "values", self._values, d.values),
            currency=_opt(m, "currency", self._currency, d.currency),
            time_zone=_opt(m, "time_zone", self._time_zone, None),
            feed_token=token,
            feed_username=_opt(m, "feed_username", YNode.text, d.feed_username),
            feed_password=password,
            feed_days=_opt(m, "feed_days", lambda n: n.integer(1, 90), d.feed_days),
        )
        return out if name else None

    def _values(self, node: YNode) -> ConversionValues | None:
        """``{tags: {tag: amount}, routes: {route: amount}, sources: {source: amount}}``."""
        m = node.mapping(VALUES_KEYS)
        if m is None:
            return None
        tables: dict[str, tuple[tuple[str, float], ...]] = {}
        for key in VALUES_KEYS:
            entries = m[key].mapping() if key in m else {}
            rows = []
            for name, amount_node in (entries or {}).items():
                if key == "tags" and parse_tag_name(name) != name:
                    amount_node.error(
                        f"'{name}' is not a tag as the dashboard writes it (lowercase,"
                        " letters, digits, '-' and '_')",
                        line=amount_node.entry_line,
                    )
                    continue
                if key != "tags" and name not in self.declared[key]:
                    what = key[:-1]
                    amount_node.error(
                        f"unknown {what} '{name}'{suggest(name, self.declared[key])}",
                        line=amount_node.entry_line,
                    )
                    continue
                amount = self._amount(amount_node)
                if amount is not None:
                    rows.append((name, amount))
            tables[key] = tuple(rows)
        return ConversionValues(
            by_tag=tables["tags"], by_route=tables["routes"], by_source=tables["sources"]
        )

    def _amount(self, node: YNode) -> float | None:
        try:
            value = node._construct() if node.is_scalar else None
        except Exception:
            value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            node.expected("an amount (a number, at least 0)")
            return None
        return float(value)

    def _currency(self, node: YNode) -> str | None:
        value = node.text()
        if value is None:
            return None
        if not CURRENCY_RE.match(value):
            node.error(f"expected an ISO 4217 currency code like 'USD', got '{value}'")
            return None
        return value

    # -- sources -------------------------------------------------------------------

    def _source(self, name: str, node: YNode) -> Source | None:
        m = node.mapping(SOURCE_KEYS)
        if m is None:
            return None
        known, preset = self._preset(m)
        kind = self._source_kind(m, node, preset) if known else None
        rules = self._rules(m["match"]) if "match" in m else (preset.rules if preset else ())
        default_priority = preset.priority if preset else DEFAULT_PRIORITY
        priority = _opt(m, "priority", YNode.integer, default_priority)
        last_touch = _opt(m, "last_touch", YNode.boolean, False)
        label = _opt(m, "label", YNode.text, preset.label if preset else "")
        if kind is None or rules is None or not self._rules_fit(kind, rules, m, node):
            return None
        return Source(
            name=name,
            kind=kind,
            priority=priority,
            rules=rules,
            preset=preset.name if preset else None,
            last_touch=last_touch,
            label=label,
        )

    def _preset(self, m: Mapping[str, YNode]) -> tuple[bool, Preset | None]:
        """(known, preset): known is False when a preset is named but does not exist."""
        node = m.get("preset")
        if node is None:
            return True, None
        name = node.text()
        preset = get_preset(name) if name is not None else None
        if preset is None and name is not None:
            names = preset_names()
            node.error(
                f"unknown preset '{name}'{suggest(name, names)}; valid presets: {', '.join(names)}"
            )
        return preset is not None, preset

    def _source_kind(
        self, m: Mapping[str, YNode], node: YNode, preset: Preset | None
    ) -> SourceKind | None:
        """The given kind, else the preset's; required without a preset."""
        if "kind" in m:
            kind = m["kind"].choice([k.value for k in SourceKind])
            return SourceKind(kind) if kind else None
        if preset is None:
            _req(m, node, "kind")
            return None
        return preset.kind

    def _rules_fit(
        self, kind: SourceKind, rules: tuple[MatchRule, ...], m: Mapping[str, YNode], node: YNode
    ) -> bool:
        """Off-site sources have no rules; on-site ones need some."""
        if kind is SourceKind.OFFSITE and rules:
            where = m.get("match") or m.get("kind") or node
            where.error("an offsite source has no match rules (its callers dial a fixed number)")
            return False
        if kind is SourceKind.ONSITE and not rules:
            where = m.get("match") or node
            where.error("an onsite source needs match rules or a preset", line=where.entry_line)
            return False
        return True

    def _rules(self, node: YNode) -> tuple[MatchRule, ...] | None:
        items = [node] if node.is_mapping else node.sequence()
        if items is None:
            return None
        rules = [self._rule(item) for item in items]
        if any(r is None for r in rules):
            return None
        return tuple(r for r in rules if r is not None)

    def _rule(self, node: YNode) -> MatchRule | None:
        m = node.mapping(RULE_KEYS)
        if m is None:
            return None
        before = len(self.issues.items)
        rule = MatchRule(
            landing_params=_opt(m, "landing_params", self._landing_params, ()),
            click_ids=_opt(m, "click_ids", YNode.text_list, ()),
            referrer_hosts=_opt(m, "referrer_hosts", self._hosts, ()),
            referrer_regex=_opt(m, "referrer_regex", self._regex, None),
            landing_regex=_opt(m, "landing_regex", self._regex, None),
            no_referrer=_opt(m, "no_referrer", YNode.boolean, False),
            external_referrer=_opt(m, "external_referrer", YNode.boolean, False),
        )
        raw_keys = len(node.node.value) if node.is_mapping else 0
        clean = len(self.issues.items) == before and len(m) == raw_keys
        if rule == MatchRule() and clean:
            node.error("this match rule has no condition and would match every visit")
        if rule.no_referrer and rule.external_referrer:
            node.error("no_referrer and external_referrer cannot both be true in one rule")
        return rule if len(self.issues.items) == before else None

    def _landing_params(self, node: YNode) -> tuple[tuple[str, str], ...] | None:
        m = node.mapping()
        if m is None:
            return None
        if not m:
            node.error("expected at least one query parameter")
            return None
        pairs = [(key, value.text()) for key, value in m.items()]
        return tuple((k, v) for k, v in pairs if v is not None)

    def _hosts(self, node: YNode) -> tuple[str, ...] | None:
        hosts = node.text_list()
        if hosts is None:
            return None
        bad = [h for h in hosts if not re.fullmatch(r"[A-Za-z0-9.-]+", h.strip())]
        if bad:
            node.error(f"expected bare host names like 'mail.example.com', got '{bad[0]}'")
            return None
        return tuple(h.strip().lower() for h in hosts)

    def _regex(self, node: YNode) -> str | None:
        pattern = node.text()
        if pattern is None:
            return None
        try:
            re.compile(pattern)
        except re.error as exc:
            node.error(f"invalid regular expression: {exc}")
            return None
        return pattern

    # -- numbers -------------------------------------------------------------------

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

    def _target(self, name: str, node: YNode) -> Target | None:
        m: Mapping[str, YNode] | None
        number_node: YNode | None
        if node.is_scalar:
            m, number_node = {}, node
        else:
            m = node.mapping(TARGET_KEYS)
            number_node = _req(m, node, "number") if m is not None else None
        if m is None:
            return None
        number = self._number(number_node) if number_node else None
        label = _opt(m, "label", YNode.text, "")
        if number is None or number_node is None:
            return None
        self._claim("target", number, number_node, ("target",))
        return Target(name=name, number=number, label=label)

    def _pool(self, name: str, node: YNode, sources: Mapping[str, Source]) -> Pool | None:
        m = node.mapping(POOL_KEYS)
        if m is None:
            return None
        source_node = _req(m, node, "source")
        source = self._pool_source(source_node, sources) if source_node else None
        d = Pool(name=name, source="")
        pool = Pool(
            name=name,
            source=source or "",
            target=_opt(m, "target", lambda n: self._ref(n, "targets", "target"), None),
            lease_minutes=_opt(m, "lease_minutes", lambda n: n.integer(1), d.lease_minutes),
            cooldown_minutes=_opt(
                m, "cooldown_minutes", lambda n: n.integer(0), d.cooldown_minutes
            ),
            overflow_number=_opt(
                m, "overflow_number", lambda n: self._number(n, allow_null=True), None
            ),
        )
        target = self.numbers["target"].get(pool.overflow_number or "")
        if target is not None:
            m["overflow_number"].error(
                f"overflow_number {pool.overflow_number} is a target number ({target.path}):"
                f" the site's own number counts no calls; use a tracking number of"
                f" source '{source}' outside any pool"
            )
        return pool if source else None

    def _pool_source(self, node: YNode, sources: Mapping[str, Source]) -> str | None:
        """A declared source that is on-site."""
        source = self._ref(node, "sources", "source")
        known = sources.get(source) if source is not None else None
        if known is not None and known.kind is not SourceKind.ONSITE:
            node.error(f"source '{source}' is offsite; a pool needs an onsite source")
            return None
        return source

    def _receiving(self, name: str, node: YNode) -> ReceivingNumber | None:
        m = node.mapping(RECEIVING_KEYS)
        if m is None:
            return None
        number_node = _req(m, node, "number")
        number = self._number(number_node) if number_node else None
        dial = _opt(m, "dial", self._dial, DEFAULT_DIAL)
        label = _opt(m, "label", YNode.text, "")
        if number is None or number_node is None:
            return None
        self._claim("receiving", number, number_node, ())
        return ReceivingNumber(name=name, number=number, dial=dial, label=label)

    def _dial(self, node: YNode) -> str | None:
        dial = node.text()
        if dial is None:
            return None
        if "/" not in dial:
            node.error(f"expected an Asterisk dial string like '{DEFAULT_DIAL}', got '{dial}'")
            return None
        unknown = [p for p in re.findall(r"\{([^}]*)\}", dial) if p not in DIAL_PLACEHOLDERS]
        if unknown:
            node.error(
                f"unknown placeholder '{{{unknown[0]}}}' in dial string "
                "(use {number} or {digits})"
            )
            return None
        return dial

    # -- routes --------------------------------------------------------------------

    def _route(self, name: str, node: YNode) -> Route | None:
        m = node.mapping(ROUTE_KEYS)
        if m is None:
            return None
        type_node = _req(m, node, "type")
        type_text = type_node.choice([t.value for t in RouteType]) if type_node else None
        if type_text == RouteType.GEO.value:
            return self._geo_route(name, node, m)
        if type_text == RouteType.IVR.value:
            return self._ivr_route(name, node, m)
        targets_node = _req(m, node, "targets")
        for key in ("rules", "ask_zip"):
            if key in m:
                m[key].error(f"'{key}' applies only to geo routes")
        for key in (*IVR_ONLY, "default"):
            if key in m:
                m[key].error(f"'{key}' applies only to ivr (and geo) routes")
        if type_text != RouteType.QUEUE.value:
            for key in QUEUE_KEYS:
                if key in m:
                    m[key].error(f"'{key}' applies only to queue routes")
        targets = self._route_targets(targets_node) if targets_node else None
        order = RouteOrder(
            _opt(
                m,
                "order",
                lambda n: n.choice([o.value for o in RouteOrder]),
                RouteOrder.FIXED.value,
            )
        )
        ring_timeout = _opt(m, "ring_timeout", lambda n: n.integer(1, 600), 20)
        fallback = _opt(m, "fallback", lambda n: self._fallback(name, n), None)
        label = _opt(m, "label", YNode.text, "")
        if type_text is None or targets is None or targets_node is None:
            return None
        schedule, after_hours = self._route_schedule(name, m)
        route_type = RouteType(type_text)
        if not self._route_shape_ok(route_type, order, targets, targets_node, m):
            return None
        common = Route(
            name=name,
            type=route_type,
            targets=targets,
            ring_timeout=ring_timeout,
            fallback=fallback or Fallback(FallbackKind.HANGUP),
            label=label,
            schedule=schedule,
            after_hours=after_hours,
            whisper=_opt(m, "whisper", self._whisper, ()),
            record=_opt(m, "record", YNode.boolean, False),
        )
        if route_type is RouteType.SEQUENTIAL:
            return SequentialRoute(**vars(common), order=order)
        if route_type is RouteType.QUEUE:
            return QueueRoute(**vars(common), queue=self._queue(m))
        return common

    def _whisper(self, node: YNode) -> tuple[tuple[str, str], ...] | None:
        """A prompt for every call, or ``{source: prompt, ..., "*": prompt}``."""
        if node.is_scalar:
            prompt = self._one_prompt(node)
            return (("*", prompt),) if prompt else None
        entries = node.mapping()
        if entries is None:
            return None
        out = []
        for name, value in entries.items():
            if name != "*" and name not in self.declared["sources"]:
                value.error(
                    f"unknown source '{name}'{suggest(name, self.declared['sources'])}"
                    " (or '*' for every other call)",
                    line=value.entry_line,
                )
                return None
            prompt = self._one_prompt(value)
            if prompt is None:
                return None
            out.append((name, prompt))
        return tuple(out)

    def _queue(self, m: Mapping[str, YNode]) -> QueueSettings:
        d = QueueSettings()
        return QueueSettings(
            strategy=QueueStrategy(
                _opt(
                    m,
                    "strategy",
                    lambda n: n.choice([s.value for s in QueueStrategy]),
                    d.strategy.value,
                )
            ),
            max_wait=_opt(m, "max_wait", lambda n: n.integer(1, 86400), d.max_wait),
            max_length=_opt(m, "max_length", lambda n: n.integer(0, 10000), d.max_length),
            wrapup=_opt(m, "wrapup", lambda n: n.integer(0, 3600), d.wrapup),
            announce_every=_opt(m, "announce_every", lambda n: n.integer(0, 3600), 0),
            periodic_prompt=_opt(m, "periodic_prompt", self._one_prompt, None),
            music=_opt(m, "music", YNode.text, d.music),
            priority_by_source=_opt(m, "priority_by_source", self._source_priorities, ()),
            ring_in_use=_opt(m, "ring_in_use", YNode.boolean, False),
        )

    def _source_priorities(self, node: YNode) -> tuple[tuple[str, int], ...] | None:
        entries = node.mapping()
        if entries is None:
            return None
        out = []
        for name, value in entries.items():
            if name not in self.declared["sources"]:
                value.error(
                    f"unknown source '{name}'{suggest(name, self.declared['sources'])}",
                    line=value.entry_line,
                )
                return None
            prio = value.integer(0, 100)
            if prio is None:
                return None
            out.append((name, prio))
        return tuple(out)

    def _route_schedule(
        self, name: str, m: Mapping[str, YNode]
    ) -> tuple[str | None, Fallback | None]:
        schedule = _opt(m, "schedule", lambda n: self._ref(n, "schedules", "schedule"), None)
        after = _opt(m, "after_hours", lambda n: self._fallback(name, n, record=False), None)
        if "after_hours" in m and "schedule" not in m:
            m["after_hours"].error("'after_hours' needs a 'schedule'")
        return schedule, after

    def _geo_route(self, name: str, node: YNode, m: Mapping[str, YNode]) -> Route | None:
        for key in (
            "targets",
            "order",
            "ring_timeout",
            "fallback",
            "whisper",
            "record",
            *IVR_ONLY,
            *QUEUE_KEYS,
        ):
            if key in m:
                m[key].error(f"'{key}' does not apply to geo routes (their rules pick a route)")
        rules_node = _req(m, node, "rules")
        items = rules_node.sequence() if rules_node else None
        rules = [self._geo_rule(item) for item in items or []]
        default = _opt(m, "default", lambda n: self._fallback(name, n, record=False), None)
        schedule, after_hours = self._route_schedule(name, m)
        if items is None or any(r is None for r in rules):
            return None
        if not rules:
            rules_node.error("a geo route needs at least 1 rule")  # type: ignore[union-attr]
            return None
        return GeoRoute(
            name=name,
            type=RouteType.GEO,
            label=_opt(m, "label", YNode.text, ""),
            schedule=schedule,
            after_hours=after_hours,
            geo_rules=tuple(r for r in rules if r is not None),
            default=default,
            ask_zip=_opt(m, "ask_zip", self._prompt, None),
        )

    def _prompt(self, node: YNode) -> Prompt | None:
        m = node.mapping(PROMPT_KEYS)
        if m is None:
            return None
        prompts_node = _req(m, node, "prompts")
        prompts = self._prompt_names(prompts_node) if prompts_node else None
        if not prompts:
            return None
        return Prompt(
            prompts,
            timeout=_opt(m, "timeout", lambda n: n.integer(1, 60), 8),
            attempts=_opt(m, "attempts", lambda n: n.integer(1, 10), 2),
        )

    def _prompt_names(self, node: YNode) -> tuple[str, ...] | None:
        """One sound name or a list: ``ctm-pbx/welcome`` (no extension)."""
        items = node.sequence() if node.is_sequence else [node]
        out = []
        for item in items or []:
            text = item.text()
            if text is None:
                return None
            if not PROMPT_RE.match(text):
                item.error(
                    f"expected a sound name like 'ctm-pbx/welcome' (letters, digits, - _ /, "
                    f"no extension), got '{text}'"
                )
                return None
            out.append(text)
        if not out:
            node.error("expected at least 1 prompt")
            return None
        return tuple(out)

    def _ivr_route(self, name: str, node: YNode, m: Mapping[str, YNode]) -> Route | None:
        for key in ("targets", "order", "rules", "ask_zip", "whisper", "record", *QUEUE_KEYS):
            if key in m:
                m[key].error(f"'{key}' does not apply to ivr routes (their options lead on)")
        prompts_node, options_node = _req(m, node, "prompts"), _req(m, node, "options")
        prompts = self._prompt_names(prompts_node) if prompts_node else None
        options = self._menu_options(name, options_node) if options_node else None
        schedule, after_hours = self._route_schedule(name, m)
        route = IvrRoute(
            name=name,
            type=RouteType.IVR,
            label=_opt(m, "label", YNode.text, ""),
            ring_timeout=_opt(m, "ring_timeout", lambda n: n.integer(1, 600), 20),
            fallback=_opt(m, "fallback", lambda n: self._fallback(name, n), None)
            or Fallback(FallbackKind.HANGUP),
            schedule=schedule,
            after_hours=after_hours,
            prompts=prompts or (),
            options=options or (),
            menu_timeout=_opt(m, "timeout", lambda n: n.integer(1, 60), 5),
            attempts=_opt(m, "attempts", lambda n: n.integer(1, 10), 3),
            invalid_prompt=_opt(m, "invalid_prompt", self._one_prompt, None),
            default=_opt(m, "default", lambda n: self._fallback(name, n, record=False), None),
        )
        return route if prompts and options else None

    def _one_prompt(self, node: YNode) -> str | None:
        names = self._prompt_names(node) if node.is_scalar else None
        if node.is_sequence:
            node.error("expected one sound name")
        return names[0] if names else None

    def _menu_options(self, route: str, node: YNode) -> tuple[MenuOption, ...] | None:
        entries = node.mapping()
        if entries is None:
            return None
        out = []
        for key, value in entries.items():
            if key not in MENU_KEYS:
                value.error(
                    f"menu keys are single keys 0-9, * or #, got '{key}'", line=value.entry_line
                )
                return None
            target = self._fallback(route, value, record=False)
            if target is None:
                return None
            out.append(MenuOption(key, target))
        if not out:
            node.error("an ivr menu needs at least 1 option")
            return None
        return tuple(out)

    def _geo_rule(self, node: YNode) -> GeoRule | None:
        m = node.mapping(GEO_RULE_KEYS)
        if m is None:
            return None
        route_node = _req(m, node, "route")
        target = self._ref(route_node, "routes", "route") if route_node else None
        none: tuple[str, ...] = ()
        states = _opt(m, "states", self._states, none)
        area_codes = _opt(m, "area_codes", lambda n: self._digit_list(n, 3, 3, "area code"), none)
        zips = _opt(m, "zip_prefixes", lambda n: self._digit_list(n, 1, 5, "ZIP prefix"), none)
        if not (states or area_codes or zips) and not any(
            k in m for k in ("states", "area_codes", "zip_prefixes")
        ):
            node.error("a geo rule needs states, area_codes or zip_prefixes")
            return None
        if target is None:
            return None
        return GeoRule(target, states, area_codes, zips)

    def _states(self, node: YNode) -> tuple[str, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        known = set(REGION_NAMES.values())
        out = []
        for item in items:
            code = (item.text() or "").strip().upper()
            if code not in known:
                item.error(f"unknown state or province code '{code}' (expected e.g. IL, NY, ON)")
                return None
            out.append(code)
        return tuple(out)

    def _digit_list(
        self, node: YNode, shortest: int, longest: int, what: str
    ) -> tuple[str, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        out = []
        for item in items:
            text = (item.text() or "").strip()
            if not (text.isdigit() and shortest <= len(text) <= longest):
                size = f"{shortest}" if shortest == longest else f"{shortest} to {longest}"
                article = "an" if what[0] in "aeiou" else "a"
                item.error(f"expected {article} {what} of {size} digits, got '{text}'")
                return None
            out.append(text)
        return tuple(out)

    def _schedule(self, name: str, node: YNode) -> Schedule | None:
        m = node.mapping(SCHEDULE_KEYS)
        if m is None:
            return None
        tz_node, hours_node = _req(m, node, "time_zone"), _req(m, node, "hours")
        tz = self._time_zone(tz_node) if tz_node else None
        week = self._week(hours_node) if hours_node else None
        no_dates: tuple[date, ...] = ()
        holidays = _opt(m, "holidays", self._dates, no_dates)
        label = _opt(m, "label", YNode.text, "")
        if tz is None or week is None:
            return None
        return Schedule(name, tz, week, holidays, label)

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

    def _week(self, node: YNode) -> tuple[tuple[Interval, ...], ...] | None:
        entries = node.mapping()
        if entries is None:
            return None
        week: list[list[Interval]] = [[] for _ in DAYS]
        ok = True
        for key, value in entries.items():
            try:
                days = parse_days(key)
            except ValueError as exc:
                value.error(str(exc), line=value.entry_line)
                ok = False
                continue
            texts = (
                [i.text() for i in value.sequence() or []] if value.is_sequence else [value.text()]
            )
            try:
                intervals = [iv for t in texts if t is not None for iv in parse_intervals(t)]
            except ValueError as exc:
                value.error(str(exc))
                ok = False
                continue
            for day in days:
                week[day].extend(intervals)
        return tuple(tuple(day) for day in week) if ok else None

    def _dates(self, node: YNode) -> tuple[date, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        out = []
        for item in items:
            raw = item.text()
            if raw is None:
                return None
            try:
                out.append(date.fromisoformat(raw.strip()))
            except ValueError:
                item.error(f"expected a date like 2026-12-25, got '{raw}'")
                return None
        return tuple(out)

    def _route_shape_ok(
        self,
        route_type: RouteType,
        order: RouteOrder,
        targets: tuple[RouteTarget, ...],
        targets_node: YNode,
        m: Mapping[str, YNode],
    ) -> bool:
        ok = True
        if route_type is RouteType.SINGLE and len(targets) != 1:
            targets_node.error(f"a single route has exactly 1 target, got {len(targets)}")
            ok = False
        elif not targets:
            targets_node.error(f"a {route_type.value} route needs at least 1 target")
            ok = False
        if order is not RouteOrder.FIXED and route_type is not RouteType.SEQUENTIAL:
            m["order"].error(f"order '{order.value}' applies only to sequential routes")
            ok = False
        return ok

    def _route_targets(self, node: YNode) -> tuple[RouteTarget, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        targets = [self._route_target(item) for item in items]
        seen: set[str] = set()
        for item, target in zip(items, targets, strict=True):
            if target is not None and target.receiving_number in seen:
                item.error(f"receiving number '{target.receiving_number}' is listed twice")
                return None
            seen.add(target.receiving_number if target else "")
        if any(t is None for t in targets):
            return None
        return tuple(t for t in targets if t is not None)

    def _route_target(self, node: YNode) -> RouteTarget | None:
        if not node.is_mapping:
            name = self._ref(node, "receiving_numbers", "receiving number")
            return RouteTarget(name) if name else None
        m = node.mapping(ROUTE_TARGET_KEYS)
        name_node = _req(m, node, "receiving_number") if m is not None else None
        if m is None or name_node is None:
            return None
        name = self._ref(name_node, "receiving_numbers", "receiving number")
        weight = _opt(m, "weight", lambda n: n.integer(1), 1)
        return RouteTarget(name, weight) if name else None

    def _fallback(self, route: str, node: YNode, *, record: bool = True) -> Fallback | None:
        if node.is_scalar:
            word = node.choice(("busy", "hangup"))
            return Fallback(FallbackKind(word)) if word else None
        m = node.mapping(FALLBACK_KEYS)
        if m is None:
            return None
        if len(m) != 1:
            node.error(
                "expected exactly one of 'route', 'number', 'receiving_number' or 'voicemail'"
                " (or busy, hangup)"
            )
            return None
        if "voicemail" in m:
            greeting = self._one_prompt(m["voicemail"])
            return Fallback(FallbackKind.VOICEMAIL, greeting) if greeting else None
        if "route" in m:
            target = self._ref(m["route"], "routes", "route")
            if target and record:
                self.fallback_refs[route] = (target, m["route"])
            return Fallback(FallbackKind.ROUTE, target) if target else None
        if "receiving_number" in m:
            name = self._ref(m["receiving_number"], "receiving_numbers", "receiving number")
            return Fallback(FallbackKind.NUMBER, name) if name else None
        number = self._number(m["number"])
        return Fallback(FallbackKind.NUMBER, number) if number else None

    def _check_fallback_cycles(self) -> None:
        """Report each fallback loop (``sales -> support -> sales``) once."""
        reported: set[frozenset[str]] = set()
        for start in self.fallback_refs:
            chain = [start]
            while chain[-1] in self.fallback_refs:
                nxt = self.fallback_refs[chain[-1]][0]
                if nxt in chain:
                    loop = chain[chain.index(nxt) :] + [nxt]
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        node = self.fallback_refs[loop[0]][1]
                        node.error(f"fallback cycle: {' -> '.join(loop)}")
                    break
                chain.append(nxt)

    # -- tracking numbers ----------------------------------------------------------

    def _tracking_numbers(
        self,
        node: YNode | None,
        sources: Mapping[str, Source],
        pools: Mapping[str, Pool],
        targets: Mapping[str, Target],
        receiving: Mapping[str, ReceivingNumber],
    ) -> tuple[TrackingNumberDecl, ...]:
        items = node.sequence() if node is not None else []
        decls = [
            self._tracking_number(item, sources, pools, targets, receiving) for item in items or []
        ]
        return tuple(d for d in decls if d is not None)

    def _tracking_number(
        self,
        node: YNode,
        sources: Mapping[str, Source],
        pools: Mapping[str, Pool],
        targets: Mapping[str, Target],
        receiving: Mapping[str, ReceivingNumber],
    ) -> TrackingNumberDecl | None:
        m = node.mapping(TRACKING_NUMBER_KEYS)
        if m is None:
            return None
        number_node, route_node = _req(m, node, "number"), _req(m, node, "route")
        number = self._number(number_node) if number_node else None
        route = self._ref(route_node, "routes", "route") if route_node else None
        source, pool = self._tracking_source(node, m, pools)
        label = _opt(m, "label", YNode.text, "")
        if number is not None and number_node is not None:
            clash = role_clash(number, targets, receiving)  # the CLI's rule too
            if clash is not None:
                first = self.numbers[clash.role][number]
                number_node.error(f"{clash} ({first.path}, line {first.line})")
                return None
            self._claim("tracking", number, number_node, ("tracking",))
        if number is None or route is None or source is None:
            return None
        return TrackingNumberDecl(number=number, source=source, pool=pool, route=route, label=label)

    def _tracking_source(
        self, node: YNode, m: Mapping[str, YNode], pools: Mapping[str, Pool]
    ) -> tuple[str | None, str | None]:
        """The number's (source, pool): a source given directly, or taken from its pool."""
        source = _opt(m, "source", lambda n: self._ref(n, "sources", "source"), None)
        if "pool" not in m:
            if "source" not in m:
                node.error("missing required field 'source' (or 'pool')", line=node.entry_line)
            return source, None
        pool_name = self._ref(m["pool"], "pools", "pool")
        pool = pools.get(pool_name or "")
        if pool is None:
            return None, None
        try:
            return source_of_pool(source, pool), pool.name
        except InventoryError as exc:
            m["source"].error(f"{exc}; leave source out")
            return None, None


def _age(node: YNode, default: Age | None) -> Age | None:
    """An age (``30d``, ``13mo``, ...) or ``forever`` (also ``null``): the default if wrong."""
    if node.is_null:
        return None
    value = node.text()
    if value is None:
        return default
    try:
        return parse_age(value)
    except AgeError as exc:
        node.error(str(exc))
        return default


def parse_tag_name(name: str) -> str | None:
    """The tag as the dashboard stores it, or None if it cannot be one."""
    try:
        tags = parse_tags(name)
    except TagError:
        return None
    return tags[0] if len(tags) == 1 else None


def _mode(node: YNode) -> AsteriskMode | None:
    value = node.choice([m.value for m in AsteriskMode])
    return None if value is None else AsteriskMode(value)
