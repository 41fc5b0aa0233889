"""The settings sections of ``config.yaml``: tracking, asterisk (with recordings, AGI
and AMI), database, web, dashboard, metrics, reports and retention.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ctm_pbx.adapters.config_sections.base import (
    SectionBuilder,
    optional,
    yaml_keys,
)
from ctm_pbx.adapters.yaml_source import YNode
from ctm_pbx.core.client_address import parse_networks
from ctm_pbx.core.model import (
    AgiSettings,
    AmiSettings,
    AsteriskMode,
    AsteriskSettings,
    DashboardSettings,
    DatabaseSettings,
    MetricsSettings,
    RecordingSettings,
    ReportSettings,
    TrackingSettings,
    WebSettings,
)
from ctm_pbx.core.retention import Age, AgeError, RetentionSettings, parse_age

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


class SettingsSections(SectionBuilder):
    """Builds the settings sections (see the module's docstring)."""

    def _tracking(self, node: YNode) -> TrackingSettings | None:
        m = node.mapping(TRACKING_KEYS)
        if m is None:
            return None
        default = TrackingSettings()
        return TrackingSettings(
            default_country=optional(m, "default_country", self._country, default.default_country),
            first_touch_days=optional(
                m, "first_touch_days", lambda n: n.integer(1), default.first_touch_days
            ),
            attribution_window_minutes=optional(
                m,
                "attribution_window_minutes",
                lambda n: n.integer(1),
                default.attribution_window_minutes,
            ),
            max_leases_per_client=optional(
                m, "max_leases_per_client", lambda n: n.integer(1), default.max_leases_per_client
            ),
            confirm_seconds=optional(
                m, "confirm_seconds", lambda n: n.integer(20), default.confirm_seconds
            ),
            max_visits_per_day=optional(
                m, "max_visits_per_day", lambda n: n.integer(1), default.max_visits_per_day
            ),
        )

    def _asterisk(self, node: YNode) -> AsteriskSettings | None:
        m = node.mapping(ASTERISK_KEYS)
        if m is None:
            return None
        d = AsteriskSettings()
        return AsteriskSettings(
            ari_url=optional(m, "ari_url", self._http_url, d.ari_url),
            username=optional(m, "username", YNode.text, d.username),
            password=optional(m, "password", YNode.text, d.password),
            app=optional(m, "app", YNode.text, d.app),
            mode=optional(m, "mode", _mode, d.mode),
            agi=optional(m, "agi", self._agi, d.agi),
            ami=optional(m, "ami", self._ami, d.ami),
            recordings=optional(m, "recordings", self._recordings, d.recordings),
            call_spool=optional(m, "call_spool", self._local_path, d.call_spool),
        )

    def _recordings(self, node: YNode) -> RecordingSettings | None:
        m = node.mapping(RECORDING_KEYS)
        if m is None:
            return None
        d = RecordingSettings()
        local = optional(m, "local_dir", YNode.text, None)
        if local is not None and not Path(local).is_absolute():
            local = os.path.normpath(self.base_dir / local)
        return RecordingSettings(
            dir=optional(m, "dir", YNode.text, d.dir),
            local_dir=local,
            voicemail_max_seconds=optional(
                m, "voicemail_max_seconds", lambda n: n.integer(5, 3600), d.voicemail_max_seconds
            ),
        )

    def _agi(self, node: YNode) -> AgiSettings | None:
        m = node.mapping(AGI_KEYS)
        if m is None:
            return None
        d = AgiSettings()
        return AgiSettings(
            host=optional(m, "host", YNode.text, d.host),
            port=optional(m, "port", lambda n: n.integer(1, 65535), d.port),
            timeout_ms=optional(m, "timeout_ms", lambda n: n.integer(50, 60_000), d.timeout_ms),
        )

    def _ami(self, node: YNode) -> AmiSettings | None:
        m = node.mapping(AMI_KEYS)
        if m is None:
            return None
        d = AmiSettings()
        return AmiSettings(
            host=optional(m, "host", YNode.text, d.host),
            port=optional(m, "port", lambda n: n.integer(1, 65535), d.port),
            username=optional(m, "username", YNode.text, d.username),
            secret=optional(m, "secret", YNode.text, d.secret),
        )

    def _database(self, node: YNode | None) -> DatabaseSettings:
        m = {} if node is None else node.mapping(DATABASE_KEYS) or {}
        d = DatabaseSettings()
        raw = optional(m, "path", YNode.text, d.path)
        percent = optional(
            m, "max_release_percent", lambda n: n.integer(0, 100), d.max_release_percent
        )
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
            enabled=optional(m, "enabled", YNode.boolean, d.enabled),
            host=optional(m, "host", YNode.text, d.host),
            port=optional(m, "port", lambda n: n.integer(1, 65535), d.port),
            metrics=optional(m, "metrics", self._metrics, d.metrics),
        )

    def _metrics(self, node: YNode) -> MetricsSettings | None:
        m = node.mapping(METRICS_KEYS)
        if m is None:
            return None
        token = optional(m, "token", YNode.text, None)
        username = optional(m, "username", YNode.text, None)
        password = optional(m, "password", YNode.text, None)
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
            enabled=optional(m, "enabled", YNode.boolean, True),
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
        return RetentionSettings(**ages, purge=optional(m, "purge", YNode.boolean, d.purge))

    def _reports(self, node: YNode) -> ReportSettings | None:
        m = node.mapping(REPORT_KEYS)
        if m is None:
            return None
        d = ReportSettings()
        return ReportSettings(
            time_zone=optional(m, "time_zone", self._time_zone, d.time_zone),
            qualified_min_talk_seconds=optional(
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
            host=optional(m, "host", YNode.text, d.host),
            port=optional(m, "port", lambda n: n.integer(1, 65535), d.port),
            allowed_origins=optional(m, "allowed_origins", self._origins, d.allowed_origins),
            trusted_proxies=optional(m, "trusted_proxies", self._networks, d.trusted_proxies),
            max_connections=optional(
                m, "max_connections", lambda n: n.integer(1, 1_000_000), d.max_connections
            ),
            max_connections_per_client=optional(
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


def _mode(node: YNode) -> AsteriskMode | None:
    value = node.choice([m.value for m in AsteriskMode])
    return None if value is None else AsteriskMode(value)
