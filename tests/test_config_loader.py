"""The YAML config loader: every problem reported with key path and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ctm_pbx.adapters.config_loader import ConfigError, load_config, parse_config
from ctm_pbx.core.model import Config, FallbackKind, SourceKind
from ctm_pbx.core.presets import PRESETS, get_preset

RECEIVING = 'receiving_numbers:\n  desk-1: {number: "+1 312 555 0101"}\n'


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), "config.yaml", env=env or {})


def errors_of(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value


# (id, yaml, expected path, expected line, message fragment)
BROKEN = [
    (
        "unknown key with suggestion",
        RECEIVING
        + """\
routes:
  sales:
    type: single
    targets: [desk-1]
    rign_timeout: 20
""",
        "routes.sales.rign_timeout",
        7,
        "unknown key 'rign_timeout' (did you mean 'ring_timeout'?)",
    ),
    (
        "unknown top-level key",
        "web: {}\nroute: {}\n",
        "route",
        2,
        "unknown key 'route' (did you mean 'routes'?)",
    ),
    (
        "wrong type",
        "web:\n  host: 0.0.0.0\n  port: abc\n",
        "web.port",
        3,
        "expected an integer, got 'abc'",
    ),
    (
        "wrong type for a boolean",
        "sources:\n  ads:\n    preset: google_ads\n    last_touch: 'yes'\n",
        "sources.ads.last_touch",
        4,
        "expected true or false, got 'yes'",
    ),
    (
        "integer out of range",
        RECEIVING + "routes:\n  sales: {type: single, targets: [desk-1], ring_timeout: 0}\n",
        "routes.sales.ring_timeout",
        4,
        "must be between 1 and 600, got 0",
    ),
    (
        "share of numbers a sync may release out of range",
        "database:\n  path: x.db\n  max_release_percent: 101\n",
        "database.max_release_percent",
        3,
        "must be between 0 and 100, got 101",
    ),
    (
        "bad number",
        "targets:\n  sales: 555-0100\n",
        "targets.sales",
        2,
        "'555-0100' is not a valid phone number",
    ),
    (
        "unknown receiving number",
        RECEIVING
        + """\
routes:
  sales:
    type: simultaneous
    targets:
      - desk-1
      - desk-3
""",
        "routes.sales.targets[1]",
        8,
        "unknown receiving number 'desk-3'",
    ),
    (
        "unknown receiving number in a weighted target",
        RECEIVING
        + "routes:\n  sales:\n    type: sequential\n"
        + "    targets: [desk-1, {receiving_number: desk-2, weight: 3}]\n",
        "routes.sales.targets[1].receiving_number",
        6,
        "unknown receiving number 'desk-2' (did you mean 'desk-1'?)",
    ),
    (
        "fallback cycle",
        RECEIVING
        + """\
routes:
  sales:
    type: single
    targets: [desk-1]
    fallback: {route: support}
  support:
    type: single
    targets: [desk-1]
    fallback: {route: sales}
""",
        "routes.sales.fallback.route",
        7,
        "fallback cycle: sales -> support -> sales",
    ),
    (
        "fallback to itself",
        RECEIVING
        + "routes:\n  sales: {type: single, targets: [desk-1], fallback: {route: sales}}\n",
        "routes.sales.fallback.route",
        4,
        "fallback cycle: sales -> sales",
    ),
    (
        "tracking number equal to a target",
        RECEIVING
        + """\
sources:
  billboard: {kind: offsite}
targets:
  sales: "(312) 555-0100"
routes:
  sales: {type: single, targets: [desk-1]}
tracking_numbers:
  - {number: "+1 312 555 0100", source: billboard, route: sales}
""",
        "tracking_numbers[0].number",
        10,
        "+13125550100 is target number 'sales', the site's own number: every call to it"
        " would be credited to this one source (targets.sales, line 6)",
    ),
    (
        "two tracking numbers with the same number",
        RECEIVING
        + """\
sources:
  billboard: {kind: offsite}
routes:
  sales: {type: single, targets: [desk-1]}
tracking_numbers:
  - number: "+1 202 555 0142"
    source: billboard
    route: sales
  - {number: "(202) 555-0142", source: billboard, route: sales}
