"""The domain model: what an admin configures, as frozen, validated objects.

Pure data. The YAML loader (``ctm_pbx.adapters.config_loader``) builds these;
everything else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ctm_pbx.core.geo import GeoRule
from ctm_pbx.core.retention import RetentionSettings
from ctm_pbx.core.schedules import Schedule


class SourceKind(StrEnum):
    """Where a source's callers saw the number."""

    ONSITE = "onsite"  # on the customer's website: numbers swapped by the script
    OFFSITE = "offsite"  # billboard, radio, flyer: one fixed number


class RouteType(StrEnum):
    SINGLE = "single"
    SIMULTANEOUS = "simultaneous"
    SEQUENTIAL = "sequential"
    GEO = "geo"  # picks another route by where the caller is
    IVR = "ivr"  # a voice menu: the caller's key picks a route or a number
    QUEUE = "queue"  # callers wait (music on hold) for the next free agent (Asterisk's app_queue)

    @property
    def dials(self) -> bool:
        """Rings receiving numbers itself (rather than choosing another route)."""
        return self in (RouteType.SINGLE, RouteType.SIMULTANEOUS, RouteType.SEQUENTIAL)


class RouteOrder(StrEnum):
    """How a sequential route picks who rings first."""

    FIXED = "fixed"  # always in the listed order
    ROUND_ROBIN = "round_robin"  # start after the leg that started last time (weighted)


class FallbackKind(StrEnum):
    ROUTE = "route"  # run another route
    NUMBER = "number"  # dial one number (a fail-safe desk)
    BUSY = "busy"  # caller hears busy
    HANGUP = "hangup"  # hang up
    VOICEMAIL = "voicemail"  # the caller leaves a message (value: the greeting prompt)


@dataclass(frozen=True)
class MatchRule:
    """One way a visit can match a source. All given fields must match (AND).

    A source matches when any of its rules matches (OR).
    """

    landing_params: tuple[tuple[str, str], ...] = ()  # (name, value); value "*" = present
    click_ids: tuple[str, ...] = ()  # any of these query parameters present
    referrer_hosts: tuple[str, ...] = ()  # host equals or is a subdomain of one of these
    referrer_regex: str | None = None  # re.search on the full referrer URL
    landing_regex: str | None = None  # re.search on the full landing URL
    no_referrer: bool = False  # matches only when there is no (external) referrer
    external_referrer: bool = False  # referrer host differs from the landing host


@dataclass(frozen=True)
class Source:
    name: str
    kind: SourceKind
    priority: int  # lower is checked first
    rules: tuple[MatchRule, ...] = ()
    preset: str | None = None  # built-in preset the rules came from, if any
    last_touch: bool = False  # a later visit from this source takes over the visitor
    label: str = ""


@dataclass(frozen=True)
class Target:
    """A number printed on the customer's website, to be swapped."""

    name: str
    number: str  # E.164
    label: str = ""


@dataclass(frozen=True)
class Pool:
    """Numbers for one on-site source (and optionally one target)."""

    name: str
    source: str
    target: str | None = None
    lease_minutes: int = 30  # a lease lives this long after the visitor's last activity
    cooldown_minutes: int = 30  # an expired number rests this long before reuse
    overflow_number: str | None = None  # E.164 shown when shares are not wanted


@dataclass(frozen=True)
class ReceivingNumber:
    """A phone that takes calls: a desk, a mobile, a call-centre line."""

    name: str
    number: str  # E.164 (or an internal extension, see ``dial``)
    dial: str  # Asterisk dial-string template, e.g. "PJSIP/{number}@carrier"
    label: str = ""

    @property
    def dial_string(self) -> str:
        """The template with ``{number}`` (E.164) and ``{digits}`` (no '+') filled in."""
        return self.dial.replace("{number}", self.number).replace(
            "{digits}", self.number.lstrip("+")
        )


@dataclass(frozen=True)
class RouteTarget:
    receiving_number: str  # name of a ReceivingNumber
    weight: int = 1


@dataclass(frozen=True)
class Fallback:
    kind: FallbackKind
    value: str | None = None  # route name (ROUTE) or E.164 (NUMBER)


@dataclass(frozen=True)
class Route:
    """What every route has. ``single`` and ``simultaneous`` routes are just this; the
    kinds that need more are their own classes (``SequentialRoute``, ``GeoRoute``,
    ``IvrRoute``, ``QueueRoute``), so that a rule can only read what its kind has."""

    name: str
    type: RouteType
    targets: tuple[RouteTarget, ...] = ()
    ring_timeout: int = 20  # seconds each leg (or the whole group, simultaneous) rings
    fallback: Fallback = Fallback(FallbackKind.HANGUP)
    label: str = ""
    schedule: str | None = None  # a Schedule name: outside its hours, ``after_hours`` runs
    after_hours: Fallback | None = None
    whisper: tuple[tuple[str, str], ...] = ()  # source (or "*") -> prompt played to the agent
    record: bool = False  # record the conversation (both sides mixed)

    def whisper_for(self, source: str | None) -> str | None:
        prompts = dict(self.whisper)
        return prompts.get(source or "") or prompts.get("*")


