"""Benchmark: faults injected while calls flow through the real Asterisk.

For each fault, calls at ``--rate`` for ``--seconds`` (each from its own number, to a
pool number a website visitor holds), sipp as the carrier, phone1 answering the calls
ctm-pbx routes and the fail-safe phone the others; every call matched across the
carrier, the phones and the call log (tests/integration/fault_run.py):

  none     : no fault (the baseline of the same run); none-agi: the same in AGI mode
  kill     : the daemon killed with SIGKILL at --fault-at s, started again --down s later;
             meanwhile `ctm-pbx asterisk handover` runs, as systemd's ExecStopPost= does
             (--no-handover: not, the daemon alone)
  asterisk : Asterisk stopped at --fault-at s and started again --down s later
  disk     : the database's disk full from --fault-at s for --outage s
  lock     : the database locked by another process (BEGIN EXCLUSIVE) for --outage s
  ami      : AGI mode: AMI's connection cut and refused for --outage s
  web      : the web listener saturated by idle and slow clients for the whole run

Prints one JSON line per fault and the table: calls placed, connected (the carrier's
call completed: answered, talked, hung up by the caller), of which answered by the
fail-safe (ctm-pbx away; the others by phone1, routed by ctm-pbx), dropped (the rest),
call-log rows, completed, missing (a phone answered, no row), duplicated, left open,
wrong (outcome or answering phone not what the phone saw; of which 'unknown': ctm-pbx
never learnt the end), fail-safe rows without their late attribution, writes the
daemon held in memory (disk, lock), calls a phone answered that ended as Asterisk
stopped (asterisk: their row may say what Asterisk saw) and seconds from ARI answering
again to ctm-pbx connected.
Target: no call dropped that plain Dial() would have connected (the baseline drops
none), every call a phone answered has exactly one completed row; reconnect <= 1 s.

Run as root from the repository (the sandbox must be installable):

    .venv/bin/python bench/faults.py                       # the issue's 100/s for 60 s
    .venv/bin/python bench/faults.py --rate 20 --seconds 30 --faults none,disk,lock
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.ctm import render_test_queues  # noqa: E402
from tests.integration.fault_run import FAULTS, run_fault  # noqa: E402
from tests.integration.sip import Asterisk  # noqa: E402

COLUMNS = (
    ("fault", "fault"),
    ("placed", "placed"),
    ("connected", "connected"),
    ("took_failsafe", "of which fail-safe"),
    ("dropped", "dropped"),
    ("rows", "rows"),
    ("completed", "completed"),
    ("missing", "missing"),
    ("duplicates", "dup"),
    ("in_progress", "open"),
    ("wrong", "wrong"),
    ("wrong_unknown", "of which unknown"),
    ("not_attributed_late", "not late-attr."),
    ("writes_held", "writes held"),
    ("cut_at_stop", "cut at stop"),
    ("reconnect_s", "reconnect s"),
    ("handed_over", "handed over"),
    ("handover_s", "handover s"),
)
OUTAGES = ("disk", "lock", "ami")  # --outage s; kill, asterisk: --down s


def table(reports: list[dict]) -> str:
    head = " | ".join(title for _, title in COLUMNS)
    rule = " | ".join("-" * len(title) for _, title in COLUMNS)
    lines = [f"| {head} |", f"| {rule} |"]
    for rep in reports:
        cells = ["" if rep[key] is None else str(rep[key]) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"of {', '.join(FAULTS)}")
    ap.add_argument("--rate", type=float, default=100, help="calls/s")
    ap.add_argument("--seconds", type=float, default=60, help="seconds of calls per fault")
    ap.add_argument("--hold-ms", type=int, default=3000, help="talk time of each call")
    ap.add_argument("--fault-at", type=float, default=10, help="seconds into the calls")
    ap.add_argument("--down", type=float, default=5, help="seconds the daemon/Asterisk is down")
    ap.add_argument("--outage", type=float, default=10, help="seconds of disk/lock/ami faults")
    ap.add_argument(
        "--no-handover", action="store_true", help="kill: no `ctm-pbx asterisk handover`"
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, call logs)")
    args = ap.parse_args()

    extra = Path(tempfile.mkdtemp(prefix="ctm-faults-etc-"))
    for conf in (REPO / "tests" / "asterisk").glob("*.conf"):
        shutil.copy(conf, extra / conf.name)
    (extra / "queues_ctm.conf").write_text(render_test_queues(), encoding="utf-8")
    asterisk = Asterisk(env=dict(os.environ, CTM_SANDBOX_EXTRA_ETC=str(extra)))
    was_running = asterisk.run_sandbox("status").returncode == 0
    up = asterisk.run_sandbox("up", timeout_s=900)
    if up.returncode != 0:
        print(up.stdout, up.stderr, file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="ctm-faults-"))
    reports = []
    try:
        for fault in args.faults.split(","):
            if fault not in FAULTS:
                raise SystemExit(f"unknown fault {fault!r} (of {', '.join(FAULTS)})")
            report = run_fault(
                fault,  # type: ignore[arg-type]
                asterisk,
                work / fault,
                rate=args.rate,
                seconds=args.seconds,
                hold_ms=args.hold_ms,
                fault_at=args.fault_at,
                down_s=args.outage if fault in OUTAGES else args.down,
                handover=not args.no_handover,
            ).as_dict()
            reports.append(report)
            print(json.dumps(report), flush=True)
    finally:
        if not was_running:
            asterisk.run_sandbox("down", timeout_s=60)
        shutil.rmtree(extra, ignore_errors=True)
        if args.keep:
            print(f"logs and call logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(reports))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"faults-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "runs": reports}))
    print(f"results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
