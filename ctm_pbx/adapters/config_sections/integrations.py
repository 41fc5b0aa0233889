"""The integration sections of ``config.yaml``: webhooks, the outbox, GA4 and Google
Ads conversions, and the conversion values they share.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ctm_pbx.adapters.config_sections.base import (
    NAME_RE,
    SectionBuilder,
    optional,
    required,
)
from ctm_pbx.adapters.yaml_source import (
    YNode,
    suggest,
)
from ctm_pbx.core.model import (
    EVENT_TYPES,
    ConversionValues,
    Ga4Settings,
    GoogleAdsSettings,
    OutboxSettings,
    Webhook,
)
from ctm_pbx.core.tags import TagError, parse_tags

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


class IntegrationSections(SectionBuilder):
    """Builds the integrations sections (see the module's docstring)."""

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
        url_node, secret_node = required(m, node, "url"), required(m, node, "secret")
        url = self._webhook_url(url_node) if url_node is not None else None
        secret = secret_node.text() if secret_node is not None else None
        if secret is not None and len(secret) < 16:
            secret_node.error("the secret must be at least 16 characters")  # type: ignore[union-attr]
            secret = None
        d = Webhook(name, "", "")
        events = optional(m, "events", self._events, d.events)
        headers = optional(m, "headers", self._headers, d.headers)
        timeout = optional(m, "timeout_seconds", lambda n: n.integer(1, 300), None)
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
        first = optional(m, "backoff_first_seconds", lambda n: n.integer(1, 3600), None)
        cap = optional(m, "backoff_max_seconds", lambda n: n.integer(1, 86400), None)
        out = OutboxSettings(
            max_attempts=optional(m, "max_attempts", lambda n: n.integer(1, 1000), d.max_attempts),
            max_age_hours=optional(
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
        mid_node, secret_node = required(m, node, "measurement_id"), required(m, node, "api_secret")
        mid = mid_node.text() if mid_node is not None else None
        if mid is not None and not MEASUREMENT_ID_RE.match(mid):
            mid_node.error(f"expected a GA4 measurement id like 'G-ABC123XYZ', got '{mid}'")  # type: ignore[union-attr]
            mid = None
        secret = secret_node.text() if secret_node is not None else None
        d = Ga4Settings("", "")
        name = optional(m, "event_name", YNode.text, d.event_name)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name):
            m["event_name"].error(
                "a GA4 event name: letters, digits and '_', starting with a letter, at most 40"
            )
            return None
        endpoint = optional(m, "endpoint", self._http_url, d.endpoint)
        value = optional(m, "value", self._amount, None)
        values = optional(m, "values", self._values, d.values)
        currency = optional(m, "currency", self._currency, d.currency)
        timeout = optional(m, "timeout_seconds", lambda n: n.integer(1, 300), None)
        events = optional(m, "events", self._events, d.events)
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
        name_node = required(m, node, "conversion_name")
        name = name_node.text() if name_node is not None else None
        d = GoogleAdsSettings("")
        token = optional(m, "feed_token", YNode.text, None)
        password = optional(m, "feed_password", YNode.text, None)
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
            value=optional(m, "value", self._amount, None),
            values=optional(m, "values", self._values, d.values),
            currency=optional(m, "currency", self._currency, d.currency),
            time_zone=optional(m, "time_zone", self._time_zone, None),
            feed_token=token,
            feed_username=optional(m, "feed_username", YNode.text, d.feed_username),
            feed_password=password,
            feed_days=optional(m, "feed_days", lambda n: n.integer(1, 90), d.feed_days),
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


def parse_tag_name(name: str) -> str | None:
    """The tag as the dashboard stores it, or None if it cannot be one."""
    try:
        tags = parse_tags(name)
    except TagError:
        return None
    return tags[0] if len(tags) == 1 else None