class QueueStrategy(StrEnum):
    """Who rings next: Asterisk app_queue's strategies."""

    RINGALL = "ringall"  # every free agent at once
    LINEAR = "linear"  # in the listed order
    RRMEMORY = "rrmemory"  # round robin, remembering who was last
    LEASTRECENT = "leastrecent"  # the agent idle longest
    FEWESTCALLS = "fewestcalls"  # the agent with the fewest calls
    RANDOM = "random"
    WRANDOM = "wrandom"  # random, weighted


@dataclass(frozen=True)
class QueueSettings:
    strategy: QueueStrategy = QueueStrategy.RRMEMORY
    max_wait: int = 300  # seconds a caller waits before the route's fallback (overflow)
    max_length: int = 0  # callers waiting at most (0: no limit); more go to the fallback
    wrapup: int = 0  # seconds an agent rests after a call
    announce_every: int = 0  # seconds between position/wait announcements (0: none)
    periodic_prompt: str | None = None  # played to waiting callers every announce_every
    music: str = "default"  # music-on-hold class
    ring_in_use: bool = False  # ring agents already on a call (lines taking several calls)
    priority_by_source: tuple[tuple[str, int], ...] = ()  # higher is served first

    def priority(self, source: str | None) -> int:
        return dict(self.priority_by_source).get(source or "", 0)


@dataclass(frozen=True)
class MenuOption:
    key: str  # 0-9, * or #
    target: Fallback  # a route, a number (or receiving number), busy or hangup


@dataclass(frozen=True)
class Prompt:
    """Something the caller is asked to key in (e.g. a ZIP code)."""

    prompts: tuple[str, ...]
    timeout: int = 8
    attempts: int = 2


@dataclass(frozen=True)
class SequentialRoute(Route):
    """Rings its targets one after another."""

    order: RouteOrder = RouteOrder.FIXED


@dataclass(frozen=True)
class GeoRoute(Route):
    """Hands the call to the route of the first rule where the caller is matches."""

    geo_rules: tuple[GeoRule, ...] = ()
    ask_zip: Prompt | None = None  # ask the caller for a ZIP code first
    default: Fallback | None = None  # no rule matched


@dataclass(frozen=True)
class IvrRoute(Route):
    """A voice menu: the caller's key picks a route or a number."""

    prompts: tuple[str, ...] = ()  # what the menu plays
    options: tuple[MenuOption, ...] = ()  # key -> where it leads
    menu_timeout: int = 5  # seconds to wait for a key after the prompts
    attempts: int = 3  # plays of the menu before ``default``
    invalid_prompt: str | None = None  # played before replaying on a wrong key
    default: Fallback | None = None  # no valid key in time


@dataclass(frozen=True)
class QueueRoute(Route):
    """Callers wait in Asterisk's queue for the next free agent (the targets)."""

    queue: QueueSettings = QueueSettings()

    @property
    def queue_name(self) -> str:
        """The Asterisk queue (``ctm-pbx asterisk queues`` writes it)."""
        return f"ctm-{self.name}"


Menu = IvrRoute | GeoRoute  # routes that take the caller's keys


@dataclass(frozen=True)
class TrackingNumberDecl:
    """A tracking number declared in YAML (config-as-code)."""

    number: str  # E.164
    source: str | None = None
    pool: str | None = None
    route: str | None = None
    label: str = ""


class AsteriskMode(StrEnum):
    """How calls reach ctm-pbx."""

    ARI = "ari"  # the trunk's calls enter our Stasis app (dialplan/ctm-pbx.conf)
    AGI = "agi"  # the admin's dialplan asks us over FastAGI (dialplan/ctm-pbx-agi.conf)
    BOTH = "both"  # both, for different DIDs (the dialplan decides which DID goes where)


@dataclass(frozen=True)
class AgiSettings:
    """The FastAGI server of AGI mode."""

    host: str = "127.0.0.1"
    port: int = 4573
    timeout_ms: int = 2000  # an AGI request not answered by then lets the dialplan go on


