"""SIP test harness: sipp phones and a sipp carrier around the sandbox Asterisk.

Everything runs on 127.0.0.1. The endpoints are those of tests/asterisk/pjsip_local.conf
and docker/asterisk/etc/pjsip.conf:

- ``Phone``: a sipp UAS standing in for a test phone (phone1..phone4 on 127.0.0.1:5081..5084,
  the fail-safe on 5099). It takes any number of calls in a row with one behaviour:
  ``answer`` (rings ``ring_ms``, answers, optionally hangs up itself after ``hangup_ms``),
  ``busy`` (486) or ``noanswer`` (rings until CANCEL).
- ``Carrier``: sipp UACs standing in for the SIP trunk (127.0.0.1:5070; 5071 is the
  ``carrier-info`` endpoint, DTMF by SIP INFO). ``place_call`` runs one call and returns a
  ``CallResult``; ``place_calls`` runs many (rate, count) and returns a ``BatchResult``.
- ``Asterisk``: the running sandbox (``scripts/asterisk-sandbox``): CLI commands, ARI GETs,
  channels left.

The scenarios are tests/sipp/*.xml. Durations are passed as sipp ``-key`` keywords
(sipp 3.6 takes no keyword in ``timeout``/``milliseconds`` attributes; the scenarios loop on
short receive timeouts instead, so that a CANCEL or BYE is taken while "pausing").
What each sipp did is read from its ``-trace_logs`` file (one event line per step: INVITE,
ANSWERED, CANCELLED, ...) and, for the carrier, from ``-trace_shortmsg`` (every SIP message
sent/received, so the final status code of any call, even an unexpected one).

Every sipp is bounded in time (its own ``-timeout``; a stop is SIGUSR1, then a second SIGUSR1,
then SIGKILL, each after a bound) and stopped by its own PID.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "sipp"
SANDBOX = REPO / "scripts" / "asterisk-sandbox"

LOOPBACK = "127.0.0.1"
ASTERISK_SIP_PORT = 5060

#: SIP ports of the test endpoints (Asterisk's AORs point there).
PHONE_PORTS: dict[str, int] = {
    "phone1": 5081,
    "phone2": 5082,
    "phone3": 5083,
    "phone4": 5084,
    "failsafe": 5099,
}
#: The carrier trunk (dtmf rfc4733) and the carrier-info trunk (dtmf by SIP INFO).
CARRIER_PORT = 5070
CARRIER_INFO_PORT = 5071

#: DIDs of the test dialplan: the no-ARI baseline (Dial(PJSIP/phone1) directly) and a
#: tracking number (Stasis(ctm-pbx); the fail-safe when no app is connected).
BASELINE_DID = "16665550100"
TRACKING_DID = "13125550142"
DEFAULT_CALLER = "+13125550100"

Behaviour = Literal["answer", "busy", "noanswer"]
Scenario = Literal["call", "reject", "cancel", "dtmf_info", "dtmf_2833"]

_UAS_FILES: dict[str, str] = {
    "answer": "uas_answer.xml",
    "busy": "uas_busy.xml",
    "noanswer": "uas_noanswer.xml",
}
_UAC_FILES: dict[str, str] = {
    "call": "uac_call.xml",
    "reject": "uac_expect_reject.xml",
    "cancel": "uac_cancel.xml",
    "dtmf_info": "uac_dtmf_info.xml",
    "dtmf_2833": "uac_dtmf_2833.xml",
}

# sipp exit codes (sipp(1)): 0 all calls succeeded, 1 at least one failed, 97 internal
# command, 99 normal exit without calls processed, 255 (-1) fatal error, 254 (-2) fatal
# error binding a socket.
SIPP_FATAL = (254, 255)


class SippError(RuntimeError):
    """sipp could not run (bad scenario, port in use, ...)."""


def media_port(sip_port: int) -> int:
    """The RTP port of the sipp on ``sip_port``.

    sipp binds -mp and -mp + 2 (video), so ports one apart (sip port + 11000) would
    collide between phone1 and phone3: spread them 10 apart, below Asterisk's RTP range
    (20000-29999): 5070 -> 10700, 5081 -> 10810, 5099 -> 10990.
    """
    return 10000 + (sip_port - 5000) * 10


def control_port(sip_port: int) -> int:
    """sipp's UDP control socket (bound on -ci 127.0.0.1, else 0.0.0.0:8888)."""
    return 12000 + (sip_port - 5000)


