"""The AMI client's short path for call events, against byte streams as Asterisk sends them."""

from __future__ import annotations

import asyncio

from ctm_pbx.adapters.ami_client import _FastEventProtocol, _Manager

EOL = "\r\n"


def event(name: str, **headers: str) -> bytes:
    lines = [f"Event: {name}", "Privilege: call,all", *(f"{k}: {v}" for k, v in headers.items())]
    return (EOL.join(lines) + EOL + EOL).encode()


async def rig() -> tuple[_FastEventProtocol, list[dict], list]:
    manager = _Manager(loop=asyncio.get_running_loop())
    fast: list[dict] = []
    slow: list = []
    manager.fast_event = fast.append
    manager.register_event("*", lambda mgr, msg: slow.append(msg))
    proto = _FastEventProtocol()
    proto.connection_made(None)
    proto.factory = manager
    proto.data_received(b"Asterisk Call Manager/11.0.0\r\n")  # the banner, as on connect
    return proto, fast, slow


async def test_call_events_take_the_short_path_others_do_not() -> None:
    proto, fast, slow = await rig()
    proto.data_received(
        event("DialBegin", Uniqueid="u-1", DestUniqueid="d-1", DialString="phone1")
        + event("Newchannel", Uniqueid="u-9")
        + event("Hangup", Uniqueid="u-1", Cause="16")
    )
    assert [(e["Event"], e["Uniqueid"]) for e in fast] == [("DialBegin", "u-1"), ("Hangup", "u-1")]
    assert fast[0]["DialString"] == "phone1" and fast[1]["Cause"] == "16"
    assert [m.event for m in slow] == ["Newchannel"]


async def test_a_message_split_across_reads_is_joined() -> None:
    proto, fast, _ = await rig()
    data = event("DialEnd", Uniqueid="u-2", DialStatus="ANSWER") + event("Hangup", Uniqueid="u-2")
    for i in range(0, len(data), 7):  # seven bytes at a time
        proto.data_received(data[i : i + 7])
    assert [(e["Event"], e.get("DialStatus")) for e in fast] == [
        ("DialEnd", "ANSWER"),
        ("Hangup", None),
    ]


async def test_hangup_request_is_not_mistaken_for_hangup() -> None:
    proto, fast, slow = await rig()
    proto.data_received(event("HangupRequest", Uniqueid="u-3"))
    assert fast == [] and [m.event for m in slow] == ["HangupRequest"]


async def test_action_responses_still_reach_their_future() -> None:
    proto, _, _ = await rig()
    proto.transport = type("T", (), {"write": lambda self, data: None})()
    future = proto.send({"Action": "Ping", "ActionID": "a-1"})
    proto.data_received(b"Response: Success\r\nActionID: a-1\r\nPing: Pong\r\n\r\n")
    response = await asyncio.wait_for(future, 1)
    assert response.success and response["Ping"] == "Pong"


async def test_events_of_channels_not_followed_are_dropped_unparsed() -> None:
    proto, fast, slow = await rig()
    proto.factory.wants = {"u-1"}.__contains__
    proto.data_received(
        event("DialBegin", Uniqueid="u-1", DestUniqueid="d-1", DialString="phone1")
        + event("Hangup", Uniqueid="d-1", Cause="16")  # the phone's leg
        + event("DialEnd", Uniqueid="u-7", DestUniqueid="u-1", DialStatus="ANSWER")
        + event("Hangup", Uniqueid="u-1", Cause="16")
    )
    assert [(e["Event"], e["Uniqueid"]) for e in fast] == [("DialBegin", "u-1"), ("Hangup", "u-1")]
    assert slow == [], "dropped, not handed to panoramisk's slow path"