@dataclass(frozen=True)
class AmiSettings:
    """The Asterisk Manager Interface account AGI mode reads call events with."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ctm"
    secret: str = ""


@dataclass(frozen=True)
class RecordingSettings:
    """Where call recordings and voicemail messages go."""

    dir: str = "/var/spool/asterisk/monitor"  # as Asterisk sees it (CTM_REC_DIR)
    local_dir: str | None = None  # the same directory as ctm-pbx sees it (default: dir)
    voicemail_max_seconds: int = 120

    @property
    def readable_dir(self) -> str:
        return self.local_dir or self.dir


@dataclass(frozen=True)
class AsteriskSettings:
    ari_url: str = "http://127.0.0.1:8088"
    username: str = "ctm"
    password: str = ""
    app: str = "ctm-pbx"
    mode: AsteriskMode = AsteriskMode.ARI
    agi: AgiSettings = field(default_factory=AgiSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    recordings: RecordingSettings = field(default_factory=RecordingSettings)
    # the dialplan's call spool (CTM_SPOOL in extensions.conf), as ctm-pbx sees it
    call_spool: str = "/var/spool/asterisk/ctm-pbx/calls.spool"

    @property
    def uses_ari(self) -> bool:
        return self.mode in (AsteriskMode.ARI, AsteriskMode.BOTH)

    @property
    def uses_agi(self) -> bool:
        return self.mode in (AsteriskMode.AGI, AsteriskMode.BOTH)


@dataclass(frozen=True)
class DatabaseSettings:
    path: str = "ctm-pbx.db"
    # a sync may release at most this share of the config's numbers unless forced
    max_release_percent: int = 25


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    allowed_origins: tuple[str, ...] = ()
    # reverse proxies whose X-Forwarded-For names the client (addresses or networks);
    # none by default: a proxy that passes a client's own header on would let it choose
    trusted_proxies: tuple[str, ...] = ()
    # open connections to the web listener: in total (at most half the process's file
    # descriptors) and per client (IPv4 address, IPv6 /64; trusted proxies: total only)
    max_connections: int = 1024
    max_connections_per_client: int = 32


@dataclass(frozen=True)
class TrackingSettings:
    default_country: str = "US"  # for numbers written without +country code
    first_touch_days: int = 30
    attribution_window_minutes: int = 24 * 60
    # pool-drain defences (see ctm_pbx.core.pools.hand_out)
    max_leases_per_client: int = 5  # exclusive pool leases one client holds at once, per pool
    confirm_seconds: int = 60  # a new lease lives this long unless the page sends a heartbeat
    max_visits_per_day: int = 50  # new visit rows one visitor may add in 24 hours


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics at ``/metrics`` on the dashboard's listener. Without a token
    or a username and password, only loopback clients may read them."""

    enabled: bool = True
    token: str | None = None  # a bearer token (Authorization: Bearer ...)
    username: str | None = None  # or basic auth
    password: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.token is not None or self.username is not None


@dataclass(frozen=True)
class DashboardSettings:
    """The dashboard's own listener: never the public visitor-API port."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8081
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


@dataclass(frozen=True)
class ReportSettings:
    # the business's time zone: reports group calls by its days, weeks and hours
    # (None: UTC, and reports say so)
    time_zone: str | None = None
    qualified_min_talk_seconds: int = 30  # a qualified call: answered and talked this long


# -- integrations (issue 20): what leaves the building, through the outbox --------------

# The call-log changes that make an event (adapters/store/outbox.py writes them).
EVENT_TYPES = ("call.started", "call.completed", "call.qualified", "call.tagged")


@dataclass(frozen=True)
class Webhook:
    """A destination of signed webhooks: the events it wants, POSTed as JSON."""

    name: str
    url: str
    secret: str
    events: tuple[str, ...] = ("call.completed",)
    headers: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class OutboxSettings:
    """How the delivery worker retries: exponential backoff with jitter, then dead."""

    max_attempts: int = 15
    max_age_hours: int = 72
    backoff_first_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0


@dataclass(frozen=True)
class ConversionValues:
    """A conversion's value by what the call was: its tag, else its route, else its
    source, else the section's ``value`` (``core.integrations.conversion_value``)."""

    by_tag: tuple[tuple[str, float], ...] = ()
    by_route: tuple[tuple[str, float], ...] = ()
    by_source: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Ga4Settings:
    """GA4 Measurement Protocol: an event per qualified call (or per ``events``)."""

    measurement_id: str
    api_secret: str
    endpoint: str = "https://www.google-analytics.com/mp/collect"
    events: tuple[str, ...] = ("call.qualified",)
    event_name: str = "phone_call"
    value: float | None = None
    values: ConversionValues = ConversionValues()
    currency: str = "USD"
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class GoogleAdsSettings:
    """Offline click conversions: the CSV of qualified calls with a Google click id."""

    conversion_name: str
    value: float | None = None
    values: ConversionValues = ConversionValues()
    currency: str = "USD"
    time_zone: str | None = None  # None: reports.time_zone, else UTC
    # the dashboard listener serves the CSV at /ads/<feed_token>.csv with basic auth
    feed_token: str | None = None
    feed_username: str = "google-ads"
    feed_password: str | None = None
    feed_days: int = 90  # how far back the served CSV reaches


@dataclass(frozen=True)
class Config:
    asterisk: AsteriskSettings = field(default_factory=AsteriskSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    web: WebSettings = field(default_factory=WebSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    sources: dict[str, Source] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    receiving_numbers: dict[str, ReceivingNumber] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    tracking_numbers: tuple[TrackingNumberDecl, ...] = ()
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    ga4: Ga4Settings | None = None
    google_ads: GoogleAdsSettings | None = None
    path: str | None = None  # the file it came from


@dataclass(frozen=True)
class NumberInfo:
    """What the inventory knows of the dialled tracking number."""

    number: str
    source: str | None
    pool: str | None
    route: str | None