def udp_port_bound(port: int, host: str = LOOPBACK) -> bool:
    """True when some socket is bound to ``host:port`` (UDP), from /proc/net/udp."""
    octets = host.split(".")
    want_ip = "".join(f"{int(o):02X}" for o in reversed(octets))
    wanted = {f"{want_ip}:{port:04X}", f"00000000:{port:04X}"}
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] in wanted for line in lines if len(line.split()) > 1)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    # sipp's screen uses terminal escapes; keep it readable
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    return "\n".join(text.splitlines()[-lines:])


def _sipp_base(port: int) -> list[str]:
    return [
        "sipp",
        "-i", LOOPBACK,
        "-mi", LOOPBACK,
        "-p", str(port),
        "-mp", str(media_port(port)),
        "-ci", LOOPBACK,
        "-cp", str(control_port(port)),
        "-nostdin",
    ]


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """Soft stop of a sipp: SIGUSR1 (no new calls, exit when the calls are over), a second
    SIGUSR1 after ``grace_s`` (quit now), SIGKILL 2 s later. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    steps: list[tuple[signal.Signals, float]] = [
        (signal.SIGUSR1, grace_s),
        (signal.SIGUSR1, 2.0),
        (signal.SIGKILL, 5.0),
    ]
    for sig, wait_s in steps:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """One line of a scenario's ``-trace_logs`` file, e.g. ``ANSWERED call=abc``."""

    kind: str
    call_id: str
    fields: dict[str, str]
    line: str


def parse_events(path: Path) -> list[Event]:
    """Events of a ``-trace_logs`` file (missing file: none).

    A line is ``KIND [ARG] key=value ...``: ``FINAL 486 call=X``, ``DTMF 1 call=X``,
    ``INVITE call=X from=sip:+13125550100 INVITE sip:phone1`` (fields ``from``, ``to``).
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    events: list[Event] = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or not tokens[0].isupper():
            continue
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        if len(tokens) > 1 and "=" not in tokens[1]:
            fields["arg"] = tokens[1]
        if tokens[0] == "INVITE":
            ruri = re.search(r" INVITE sip:([^\s@;>]*)", line)
            if ruri:
                fields["to"] = ruri.group(1)
            fields["from"] = fields.get("from", "").removeprefix("sip:")
        events.append(Event(tokens[0], fields.get("call", ""), fields, line.strip()))
    return events


@dataclass(frozen=True)
class SipMessage:
    """One line of sipp's ``-trace_shortmsg`` file."""

    time: float
    direction: Literal["S", "R"]
    call_id: str
    cseq_method: str
    first_line: str

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(m.group(1)) if m else None


def parse_shortmsg(path: Path) -> list[SipMessage]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    out: list[SipMessage] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 7 or parts[3] not in ("S", "R"):
            continue
        try:
            t = float(parts[2])
        except ValueError:
            continue
        method = parts[5].split()[-1] if parts[5].split() else ""
        out.append(SipMessage(t, parts[3], parts[4], method, parts[6]))  # type: ignore[arg-type]
    return out


def invite_statuses(messages: list[SipMessage]) -> dict[str, list[int]]:
    """Per Call-ID, the status codes received for the INVITE, in order."""
    codes: dict[str, list[int]] = {}
    for msg in messages:
        if msg.direction == "R" and msg.cseq_method == "INVITE" and msg.status is not None:
            codes.setdefault(msg.call_id, []).append(msg.status)
    return codes


def final_status(codes: list[int]) -> int | None:
    return next((c for c in codes if c >= 200), None)


def screen_counts(path: Path) -> dict[str, int]:
    """'Successful call' / 'Failed call' ... cumulative counts of sipp's final screen."""
    counts: dict[str, int] = {}
    for line in _tail(path, 200).splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) >= 3 and cols[-1].isdigit():
            counts[cols[0]] = int(cols[-1])
    return counts


# --------------------------------------------------------------------------- phones