""",
        "tracking_numbers[1].number",
        11,
        "already used by tracking_numbers[0].number (line 8)",
    ),
    (
        "duplicate YAML key",
        RECEIVING + '  desk-1: {number: "+1 312 555 0102"}\n',
        "receiving_numbers.desk-1",
        3,
        "duplicate key 'desk-1' (first on line 2)",
    ),
    (
        "unknown asterisk mode",
        "asterisk:\n  mode: agl\n",
        "asterisk.mode",
        2,
        "expected one of 'ari', 'agi', 'both', got 'agl' (did you mean 'agi'?)",
    ),
    (
        "AGI port out of range",
        "asterisk:\n  agi:\n    port: 70000\n",
        "asterisk.agi.port",
        3,
        "70000",
    ),
    (
        "unknown AMI key",
        "asterisk:\n  ami:\n    host: 127.0.0.1\n    secert: x\n",
        "asterisk.ami.secert",
        4,
        "unknown key 'secert' (did you mean 'secret'?)",
    ),
    (
        "unknown time zone",
        "schedules:\n  office:\n    time_zone: Europe/Pariss\n    hours: {mon-fri: 09:00-17:00}\n",
        "schedules.office.time_zone",
        3,
        "unknown time zone 'Europe/Pariss'",
    ),
    (
        "bad business hours",
        "schedules:\n  office:\n    time_zone: UTC\n    hours:\n      mon-fri: 9 to 5\n",
        "schedules.office.hours.mon-fri",
        5,
        "expected HH:MM-HH:MM, got '9 to 5'",
    ),
    (
        "after_hours without a schedule",
        RECEIVING + "routes:\n  r: {type: single, targets: [desk-1], after_hours: busy}\n",
        "routes.r.after_hours",
        4,
        "'after_hours' needs a 'schedule'",
    ),
    (
        "geo rule with an unknown state",
        "routes:\n  g:\n    type: geo\n    rules:\n      - {states: [ZZ], route: g}\n",
        "routes.g.rules[0].states[0]",
        5,
        "unknown state or province code 'ZZ'",
    ),
    (
        "geo route with targets",
        RECEIVING
        + "routes:\n  g:\n    type: geo\n    targets: [desk-1]\n"
        + "    rules: [{states: [IL], route: g}]\n",
        "routes.g.targets",
        6,
        "'targets' does not apply to geo routes",
    ),
    (
        "menu key of two digits",
        "routes:\n  m:\n    type: ivr\n    prompts: ctm-pbx/welcome\n    options:\n"
        "      12: hangup\n",
        "routes.m.options.12",
        6,
        "menu keys are single keys 0-9, * or #, got '12'",
    ),
    (
        "prompt with a file extension",
        "routes:\n  m:\n    type: ivr\n    prompts: [ctm-pbx/welcome.wav]\n"
        "    options: {1: busy}\n",
        "routes.m.prompts[0]",
        4,
        "expected a sound name like 'ctm-pbx/welcome'",
    ),
    (
        "menu option to an unknown route",
        "routes:\n  m:\n    type: ivr\n    prompts: x\n    options: {1: {route: sails}}\n",
        "routes.m.options.1.route",
        5,
        "unknown route 'sails'",
    ),
    (
        "ivr route without options",
        "routes:\n  m:\n    type: ivr\n    prompts: x\n",
        "routes.m",
        2,
        "missing required field 'options'",
    ),
    (
        "whisper for an unknown source",
        RECEIVING + "routes:\n  r: {type: single, targets: [desk-1], whisper: {gogle-ads: x}}\n",
        "routes.r.whisper.gogle-ads",
        4,
        "unknown source 'gogle-ads'",
    ),
    (
        "record is not a boolean",
        RECEIVING + "routes:\n  r: {type: single, targets: [desk-1], record: sometimes}\n",
        "routes.r.record",
        4,
        "expected true or false",
    ),
    (
        "voicemail greeting with an extension",
        RECEIVING
        + "routes:\n  r: {type: single, targets: [desk-1], fallback: {voicemail: vm.wav}}\n",
        "routes.r.fallback.voicemail",
        4,
        "expected a sound name",
    ),
    (
        "unset environment variable",
        "asterisk:\n  username: ctm\n  password: '${CTM_TEST_UNSET}'\n",
        "asterisk.password",
        3,
        "environment variable 'CTM_TEST_UNSET' is not set",
    ),
    (
        "bad regex",
        """\
sources:
  custom:
    kind: onsite
    match:
      - landing_params: {utm_source: x}
      - referrer_regex: "(unclosed"
