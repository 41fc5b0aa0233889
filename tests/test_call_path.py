"""Path entries: stored as JSON objects, read back as the same typed entries, and told
in words for the CLI and the dashboard."""

from __future__ import annotations

import json

import pytest

from ctm_pbx.core.call.path import (
    DefaultDestinationEntry,
    DialEntry,
    FailsafeEntry,
    FallbackEntry,
    GeoEntry,
    MenuEntry,
    QueueEntry,
    RingEntry,
    ScheduleEntry,
    UnknownEntry,
    VoicemailEntry,
    ZipEntry,
    describe,
    from_dict,
    retimed,
    when,
)

AT = "2026-12-01T15:00:00.000Z"
ENTRIES = [
    DialEntry(1, "sales", "NOANSWER", AT, AT, 15.0, (RingEntry("desk-1", "+1312", "no_answer"),)),
    DialEntry(2, None, "ANSWER", AT, AT, 2.5, ()),
    QueueEntry(3, "support-q", "CONNECTED", 2, 31.0, "desk-2", AT, AT),
    FallbackEntry("route", "sales", AT, to_route="support"),
    FallbackEntry("number", "sales", AT, to_number="+13125550199"),
    FallbackEntry("busy", "sales", AT),
    ScheduleEntry("weekdays", False, "office", AT, to_route="night"),
    ScheduleEntry("weekdays", False, "office", AT, to="busy"),
    GeoEntry({"region": "IL", "area_code": "312", "from": "number"}, "by-region", AT, "office"),
    MenuEntry("menu", "1", AT, to="route:sales"),
    MenuEntry("menu", None, AT, result="timeout"),
    ZipEntry("zip", "60606", AT),
    ZipEntry("zip", None, AT, valid=False),
    VoicemailEntry("ctm-pbx/voicemail", AT),
    FailsafeEntry("handler error: boom", AT),
    DefaultDestinationEntry("ctm-pbx answered too late", AT),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: type(e).__name__)
def test_an_entry_survives_the_call_row(entry) -> None:
    stored = json.loads(json.dumps(entry.as_dict()))
    assert from_dict(stored) == entry
    assert when(stored) == AT


def test_optional_keys_are_left_out_when_empty() -> None:
    assert FallbackEntry("busy", "sales", AT).as_dict() == {
        "fallback": "busy",
        "from_route": "sales",
        "at": AT,
    }
    assert MenuEntry("menu", None, AT, result="timeout").as_dict() == {
        "ivr": "menu",
        "key": None,
        "at": AT,
        "result": "timeout",
    }


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (ENTRIES[0], "step 1 route sales: desk-1=no_answer (NOANSWER, rang 15.0s)"),
        (ENTRIES[1], "step 2 route -:  (ANSWER, rang 2.5s)"),
        (ENTRIES[2], "step 3 queue support-q: CONNECTED after 31.0s, agent desk-2"),
        (ENTRIES[3], "fallback of sales: route support"),
        (ENTRIES[5], "fallback of sales: busy"),
        (ENTRIES[6], "schedule: weekdays; open: False; from route: office; to route: night"),
        (ENTRIES[14], "fail-safe: handler error: boom"),
        (ENTRIES[15], "default destination: ctm-pbx answered too late"),
    ],
)
def test_entries_in_words(entry, words) -> None:
    assert describe(entry.as_dict()) == words


def test_a_shape_this_code_does_not_know_is_kept_and_shown() -> None:
    stored = {"transfer": "desk-9", "at": AT}
    entry = from_dict(stored)
    assert isinstance(entry, UnknownEntry) and entry.as_dict() == stored
    assert describe(stored) == "transfer: desk-9" and when(stored) == AT


def test_an_entry_missing_a_key_it_needs_is_kept_as_it_is() -> None:
    stored = {"fallback": "busy", "at": AT}  # no from_route
    assert isinstance(from_dict(stored), UnknownEntry)


def test_a_planned_entry_takes_the_time_it_happened() -> None:
    later = "2026-12-01T15:00:30.000Z"
    assert retimed(FallbackEntry("busy", "sales", AT), later).at == later