@dataclass(frozen=True)
class PhoneStats:
    """What a phone did, from its events."""

    invites: int
    answered: int
    completed: int  # the other side hung up an answered call
    hungup: int  # this phone hung up an answered call (hangup_ms)
    cancelled: int
    busy: int
    gave_up: int
    callers: tuple[str, ...]  # From user of each INVITE, in order
    exit_code: int | None


class Phone:
    """A test phone: a sipp UAS on the endpoint's port.

    >>> with Phone("phone1", "answer", ring_ms=200, workdir=tmp) as p:
    ...     carrier.place_call(BASELINE_DID)
    >>> p.calls_answered
    1
    """

    def __init__(
        self,
        name: str,
        behaviour: Behaviour = "answer",
        *,
        workdir: Path,
        ring_ms: int = 0,
        hangup_ms: int = 0,
        port: int | None = None,
        max_s: int = 300,
        trace_msg: bool = True,
    ) -> None:
        if behaviour not in _UAS_FILES:
            raise ValueError(f"unknown phone behaviour {behaviour!r}")
        if port is None:
            if name not in PHONE_PORTS:
                raise ValueError(f"unknown test endpoint {name!r}: one of {sorted(PHONE_PORTS)}")
            port = PHONE_PORTS[name]
        self.name = name
        self.behaviour: Behaviour = behaviour
        self.port = port
        self.ring_ms = ring_ms
        self.hangup_ms = hangup_ms
        self.max_s = max_s
        self.trace_msg = trace_msg
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.workdir / f"{name}.events.log"
        self.out_file = self.workdir / f"{name}.sipp.out"
        self.msg_file = self.workdir / f"{name}.messages.log"
        self.screen_file = self.workdir / f"{name}.screen.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self._stats: PhoneStats | None = None

    # -- lifecycle

    def command(self) -> list[str]:
        cmd = _sipp_base(self.port) + [
            "-sf", str(SIPP_DIR / _UAS_FILES[self.behaviour]),
            "-timeout", f"{self.max_s}s",
            "-trace_logs", "-log_file", str(self.log_file),
            "-trace_screen", "-screen_file", str(self.screen_file),
        ]
        if self.behaviour == "answer":
            cmd += ["-key", "ring_ms", str(self.ring_ms), "-key", "hangup_ms", str(self.hangup_ms)]
        if self.trace_msg:
            cmd += ["-trace_msg", "-message_file", str(self.msg_file)]
        return cmd

    def start(self, timeout_s: float = 5.0) -> Phone:
        """Start sipp and return once it listens on its SIP port."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        if udp_port_bound(self.port):
            raise SippError(
                f"{self.name}: UDP {LOOPBACK}:{self.port} is already in use "
                "(a sipp left running by another test run?)"
            )
        with self.out_file.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                raise SippError(
                    f"{self.name}: sipp exited with {self.exit_code} at start:\n"
                    f"{_tail(self.out_file)}"
                )
            if udp_port_bound(self.port):
                return self
            time.sleep(0.01)
        self.stop()
        raise SippError(f"{self.name}: sipp did not bind {LOOPBACK}:{self.port} in {timeout_s} s")

    def stop(self, grace_s: float = 5.0) -> PhoneStats:
        """Stop softly (calls in progress may finish within ``grace_s``); return the stats."""
        if self.proc is not None and self.exit_code is None:
            self.exit_code = _stop_process(self.proc, grace_s)
        self._stats = self._read_stats()
        return self._stats

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Phone:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it did

    def events(self) -> list[Event]:
        return parse_events(self.log_file)

    def wait_for(self, kind: str, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until ``count`` events ``kind`` (INVITE, ANSWERED, ...) are logged."""
        deadline = time.monotonic() + timeout_s
        while True:
            if sum(e.kind == kind for e in self.events()) >= count:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _read_stats(self) -> PhoneStats:
        events = self.events()
        kinds = Counter(e.kind for e in events)
        return PhoneStats(
            invites=kinds["INVITE"],
            answered=kinds["ANSWERED"],
            completed=kinds["COMPLETED"],
            hungup=kinds["HUNGUP"],
            cancelled=kinds["CANCELLED"],
            busy=kinds["BUSY"],
            gave_up=kinds["GAVEUP"],
            callers=tuple(e.fields.get("from", "") for e in events if e.kind == "INVITE"),
            exit_code=self.exit_code,
        )

    @property
    def stats(self) -> PhoneStats:
        """Final stats once stopped; live (from the events so far) while running."""
        return self._stats if self._stats is not None and not self.running else self._read_stats()

    @property
    def invites(self) -> int:
        return self.stats.invites

    @property
    def calls_answered(self) -> int:
        return self.stats.answered

    @property
    def calls_completed(self) -> int:
        return self.stats.completed

    @property
    def cancels(self) -> int:
        return self.stats.cancelled

    @property
    def busy_sent(self) -> int:
        return self.stats.busy

    def describe(self) -> str:
        """For assertion messages: the events and the end of sipp's output."""
        return (
            f"{self.name} ({self.behaviour}, port {self.port}, exit {self.exit_code}) events:\n"
            + "\n".join(e.line for e in self.events())
            + f"\n--- sipp screen:\n{_tail(self.screen_file, 12) or _tail(self.out_file, 12)}"
        )