""",
        "sources.custom.match[1].referrer_regex",
        6,
        "invalid regular expression: missing ), unterminated subpattern",
    ),
    (
        "match rule without a condition",
        "sources:\n  mail:\n    kind: onsite\n    match:\n      - no_referrer: false\n",
        "sources.mail.match[0]",
        5,
        "this match rule has no condition",
    ),
    (
        "YAML merge key",
        "receiving_numbers:\n  a: &a {number: '+1 312 555 0101'}\n"
        "  b: {<<: *a, number: '+1 312 555 0102'}\n",
        "receiving_numbers.b",
        3,
        "YAML merge keys ('<<') are not supported",
    ),
    (
        "unknown preset",
        "sources:\n  gads: {preset: google_adz}\n",
        "sources.gads.preset",
        2,
        "unknown preset 'google_adz' (did you mean 'google_ads'?); valid presets: google_ads, ",
    ),
    (
        "pool with an offsite source",
        "sources:\n  billboard: {kind: offsite}\npools:\n  p1: {source: billboard}\n",
        "pools.p1.source",
        4,
        "source 'billboard' is offsite; a pool needs an onsite source",
    ),
    (
        "pool with an unknown source",
        "sources:\n  ads: {preset: google_ads}\npools:\n  p1:\n    source: adds\n",
        "pools.p1.source",
        5,
        "unknown source 'adds' (did you mean 'ads'?)",
    ),
    (
        "bad name",
        'targets:\n  Sales: "(312) 555-0100"\n',
        "targets.Sales",
        2,
        "invalid name 'Sales'",
    ),
    (
        "missing required field",
        "receiving_numbers:\n  desk-1:\n    label: Desk\n",
        "receiving_numbers.desk-1",
        2,
        "missing required field 'number'",
    ),
    (
        "tracking number without a route",
        "sources:\n  billboard: {kind: offsite}\ntracking_numbers:\n"
        "  - {number: '+1 312 555 0142', source: billboard}\n",
        "tracking_numbers[0]",
        4,
        "missing required field 'route'",
    ),
    (
        "invalid YAML syntax",
        "web:\n  host: 127.0.0.1\n port: 8080\n",
        "",
        3,
        "invalid YAML: expected <block end>",
    ),
    (
        "single route with two targets",
        RECEIVING
        + '  desk-2: {number: "+1 312 555 0102"}\n'
        + "routes:\n  sales:\n    type: single\n    targets: [desk-1, desk-2]\n",
        "routes.sales.targets",
        7,
        "a single route has exactly 1 target, got 2",
    ),
    (
        "round robin on a simultaneous route",
        RECEIVING
        + "routes:\n  sales: {type: simultaneous, targets: [desk-1], order: round_robin}\n",
        "routes.sales.order",
        4,
        "order 'round_robin' applies only to sequential routes",
    ),
    (
        "unknown route type",
        RECEIVING + "routes:\n  sales: {type: simultanous, targets: [desk-1]}\n",
        "routes.sales.type",
        4,
        "got 'simultanous' (did you mean 'simultaneous'?)",
    ),
    (
        "unknown fallback route",
        RECEIVING + "routes:\n  sales: {type: single, targets: [desk-1], fallback: {route: x}}\n",
        "routes.sales.fallback.route",
        4,
        "unknown route 'x'",
    ),
    (
        "pooled number with a different source",
        """\
sources:
  ads: {preset: google_ads}
  fb: {preset: facebook}
pools:
  ads-pool: {source: ads}
receiving_numbers:
  desk-1: {number: "+1 312 555 0101"}
routes:
  sales: {type: single, targets: [desk-1]}
tracking_numbers:
  - number: "+1 312 555 0150"
    pool: ads-pool
    source: fb
    route: sales
