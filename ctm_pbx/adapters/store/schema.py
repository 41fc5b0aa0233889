"""The schema, created and upgraded by sqlite-utils ``Migrations``.

Every table is browsable with stock tools (sqlite3, Datasette): plain names,
timestamps as ISO 8601 UTC text (``2026-11-28T00:01:19.123Z``), JSON in TEXT
columns named ``*_json``. Never edit an applied migration: add a new one.
"""

from __future__ import annotations

import logging

import sqlite_utils
from sqlite_utils.migrations import Migrations

from ctm_pbx.adapters.store import summaries
from ctm_pbx.adapters.store.db import StoreError

log = logging.getLogger(__name__)

migrations = Migrations("ctm_pbx")


class NewerSchema(StoreError):
    """The database was migrated by a newer ctm-pbx: this code must not write to it."""


@migrations()
def m001_inventory(db: sqlite_utils.Database) -> None:
    """Tracking numbers: the inventory (see the README, "Where tracking numbers live")."""
    db.execute(
        """
        CREATE TABLE tracking_numbers (
            number      TEXT PRIMARY KEY,          -- E.164
            label       TEXT NOT NULL DEFAULT '',
            source      TEXT,                      -- tracking source name (config)
            pool        TEXT,                      -- number pool name (config), on-site sources
            route       TEXT,                      -- route name (config)
            status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'released')),
            managed_by  TEXT NOT NULL CHECK (managed_by IN ('cli', 'config')),
            added_at    TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            released_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_tracking_numbers_pool ON tracking_numbers (pool, status)")
    db.execute("CREATE INDEX idx_tracking_numbers_source ON tracking_numbers (source, status)")


@migrations()
def m002_call_log(db: sqlite_utils.Database) -> None:
    """The call log: one row per call, and its legs (the route path)."""
    db.execute(
        """
        CREATE TABLE calls (
            id               INTEGER PRIMARY KEY,
            mode             TEXT NOT NULL DEFAULT 'ari',   -- ari | agi
            status           TEXT NOT NULL DEFAULT 'in_progress'
                             CHECK (status IN ('in_progress', 'completed')),
            started_at       TEXT NOT NULL,
            answered_at      TEXT,
            ended_at         TEXT,
            tracking_number  TEXT NOT NULL,              -- the DID dialled (E.164 when known)
            caller_number    TEXT,                       -- E.164 where possible
            caller_name      TEXT,
            source           TEXT,
            pool             TEXT,
            route            TEXT,
            outcome          TEXT CHECK (outcome IN
                             ('answered', 'no_answer', 'busy', 'failed', 'abandoned', 'unknown')),
            hangup_cause     INTEGER,
            ring_seconds     REAL,
            talk_seconds     REAL,
            answered_by      TEXT,                       -- receiving number name, or 'failsafe'
            answered_number  TEXT,
            failsafe         INTEGER NOT NULL DEFAULT 0, -- the dialplan fail-safe took the call
            channel_id       TEXT UNIQUE,                -- Asterisk channel uniqueid
            linkedid         TEXT,
            path_json        TEXT NOT NULL DEFAULT '[]', -- the route path, step by step
            notes            TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute("CREATE INDEX idx_calls_started_at ON calls (started_at)")
    db.execute("CREATE INDEX idx_calls_tracking_number ON calls (tracking_number, started_at)")
    db.execute("CREATE INDEX idx_calls_caller_number ON calls (caller_number, started_at)")
    db.execute("CREATE INDEX idx_calls_open ON calls (status) WHERE status = 'in_progress'")
    db.execute(
        """
        CREATE TABLE call_legs (
            id                INTEGER PRIMARY KEY,
            call_id           INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            step              INTEGER NOT NULL,          -- legs rung together share a step
            route             TEXT,
            receiving_number  TEXT,                      -- name, or 'failsafe'
            number            TEXT,
            dial_string       TEXT,
            started_at        TEXT NOT NULL,
            ended_at          TEXT,
            result            TEXT,  -- answered | no_answer | busy | failed | cancelled | abandoned
            dial_status       TEXT,  -- Asterisk DIALSTATUS
            ring_seconds      REAL,
            talk_seconds      REAL,
            hangup_cause      INTEGER
        )
        """
    )
    db.execute("CREATE INDEX idx_call_legs_call ON call_legs (call_id, step)")


@migrations()
def m003_visits_and_leases(db: sqlite_utils.Database) -> None:
    """Website visitors, their visits (touches) and pool leases.

    ``leases`` answers "who held number N at time T": the index on
    (number, leased_at) finds the candidates, ``last_active_at`` says how long
    each had been idle when the call came.
    """
    db.execute(
        """
        CREATE TABLE visitors (
            id             TEXT PRIMARY KEY,
            first_seen_at  TEXT NOT NULL,
            last_seen_at   TEXT NOT NULL,
            source         TEXT,                -- the attributed source (first/last touch)
            visit_id       TEXT                 -- the visit that set it
        )
        """
    )
    db.execute(
        """
        CREATE TABLE visits (
            id              TEXT PRIMARY KEY,
            visitor_id      TEXT NOT NULL REFERENCES visitors (id),
            started_at      TEXT NOT NULL,
            last_active_at  TEXT NOT NULL,
            source          TEXT,
            source_rule     TEXT,                -- why: the rule that matched
            landing_url     TEXT,
            referrer        TEXT,
            utm_source      TEXT,
            utm_medium      TEXT,
            utm_campaign    TEXT,
            utm_term        TEXT,
            utm_content     TEXT,
            click_ids_json  TEXT NOT NULL DEFAULT '{}',
            pages           INTEGER NOT NULL DEFAULT 1,
            ip              TEXT,
            user_agent      TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_visits_visitor ON visits (visitor_id, started_at)")
    db.execute(
        """
        CREATE TABLE leases (
            id              INTEGER PRIMARY KEY,
            number          TEXT NOT NULL,
            pool            TEXT NOT NULL,
            visitor_id      TEXT NOT NULL REFERENCES visitors (id),
            visit_id        TEXT REFERENCES visits (id),
            leased_at       TEXT NOT NULL,
            last_active_at  TEXT NOT NULL,
            expires_at      TEXT NOT NULL,
            shared          INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX idx_leases_number_time ON leases (number, leased_at)")
    db.execute("CREATE INDEX idx_leases_number_active ON leases (number, last_active_at)")
    db.execute("CREATE INDEX idx_leases_visitor ON leases (visitor_id, pool)")


@migrations()
def m004_route_state(db: sqlite_utils.Database) -> None:
    """Per-route memory that outlives the daemon (round-robin position)."""
    db.execute(
        """
        CREATE TABLE route_state (
            route       TEXT PRIMARY KEY,
            state_json  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )
        """
    )


@migrations()
def m005_pool_assignment(db: sqlite_utils.Database) -> None:
    """Pool assignment: active leases by number and expiry; per-pool counters.

    ``idx_leases_number_expires`` answers both "who holds these numbers now"
    (``expires_at > now``) and "who held number N within the window"
    (``expires_at >= since``) with a range scan, however long the history.
    """
    db.execute("CREATE INDEX idx_leases_number_expires ON leases (number, expires_at)")
    db.execute(
        """
        CREATE TABLE pool_stats (
            pool             TEXT PRIMARY KEY,
            leases           INTEGER NOT NULL DEFAULT 0,  -- new leases handed out
            shares           INTEGER NOT NULL DEFAULT 0,  -- of which shared a held number
            overflows        INTEGER NOT NULL DEFAULT 0,  -- visitors shown the overflow number
            peak_concurrent  INTEGER NOT NULL DEFAULT 0,  -- most active leases at once
            peak_at          TEXT,
            since            TEXT NOT NULL,               -- counting started (or was reset)
            updated_at       TEXT NOT NULL
        )
        """
    )


@migrations()
def m006_call_attribution(db: sqlite_utils.Database) -> None:
    """What the call log knows of the caller's website visit, and how sure it is."""
    for column, kind in (
        ("visitor_id", "TEXT"),
        ("visit_id", "TEXT"),
        ("attribution_confidence", "REAL"),
        ("attribution_reason", "TEXT"),
        ("attribution_candidates_json", "TEXT NOT NULL DEFAULT '[]'"),
        ("landing_url", "TEXT"),
        ("referrer", "TEXT"),
        ("utm_source", "TEXT"),
        ("utm_medium", "TEXT"),
        ("utm_campaign", "TEXT"),
        ("utm_term", "TEXT"),
        ("utm_content", "TEXT"),
        ("click_ids_json", "TEXT NOT NULL DEFAULT '{}'"),
        ("pages", "INTEGER"),
        ("previous_call_id", "INTEGER"),
    ):
        db.execute(f"ALTER TABLE calls ADD COLUMN {column} {kind}")
    db.execute("CREATE INDEX idx_calls_visitor ON calls (visitor_id)")


@migrations()
def m007_caller_location(db: sqlite_utils.Database) -> None:
    """Where the caller is: from the number's area code, or a ZIP entered in a menu."""
    for column in (
        "caller_place",  # e.g. "Chicago, IL"
        "caller_region",  # state/province code, e.g. IL
        "caller_area_code",
        "caller_zip",
        "caller_county",
        "caller_location_source",  # number | zip
    ):
        db.execute(f"ALTER TABLE calls ADD COLUMN {column} TEXT")


@migrations()
def m008_ivr_input(db: sqlite_utils.Database) -> None:
    """The keys the caller pressed in menus (and a ZIP code they entered), in order."""
    db.execute("ALTER TABLE calls ADD COLUMN ivr_digits TEXT")


@migrations()
def m009_queue(db: sqlite_utils.Database) -> None:
    """The queue part of a call: which queue, position at entry, wait, the agent."""
    for column, kind in (
        ("queue_name", "TEXT"),
        ("queue_status", "TEXT"),  # CONNECTED, TIMEOUT, FULL, ABANDONED, ...
        ("queue_position", "INTEGER"),
        ("queue_wait_seconds", "REAL"),
        ("queue_agent", "TEXT"),
    ):
        db.execute(f"ALTER TABLE calls ADD COLUMN {column} {kind}")


@migrations()
def m010_media(db: sqlite_utils.Database) -> None:
    """Files of a call: the recording of the conversation, a voicemail message."""
    for column, kind in (
        ("recording_path", "TEXT"),
        ("recording_seconds", "REAL"),
        ("voicemail_path", "TEXT"),
        ("voicemail_seconds", "REAL"),
    ):
        db.execute(f"ALTER TABLE calls ADD COLUMN {column} {kind}")


@migrations()
def m011_voicemail_outcome(db: sqlite_utils.Database) -> None:
    """Allow the outcome 'voicemail' (a call that ended in a voicemail message).

    Widening a CHECK constraint changes no stored data, so the table definition is
    edited in place (SQLite's documented way: writable_schema, then a new
    schema_version) instead of copying the table.
    """
    old = "'abandoned', 'unknown')"
    new = "'abandoned', 'unknown', 'voicemail')"
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'calls'")
    text = sql.fetchone()[0]
    if old not in text:
        raise RuntimeError("calls.outcome has an unexpected CHECK constraint")
    version = db.execute("PRAGMA schema_version").fetchone()[0]
    db.execute("PRAGMA writable_schema = ON")
    db.execute(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'calls'",
        [text.replace(old, new)],
    )
    db.execute(f"PRAGMA schema_version = {version + 1}")
    db.execute("PRAGMA writable_schema = OFF")
    problems = db.execute("PRAGMA integrity_check").fetchall()
    if problems != [("ok",)]:
        raise RuntimeError(f"integrity check after widening calls.outcome: {problems}")


@migrations()
def m012_dashboard(db: sqlite_utils.Database) -> None:
    """Dashboard users (argon2 password hashes), their sessions, calls' tags and note.

    ``notes`` stays ctm-pbx's own remark on the call; ``comment`` is a person's.
    """
    db.execute(
        """
        CREATE TABLE users (
            name           TEXT PRIMARY KEY,
            password_hash  TEXT NOT NULL,               -- argon2id, with its parameters
            role           TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
            created_at     TEXT NOT NULL,
            updated_at     TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE sessions (
            token_hash    TEXT PRIMARY KEY,             -- sha256 of the cookie's token
            user          TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
            csrf          TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            last_seen_at  TEXT NOT NULL
        )
        """
    )
    db.execute("ALTER TABLE calls ADD COLUMN tags TEXT NOT NULL DEFAULT ''")  # ",a,b," form
    db.execute("ALTER TABLE calls ADD COLUMN comment TEXT NOT NULL DEFAULT ''")


@migrations()
def m013_late_attribution(db: sqlite_utils.Database) -> None:
    """Calls whose row came from the dialplan's call spool (adapters/call_spool.py): the
    attribution was computed after the call, from the leases as they were at its start."""
    db.execute("ALTER TABLE calls ADD COLUMN attributed_late INTEGER NOT NULL DEFAULT 0")


@migrations()
def m014_pool_hand_out(db: sqlite_utils.Database) -> None:
    """Hand-out in O(log n), and what pool-drain defences count.

    ``tracking_numbers.free_at``: when the number may go to a new visitor, the later
    of its last confirmed holder's activity + lease + cooldown and the end of its
    unconfirmed leases (NULL: never used). The index on (pool, status, free_at)
    makes "the number whose holders were active longest ago" one seek, however many
    numbers and leases there are. ``last_active_at``: the latest confirmed activity
    (a lease renewed at least once); ``held_until``: the end of the latest lease not
    yet confirmed. ``leases.client`` is the client (IPv4 address, IPv6 /48) that
    took the lease, for the cap on leases one client holds at once. Existing
    numbers start with ``free_at`` at their leases' last expiry (no cooldown).
    """
    db.execute("ALTER TABLE tracking_numbers ADD COLUMN last_active_at TEXT")
    db.execute("ALTER TABLE tracking_numbers ADD COLUMN held_until TEXT")
    db.execute("ALTER TABLE tracking_numbers ADD COLUMN free_at TEXT")
    db.execute(
        "UPDATE tracking_numbers SET"
        " last_active_at = (SELECT max(last_active_at) FROM leases"
        " WHERE leases.number = tracking_numbers.number),"
        " free_at = (SELECT max(expires_at) FROM leases"
        " WHERE leases.number = tracking_numbers.number)"
    )
    db.execute(
        "CREATE INDEX idx_tracking_numbers_hand_out ON tracking_numbers (pool, status, free_at)"
    )
    db.execute("ALTER TABLE leases ADD COLUMN client TEXT")
    db.execute("CREATE INDEX idx_leases_client ON leases (client, pool, expires_at)")
    for column in ("crawlers", "capped", "unconfirmed"):
        db.execute(f"ALTER TABLE pool_stats ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


@migrations()
def m015_visit_signals(db: sqlite_utils.Database) -> None:
    """What the page tells beyond the number: when it closed, the browser's time zone
    and language (coarse, for attribution), and Google Analytics' client and session
    ids (for GA4 events of the visit's calls)."""
    db.execute("ALTER TABLE leases ADD COLUMN closed_at TEXT")
    for column in ("time_zone", "language", "ga_client_id", "ga_session_id"):
        db.execute(f"ALTER TABLE visits ADD COLUMN {column} TEXT")


@migrations()
def m016_outbox(db: sqlite_utils.Database) -> None:
    """The outbox: what is to leave the building (webhooks, GA4), one row per event and
    destination, written in the transaction of the call-log change that caused it.

    ``event_id`` is the event's stable id (the same for every destination: receivers
    deduplicate on it); ``id`` orders a destination's deliveries. ``payload_json`` is
    the body as first sent (NULL until then), so that retries send the same bytes.
    One index only (what is still to send, per destination): the rows are written on
    the call path.
    ``outbox_destinations`` remembers a destination disabled by an HTTP 410. States:
    pending (not tried yet), failed (tried, to be tried again at ``next_attempt_at``),
    delivered, dead (gave up: too many attempts or too old), skipped (nothing to send,
    e.g. a GA4 event for a call whose visit has no GA client id).
    """
    db.execute(
        """
        CREATE TABLE outbox (
            id               INTEGER PRIMARY KEY,
            event_id         TEXT NOT NULL,
            destination      TEXT NOT NULL,           -- webhooks.<name>, or ga4
            event_type       TEXT NOT NULL,           -- call.started, call.completed, ...
            call_id          INTEGER,
            payload_json     TEXT,
            state            TEXT NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'delivered', 'failed', 'dead', 'skipped')),
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  TEXT NOT NULL,
            last_error       TEXT,
            last_status      INTEGER,                 -- the last HTTP status, if any
            created_at       TEXT NOT NULL,           -- when the event happened
            queued_at        TEXT NOT NULL,           -- its age counts from here (retry)
            delivered_at     TEXT
        )
        """
    )
    db.execute(
        "CREATE INDEX idx_outbox_due ON outbox (destination, id)"
        " WHERE state IN ('pending', 'failed')"
    )
    db.execute(
        """
        CREATE TABLE outbox_destinations (
            destination   TEXT PRIMARY KEY,
            disabled_at   TEXT,                       -- set by an HTTP 410 (Gone)
            reason        TEXT
        )
        """
    )


@migrations()
def m017_report_summaries(db: sqlite_utils.Database) -> None:
    """Report summaries: the completed calls' sums per UTC month/day/hour/quarter and
    dimension (``call_summary``), filled here from the calls stored and kept from now on
    by triggers on ``calls``, in the transaction of every write of a call, whoever makes
    it (see adapters/store/summaries.py). Qualified calls are counted as answered with
    >= 30 s of talk until the configured rule is synced (``summaries.sync_rule``, at
    ``ctm-pbx run`` and ``db migrate``). A migration that rebuilds ``calls`` must create
    the triggers again."""
    summaries.install(db, min_talk_seconds=30.0)


@migrations()
def m018_retention(db: sqlite_utils.Database) -> None:
    """What retention and erasure seek (``adapters/store/retention.py``), so that each of
    their batches is a range of an index rather than a scan of the table: visits and
    leases that still hold an address or user agent (partial indexes: a row leaves them
    once blanked), visits by age, leases by visit, calls that still reference a file."""
    db.execute(
        "CREATE INDEX idx_visits_identifying ON visits (started_at)"
        " WHERE ip IS NOT NULL OR user_agent IS NOT NULL"
    )
    db.execute("CREATE INDEX idx_visits_started ON visits (started_at)")
    db.execute("CREATE INDEX idx_leases_identifying ON leases (leased_at) WHERE client IS NOT NULL")
    db.execute("CREATE INDEX idx_leases_visit ON leases (visit_id)")
    db.execute(
        "CREATE INDEX idx_calls_media ON calls (started_at)"
        " WHERE recording_path IS NOT NULL OR voicemail_path IS NOT NULL"
    )


@migrations()
def m019_url_summaries(db: sqlite_utils.Database) -> None:
    """Landing pages and referrers in the report summary: the path of ``landing_url`` and
    the host of ``referrer`` (adapters/store/url_parts.py) per UTC day. The triggers are
    created again with those dimensions, and their rows filled from the calls stored (the
    other rows stay as m017's triggers kept them)."""
    summaries.create_triggers(db)
    summaries.rebuild(db, summaries.URL_DIMS)


@migrations()
def m021_unconfirmed_in_line(db: sqlite_utils.Database) -> None:
    """A number just handed out ranks as held by a visitor active now (issue 17).

    A new lease moves the number's ``free_at`` to where a holder active now would put
    it (``core.pools.in_line_until``), and ``bounce_free_at`` keeps where it goes back to
    if the lease ends without a heartbeat (a bounce frees its number at its first
    expiry, without a rest): NULL when no unconfirmed lease is pending. The partial index
    on ``held_until`` finds the numbers whose unconfirmed leases have all ended, in one
    range. Existing numbers start with none pending.
    """
    db.execute("ALTER TABLE tracking_numbers ADD COLUMN bounce_free_at TEXT")
    db.execute(
        "CREATE INDEX idx_tracking_numbers_unconfirmed ON tracking_numbers (held_until)"
        " WHERE bounce_free_at IS NOT NULL"
    )


def pending(db: sqlite_utils.Database) -> list[str]:
    return [m.name for m in migrations.pending(db)]


def unknown(db: sqlite_utils.Database) -> list[str]:
    """Migrations applied to ``db`` that this code does not have (a newer ctm-pbx's)."""
    ours = {m.name for m in migrations._migrations}
    return [m.name for m in migrations.applied(db) if m.name not in ours]


def version(db: sqlite_utils.Database) -> str:
    """The database's schema: the last migration applied ("empty" if none)."""
    applied = migrations.applied(db)
    return applied[-1].name.split("_", 1)[0] if applied else "empty"


def refuse_newer(db: sqlite_utils.Database, path: object) -> None:
    """Refuse to write a database a newer ctm-pbx migrated: this code does not know what
    its migrations changed. The one rule for the daemon (its writer) and every command
    that opens the database for writing (``db migrate`` and ``run`` included)."""
    newer = unknown(db)
    if newer:
        raise NewerSchema(
            f"database {path}: its schema is newer than this ctm-pbx ({', '.join(newer)}"
            f" applied by a newer version): upgrade ctm-pbx, or restore the backup"
            f" 'db migrate' took before that upgrade"
        )


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations; return the names applied."""
    todo = pending(db)
    if todo:
        migrations.apply(db)
        log.info("applied migrations: %s", ", ".join(todo))
    return todo