# --------------------------------------------------------------------------- carrier


@dataclass
class CallResult:
    """The outcome of one carrier call."""

    scenario: str
    did: str
    exit_code: int
    codes: list[int]  # every status received for the INVITE, in order (100, 180, 200 ...)
    final_code: int | None  # the first final (>= 200) status of the INVITE
    events: list[Event]
    elapsed_s: float
    workdir: Path
    timed_out: bool = False

    @property
    def answered(self) -> bool:
        return self.final_code == 200

    @property
    def ended_by(self) -> Literal["caller", "remote"] | None:
        kinds = {e.kind for e in self.events}
        if "REMOTE_BYE" in kinds:
            return "remote"
        if "HUNGUP" in kinds:
            return "caller"
        return None

    @property
    def success(self) -> bool:
        """The scenario went as it expects: call/dtmf answered and hung up, reject got a
        final failure, cancel got 487 after its CANCEL."""
        if self.timed_out or self.exit_code != 0:
            return False
        if self.scenario == "reject":
            return self.final_code is not None and self.final_code >= 300
        if self.scenario == "cancel":
            return self.final_code == 487
        return self.final_code == 200

    def describe(self) -> str:
        return (
            f"{self.scenario} to {self.did}: exit {self.exit_code}, codes {self.codes}, "
            f"final {self.final_code}, {self.elapsed_s:.2f} s"
            + (" TIMED OUT" if self.timed_out else "")
            + "\nevents: " + "; ".join(e.line for e in self.events)
            + f"\nworkdir {self.workdir}"
        )


@dataclass
class BatchResult:
    """The outcome of ``place_calls``."""

    scenario: str
    did: str
    count: int
    rate: float
    exit_code: int
    elapsed_s: float
    final_codes: Counter[int | None]  # final status -> number of calls (None: no final)
    sipp_counts: dict[str, int]  # sipp's own screen counts ("Successful call", ...)
    workdir: Path
    timed_out: bool = False
    per_call: dict[str, int | None] = field(default_factory=dict)

    @property
    def placed(self) -> int:
        return len(self.per_call)

    @property
    def answered(self) -> int:
        return self.final_codes.get(200, 0)

    @property
    def succeeded(self) -> int:
        return self.sipp_counts.get("Successful call", 0)

    @property
    def failed(self) -> int:
        return self.sipp_counts.get("Failed call", 0)

    def describe(self) -> str:
        return (
            f"{self.count} x {self.scenario} to {self.did} at {self.rate}/s: "
            f"exit {self.exit_code}, placed {self.placed}, "
            f"succeeded {self.succeeded}, failed {self.failed}, "
            f"finals {dict(self.final_codes)}, {self.elapsed_s:.2f} s"
            + (" TIMED OUT" if self.timed_out else "")
            + f"\nworkdir {self.workdir}"
        )


def _scenario_ms(scenario: str, hold_ms: int, cancel_ms: int, digits: str, gap_ms: int) -> int:
    """How long a call of ``scenario`` lasts by its own durations (ringing not counted)."""
    if scenario == "cancel":
        return cancel_ms
    if scenario == "reject":
        return 0
    if scenario.startswith("dtmf"):
        return hold_ms + (len(digits) + 1) * gap_ms + 1000
    return hold_ms