""",
        "tracking_numbers[0].source",
        13,
        "pool 'ads-pool' belongs to source 'ads', not 'fb'; leave source out",
    ),
    (
        "offsite source with match rules",
        "sources:\n  radio:\n    kind: offsite\n    match: [{click_ids: x}]\n",
        "sources.radio.match",
        4,
        "an offsite source has no match rules",
    ),
    (
        "bad origin",
        "web:\n  allowed_origins:\n    - https://www.example.com/contact\n",
        "web.allowed_origins[0]",
        3,
        "expected an origin like 'https://www.example.com'",
    ),
    (
        "overflow number is a target number",
        'targets:\n  sales: "+1 312 555 0100"\npools:\n  p:\n    source: google-ads\n'
        '    overflow_number: "+1 312 555 0100"\nsources:\n  google-ads: {preset: google_ads}\n',
        "pools.p.overflow_number",
        6,
        "overflow_number +13125550100 is a target number (targets.sales)",
    ),
    (
        "bad trusted proxy",
        "web:\n  trusted_proxies: [127.0.0.1, 10.0.0.0/33]\n",
        "web.trusted_proxies[1]",
        2,
        "expected an IP address or network like '10.0.0.0/8', got '10.0.0.0/33'",
    ),
    (
        "unknown dial placeholder",
        'receiving_numbers:\n  desk-1: {number: "+1 312 555 0101", dial: "PJSIP/{num}@x"}\n',
        "receiving_numbers.desk-1.dial",
        2,
        "unknown placeholder '{num}' in dial string",
    ),
    (
        "unknown country",
        "tracking:\n  default_country: XX\n",
        "tracking.default_country",
        2,
        "unknown country code 'XX'",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "fragment"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_config_reports_path_line_and_message(
    text: str, path: str, line: int, fragment: str
) -> None:
    error = errors_of(text)
    assert [(e.path, e.line) for e in error.errors] == [(path, line)], str(error)
    assert fragment in error.errors[0].message


def test_all_errors_are_reported_at_once() -> None:
    text = """\
web:
  port: abc
targets:
  sales: "555-0100"
receiving_numbers:
  desk-1: {number: "+1 312 555 0101", lable: Desk}
routes:
  sales: {type: single, targets: [desk-9]}
"""
    error = errors_of(text)
    assert [(e.path, e.line) for e in error.errors] == [
        ("web.port", 2),
        ("targets.sales", 4),
        ("receiving_numbers.desk-1.lable", 6),
        ("routes.sales.targets[0]", 8),
    ]
    lines = str(error).splitlines()
    assert lines[0] == "config.yaml:2: web.port: expected an integer, got 'abc'"
    assert lines[3] == (
        "config.yaml:8: routes.sales.targets[0]: "
        "unknown receiving number 'desk-9' (did you mean 'desk-1'?)"
    )
    assert isinstance(error, ValueError)


def test_env_references_are_substituted() -> None:
    text = """\
asterisk:
  password: "${ARI_PW}"
  username: "u-${ARI_USER}-$${LITERAL}"
web:
  port: ${WEB_PORT}
"""
    env = {"ARI_PW": "s3cret", "ARI_USER": "ctm", "WEB_PORT": "9090"}
    config = parse(text, env)
    assert config.asterisk.password == "s3cret"
    assert config.asterisk.username == "u-ctm-${LITERAL}"
    assert config.web.port == 9090


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTM_TEST_PW", "from-env")
    config = parse_config("asterisk: {password: '${CTM_TEST_PW}'}\n")
    assert config.asterisk.password == "from-env"


def test_relative_database_path_resolves_against_config_dir(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    file = config_dir / "config.yaml"
    file.write_text("database:\n  path: data/ctm.db\n", encoding="utf-8")
    config = load_config(file)
    assert config.database.path == str(config_dir.resolve() / "data" / "ctm.db")
    assert config.path == str(file)


def test_absolute_database_path_is_kept(tmp_path: Path) -> None:
    config = parse(f"database: {{path: '{tmp_path / 'x.db'}'}}\n")
    assert config.database.path == str(tmp_path / "x.db")


def test_missing_file_is_one_issue(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    [issue] = info.value.errors
    assert issue.line is None and "cannot read config file" in issue.message


def test_empty_file_gives_defaults() -> None:
    config = parse("# nothing yet\n")
    assert config.routes == {} and config.web.port == 8080 and config.path == "config.yaml"


def test_preset_fields_can_be_overridden() -> None:
    config = parse("sources:\n  tw: {preset: twitter_x, priority: 5, label: X}\n")
    source = config.sources["tw"]
    assert (source.preset, source.priority, source.label) == ("twitter", 5, "X")
    assert source.rules == PRESETS["twitter"].rules
    assert source.kind is SourceKind.ONSITE


def test_custom_rules_and_defaults() -> None:
    text = """\
sources:
  mail:
    kind: onsite
    match:
      - landing_params: {utm_source: newsletter, utm_campaign: "*"}
      - {click_ids: mlid, referrer_hosts: Mail.Example.com}
"""
    source = parse(text).sources["mail"]
    assert source.priority == 50
    first, second = source.rules
    assert first.landing_params == (("utm_source", "newsletter"), ("utm_campaign", "*"))
    assert second.click_ids == ("mlid",) and second.referrer_hosts == ("mail.example.com",)


def test_pooled_number_takes_the_pool_source_and_fallbacks_parse() -> None:
    text = """\
sources:
  ads: {preset: google_ads}
pools:
  ads-pool: {source: ads, overflow_number: null}
receiving_numbers:
  desk-1: {number: "+1 312 555 0101"}
routes:
  sales: {type: single, targets: [desk-1], fallback: {number: "(202) 555-0199"}}
  support: {type: single, targets: [desk-1], fallback: busy}
tracking_numbers:
  - {number: "+1 312 555 0150", pool: ads-pool, route: sales}
"""
    config = parse(text)
    [decl] = config.tracking_numbers
    assert (decl.source, decl.pool, decl.number) == ("ads", "ads-pool", "+13125550150")
    assert config.routes["sales"].fallback.value == "+12025550199"
    assert config.routes["support"].fallback.kind is FallbackKind.BUSY
    assert config.routes["sales"].fallback.kind is FallbackKind.NUMBER


@pytest.mark.parametrize(
    ("name", "canonical", "priority"),
    [
        ("google_ads", "google_ads", 10),
        ("bing_ads", "bing_ads", 10),
        ("facebook", "facebook", 20),
        ("x", "twitter", 20),
        ("twitter_x", "twitter", 20),
        ("email", "email", 30),
        ("google_organic", "google_organic", 40),
        ("referral", "referral", 90),
        ("direct", "direct", 100),
    ],
)
def test_presets(name: str, canonical: str, priority: int) -> None:
    preset = get_preset(name)
    assert preset is not None
    assert (preset.name, preset.priority, preset.kind) == (canonical, priority, SourceKind.ONSITE)
    assert preset.rules


def test_env_reference_default_applies_only_when_unset() -> None:
    text = "asterisk:\n  password: '${ARI_PW:-sandbox}'\n  username: '${ARI_USER:-ctm}'\n"
    config = parse(text, {"ARI_USER": "admin"})
    assert config.asterisk.password == "sandbox"
    assert config.asterisk.username == "admin"


def test_asterisk_modes_and_agi_settings() -> None:
    config = parse_config(
        "asterisk:\n  mode: both\n  agi: {port: 4574, timeout_ms: 1500}\n"
        "  ami: {username: mgr, secret: s}\n"
    )
    a = config.asterisk
    assert a.mode.value == "both" and a.uses_ari and a.uses_agi
    assert (a.agi.host, a.agi.port, a.agi.timeout_ms) == ("127.0.0.1", 4574, 1500)
    assert (a.ami.port, a.ami.username, a.ami.secret) == (5038, "mgr", "s")
    default = parse_config("{}\n").asterisk
    assert default.mode.value == "ari" and default.uses_ari and not default.uses_agi


def test_call_spool_is_a_path_as_ctm_pbx_sees_it() -> None:
    default = parse_config("{}\n").asterisk
    assert default.call_spool == "/var/spool/asterisk/ctm-pbx/calls.spool"
    cfg = parse_config("asterisk: {call_spool: spool/calls.spool}\n", base_dir="/srv/ctm")
    assert cfg.asterisk.call_spool == "/srv/ctm/spool/calls.spool"
    absolute = parse_config("asterisk: {call_spool: /chroot/var/calls.spool}\n")
    assert absolute.asterisk.call_spool == "/chroot/var/calls.spool"


def test_pool_drain_settings() -> None:
    cfg = parse("tracking: {max_leases_per_client: 2, confirm_seconds: 90, max_visits_per_day: 7}")
    assert cfg.tracking.max_leases_per_client == 2
    assert cfg.tracking.confirm_seconds == 90 and cfg.tracking.max_visits_per_day == 7
    error = errors_of(
        "tracking:\n  max_leases_per_client: 0\n  confirm_seconds: 5\n  max_visits_per_day: x\n"
    )
    assert [(e.path, e.line) for e in error.errors] == [
        ("tracking.max_leases_per_client", 2),
        ("tracking.confirm_seconds", 3),
        ("tracking.max_visits_per_day", 4),
    ], str(error)