def _digits_2833_block(digits: str, gap_ms: int) -> str:
    """``~`` is not a digit: it plays a second of speech-like audio (g711a.pcap)."""
    names = {"#": "pound", "*": "star"}
    lines = []
    for d in digits:
        if d == "~":
            lines.append(
                '  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/>'
                "</action></nop>"
            )
            lines.append(f'  <pause milliseconds="{gap_ms}"/>')
            continue
        name = names.get(d, d)
        if not (d.isdigit() or d in names):
            raise ValueError(f"no RFC 2833 pcap for digit {d!r}")
        lines.append(
            f'  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_{name}.pcap"/>'
            "</action></nop>"
        )
        lines.append(f'  <pause milliseconds="{gap_ms}"/>')
    return "\n".join(lines)


class Carrier:
    """The SIP trunk: runs sipp UACs from 127.0.0.1:5070 (or 5071, carrier-info) to Asterisk.

    One sipp at a time per port (Asterisk identifies the trunk by source address).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int = CARRIER_PORT,
        asterisk_port: int = ASTERISK_SIP_PORT,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.asterisk_port = asterisk_port
        self._runs = 0

    def _scenario_args(
        self,
        scenario: Scenario,
        *,
        from_number: str,
        hold_ms: int,
        cancel_ms: int,
        digits: str,
        gap_ms: int,
        run_dir: Path,
    ) -> list[str]:
        if scenario not in _UAC_FILES:
            raise ValueError(f"unknown scenario {scenario!r}: one of {sorted(_UAC_FILES)}")
        path = SIPP_DIR / _UAC_FILES[scenario]
        keys: dict[str, str] = {"caller": from_number}
        if scenario in ("call", "dtmf_info", "dtmf_2833"):
            keys["hold_ms"] = str(hold_ms)
        if scenario == "cancel":
            keys["cancel_ms"] = str(cancel_ms)
        if scenario == "dtmf_info":
            keys["digits"] = digits
            keys["gap_ms"] = str(gap_ms)
        if scenario == "dtmf_2833":
            text = path.read_text()
            start, end = text.index("  <!-- DIGITS -->\n"), text.index("  <!-- /DIGITS -->")
            block = "  <!-- DIGITS -->\n" + _digits_2833_block(digits, gap_ms) + "\n"
            path = run_dir / "uac_dtmf_2833.xml"
            path.write_text(text[:start] + block + text[end:])
        args = ["-sf", str(path)]
        for k, v in keys.items():
            args += ["-key", k, v]
        return args

    def _run(
        self,
        did: str,
        scenario: Scenario,
        *,
        count: int,
        rate: float,
        from_number: str,
        hold_ms: int,
        cancel_ms: int,
        digits: str,
        gap_ms: int,
        port: int | None,
        timeout_s: float,
        max_concurrent: int | None,
        trace_msg: bool,
    ) -> tuple[int, bool, float, Path]:
        if scenario in ("dtmf_info",) and port is None:
            port = CARRIER_INFO_PORT
        port = port or self.port
        self._runs += 1
        run_dir = self.workdir / f"{self._runs:03d}-{scenario}-{did}"
        run_dir.mkdir(parents=True, exist_ok=True)
        if udp_port_bound(port):
            raise SippError(f"carrier: UDP {LOOPBACK}:{port} is already in use")
        cmd = _sipp_base(port) + self._scenario_args(
            scenario, from_number=from_number, hold_ms=hold_ms, cancel_ms=cancel_ms,
            digits=digits, gap_ms=gap_ms, run_dir=run_dir,
        ) + [
            "-s", did,
            f"{LOOPBACK}:{self.asterisk_port}",
            "-m", str(count),
            "-r", str(rate),
            # an unanswered step aborts its call (INVITE pending: sipp CANCELs it)
            "-recv_timeout", str(max(1000, int(timeout_s * 1000) - 1000)),
            "-timeout", f"{int(timeout_s) + 1}s",
            "-timeout_error",
            "-trace_logs", "-log_file", str(run_dir / "events.log"),
            "-trace_shortmsg", "-shortmessage_file", str(run_dir / "shortmessages.log"),
            "-trace_screen", "-screen_file", str(run_dir / "screen.log"),
        ]
        if max_concurrent is None:
            # sipp's default limit (3 x rate x the scenario's pauses, which these
            # scenarios do not use for their durations) would throttle long calls
            call_s = (hold_ms + cancel_ms + len(digits) * gap_ms) / 1000 + 5
            max_concurrent = int(rate * call_s * 1.5) + 10
        cmd += ["-l", str(max_concurrent)]
        if trace_msg:
            cmd += ["-trace_msg", "-message_file", str(run_dir / "messages.log")]
        (run_dir / "command").write_text(" ".join(cmd) + "\n")
        t0 = time.monotonic()
        timed_out = False
        with (run_dir / "sipp.out").open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=run_dir
            )
            try:
                rc = proc.wait(timeout=timeout_s + 5)
            except subprocess.TimeoutExpired:
                timed_out = True
                rc = _stop_process(proc, 2.0)
        elapsed = time.monotonic() - t0
        if rc in SIPP_FATAL:
            raise SippError(
                f"carrier sipp failed ({rc}): {' '.join(cmd)}\n{_tail(run_dir / 'sipp.out')}"
            )
        return rc, timed_out, elapsed, run_dir

    def place_call(
        self,
        did: str,
        scenario: Scenario = "call",
        *,
        from_number: str = DEFAULT_CALLER,
        hold_ms: int = 500,
        cancel_ms: int = 500,
        digits: str = "12#",
        gap_ms: int = 300,
        port: int | None = None,
        timeout_s: float | None = None,
        trace_msg: bool = True,
    ) -> CallResult:
        """One call to ``did`` from ``from_number`` (the From user: CALLERID(num)).

        scenario: ``call`` (answer expected, talk ``hold_ms``, hang up), ``reject`` (a final
        failure expected), ``cancel`` (ring, CANCEL after ``cancel_ms``), ``dtmf_info`` /
        ``dtmf_2833`` (answered call sending ``digits``, ``gap_ms`` apart). ``port``: the
        source port (5070 carrier, 5071 carrier-info; dtmf_info defaults to 5071).
        ``timeout_s`` bounds the whole call (sipp aborts a step unanswered for that long);
        by default 15 s plus the scenario's own durations.
        """
        if timeout_s is None:
            timeout_s = 15 + _scenario_ms(scenario, hold_ms, cancel_ms, digits, gap_ms) / 1000
        rc, timed_out, elapsed, run_dir = self._run(
            did, scenario, count=1, rate=10, from_number=from_number, hold_ms=hold_ms,
            cancel_ms=cancel_ms, digits=digits, gap_ms=gap_ms, port=port, timeout_s=timeout_s,
            max_concurrent=None, trace_msg=trace_msg,
        )
        statuses = invite_statuses(parse_shortmsg(run_dir / "shortmessages.log"))
        codes = next(iter(statuses.values()), [])
        return CallResult(
            scenario=scenario,
            did=did,
            exit_code=rc,
            codes=codes,
            final_code=final_status(codes),
            events=parse_events(run_dir / "events.log"),
            elapsed_s=elapsed,
            workdir=run_dir,
            timed_out=timed_out,
        )

    def place_calls(
        self,
        did: str,
        count: int,
        rate: float,
        scenario: Scenario = "call",
        *,
        from_number: str = DEFAULT_CALLER,
        hold_ms: int = 1000,
        cancel_ms: int = 500,
        digits: str = "12#",
        gap_ms: int = 300,
        port: int | None = None,
        max_concurrent: int | None = None,
        timeout_s: float | None = None,
        trace_msg: bool = False,
    ) -> BatchResult:
        """``count`` calls at ``rate`` calls/s from one sipp; counts of the outcomes."""
        if timeout_s is None:
            call_ms = _scenario_ms(scenario, hold_ms, cancel_ms, digits, gap_ms)
            timeout_s = count / rate + call_ms / 1000 + 30
        rc, timed_out, elapsed, run_dir = self._run(
            did, scenario, count=count, rate=rate, from_number=from_number, hold_ms=hold_ms,
            cancel_ms=cancel_ms, digits=digits, gap_ms=gap_ms, port=port, timeout_s=timeout_s,
            max_concurrent=max_concurrent, trace_msg=trace_msg,
        )
        statuses = invite_statuses(parse_shortmsg(run_dir / "shortmessages.log"))
        per_call = {cid: final_status(codes) for cid, codes in statuses.items()}
        return BatchResult(
            scenario=scenario,
            did=did,
            count=count,
            rate=rate,
            exit_code=rc,
            elapsed_s=elapsed,
            final_codes=Counter(per_call.values()),
            sipp_counts=screen_counts(run_dir / "screen.log"),
            workdir=run_dir,
            timed_out=timed_out,
            per_call=per_call,
        )


def place_call(did: str, scenario: Scenario = "call", *, workdir: Path | None = None,
               **kwargs: Any) -> CallResult:
    """``Carrier(workdir).place_call(did, scenario, **kwargs)``; a temp dir by default."""
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ctm-sip-"))
    return Carrier(wd).place_call(did, scenario, **kwargs)


def place_calls(did: str, count: int, rate: float, scenario: Scenario = "call", *,
                workdir: Path | None = None, **kwargs: Any) -> BatchResult:
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ctm-sip-"))
    return Carrier(wd).place_calls(did, count, rate, scenario, **kwargs)


# --------------------------------------------------------------------------- Asterisk


class Asterisk:
    """The sandbox Asterisk (scripts/asterisk-sandbox): CLI, ARI reads, channel checks."""

    def __init__(
        self,
        *,
        ari_url: str = "http://127.0.0.1:8088",
        ari_user: str = "ctm",
        ari_password: str = "ctm-secret",
        app: str = "ctm-pbx",
        sandbox: Path = SANDBOX,
        env: dict[str, str] | None = None,
    ) -> None:
        self.ari_url = ari_url
        self.ari_user = ari_user
        self.ari_password = ari_password
        self.app = app
        self.sandbox = sandbox
        self.env = env if env is not None else dict(os.environ)
        self.sip_host = LOOPBACK
        self.sip_port = ASTERISK_SIP_PORT

    def run_sandbox(self, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.sandbox), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout_s, stdin=subprocess.DEVNULL,
        )

    def cli(self, command: str, timeout_s: float = 15.0) -> str:
        """``asterisk -rx COMMAND`` in the sandbox; its output."""
        res = self.run_sandbox("cli", command, timeout_s=timeout_s)
        if res.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({res.returncode}): {res.stderr}")
        return res.stdout

    def ari_get(self, path: str, timeout_s: float = 5.0) -> Any:
        """GET {ari_url}/ari/{path}; the decoded JSON."""
        url = f"{self.ari_url}/ari/{path.lstrip('/')}"
        token = base64.b64encode(f"{self.ari_user}:{self.ari_password}".encode()).decode()
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return json.loads(resp.read().decode() or "null")

    def ari_send(self, method: str, path: str, body: dict | None = None) -> Any:
        """{method} {ari_url}/ari/{path} with a JSON body; the decoded JSON answer."""
        url = f"{self.ari_url}/ari/{path.lstrip('/')}"
        token = base64.b64encode(f"{self.ari_user}:{self.ari_password}".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            return json.loads(resp.read().decode() or "null")

    def applications(self) -> list[str]:
        """Names of the Stasis applications connected over ARI."""
        return [a["name"] for a in self.ari_get("applications")]

    def channels(self) -> list[str]:
        """Names of the channels up in Asterisk."""
        return [c["name"] for c in self.ari_get("channels")]

    def channel_count(self) -> int:
        """From the CLI (``core show channels count``), independent of ARI."""
        m = re.search(r"(\d+) active channels?", self.cli("core show channels count"))
        return int(m.group(1)) if m else -1

    def wait_no_channels(self, timeout_s: float = 5.0) -> list[str]:
        """Wait until no channel is left; the channels still up at the end (empty: none)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = self.channels()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)

    def hangup_all(self) -> None:
        self.cli("channel request hangup all")

    def ari_ready(self) -> bool:
        try:
            self.ari_get("asterisk/info", timeout_s=2.0)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return True
