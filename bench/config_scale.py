"""Benchmark: loading a large config (1,000 sources, 300 pools, 10,000 tracking numbers).

    .venv/bin/python bench/config_scale.py
    .venv/bin/python bench/config_scale.py --sources 1000 --pools 300 --numbers 10000 --runs 3

The config is ``config.example.yaml`` with custom sources (a utm pair or a referrer host
each, see ``source_resolution.py``) added to its ``sources``, a pool for each of the
first ``--pools`` of them and ``--numbers`` tracking numbers spread over those pools. It
times, in this process (CPU seconds, the best of ``--runs``): loading and validating it
(``load_config``: what ``config check`` and the daemon's start do first; and again, as a
reload does, with its numbers parsed before), building the source index from it, and
what ``ctm-pbx run`` does before it serves (load, migrate the database, sync the
config's numbers into it: on a new database, and again with nothing to change; the visit
API's source index and plan); then, as fresh processes (wall seconds, Python's start and
imports included, bytecode cached; wall and CPU seconds): ``ctm-pbx config check``,
``ctm-pbx --help``, and ``ctm-pbx run`` from its exec until ``/healthz`` answers (its
ARI and AMI pointed at a closed port: the web API is ready without Asterisk), on a new
database and on one already synced. The example alone, ``python -c pass`` and ``python
-c "import ctm_pbx"`` are measured in the same run as baselines. Prints one JSON line.

Run it from an older checkout (copy this file into its bench/) to compare commits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.config_loader import load_config  # noqa: E402
from ctm_pbx.core.source_index import SourceIndex  # noqa: E402

EXAMPLE = REPO / "config.example.yaml"
ENV = {"CTM_ARI_PASSWORD": "bench"}


def scaled_config(sources: int, pools: int, numbers: int) -> str:
    """The example config text with ``sources`` custom sources, ``pools`` pools and
    ``numbers`` tracking numbers added."""
    text = EXAMPLE.read_text(encoding="utf-8")
    custom = "".join(
        f"  bulk-{i:04d}: {{kind: onsite, priority: {50 + i % 40}, match: "
        + (
            f"[{{landing_params: {{utm_source: client{i}, utm_campaign: campaign{i}}}}}]}}\n"
            if i % 2 == 0
            else f"[{{referrer_hosts: [partner{i}.example.net]}}]}}\n"
        )
        for i in range(sources)
    )
    pool_text = "".join(
        f"  bulk-pool-{i:04d}: {{source: bulk-{i:04d}, target: sales}}\n" for i in range(pools)
    )
    number_text = "".join(
        f'  - {{number: "+1 646 {2000000 + i:07d}", pool: bulk-pool-{i % pools:04d},'
        " route: sales}\n"
        for i in range(numbers if pools else 0)
    )
    text = text.replace("\nsources:\n", "\nsources:\n" + custom, 1)
    text = text.replace("\npools:\n", "\npools:\n" + pool_text, 1)
    return text.replace("\ntracking_numbers:\n", "\ntracking_numbers:\n" + number_text, 1)


def _cold(fn):
    """``fn()`` as a first load in a process would run it: no number parsed before
    (``core.phone``'s cache, where it has one, emptied)."""
    from ctm_pbx.core import phone

    getattr(phone.to_e164, "cache_clear", lambda: None)()
    return fn()


def _best(fn, runs: int, clock=time.process_time) -> float:
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_config(text: str, work: Path) -> tuple[str, int]:
    """``text`` made runnable here: its database, spool and listeners in ``work`` and on
    free loopback ports, Asterisk's ARI and AMI on a port where nothing listens."""
    web, dashboard, agi, closed = (_free_port() for _ in range(4))
    for old, new in (
        ("http://127.0.0.1:8088", f"http://127.0.0.1:{closed}"),
        ("port: 8080", f"port: {web}"),
        ("port: 8081", f"port: {dashboard}"),
        ("port: 4573 ", f"port: {agi} "),
        ("port: 5038", f"port: {closed}"),
        ("${CTM_CALL_SPOOL:-/var/spool/asterisk/ctm-pbx/calls.spool}", str(work / "calls.spool")),
        ("dir: /var/spool/asterisk/monitor", f"dir: {work}"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    return text, web


def _cpu_s(pid: int) -> float:
    """The CPU seconds (user + system, all threads) a running process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_start(command: list[str], env: dict, port: int) -> tuple[float, float]:
    """Wall and CPU seconds from the exec of ``ctm-pbx run`` until ``/healthz`` answers;
    then it is stopped (SIGTERM)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ctm-pbx run exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    break
            except urllib.error.HTTPError:
                break  # it answers (503: Asterisk is not there)
            except OSError:
                time.sleep(0.005)
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("ctm-pbx run did not answer within 60 s")
        return time.perf_counter() - t0, _cpu_s(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(path: Path, db: Path) -> None:
    """What ``ctm-pbx run`` does before it serves: load, migrate, sync the numbers."""
    from ctm_pbx.adapters.store import migrate, open_db
    from ctm_pbx.core.visit_plan import VisitPlan
    from ctm_pbx.edges.cli import sync_config_numbers

    config = load_config(path, env={**ENV, "CTM_DATABASE": str(db)})
    database = open_db(str(db))
    migrate(database)
    sync_config_numbers(config, database)
    VisitPlan.of(config, SourceIndex(config.sources))  # the visit API's, built once
    database.conn.close()


def _pair(seconds: tuple[float, float]) -> list[float]:
    return [round(s, 3) for s in seconds]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--pools", type=int, default=300)
    ap.add_argument("--numbers", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3, help="the best of this many runs")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ctm-bench-config-"))
    big = work / "config.yaml"
    big.write_text(scaled_config(args.sources, args.pools, args.numbers), encoding="utf-8")
    config = load_config(big, env=ENV)
    example_s = _best(lambda: load_config(EXAMPLE, env=ENV), args.runs)
    load_s = _best(lambda: _cold(lambda: load_config(big, env=ENV)), args.runs)
    reload_s = _best(lambda: load_config(big, env=ENV), args.runs)  # numbers seen before
    index_s = _best(lambda: SourceIndex(config.sources), args.runs)
    db = work / "start.db"
    t0 = time.process_time()
    _cold(lambda: _start(big, db))
    first_start_s = time.process_time() - t0
    again_start_s = _best(lambda: _cold(lambda: _start(big, db)), args.runs)
    # this checkout's code, whatever the interpreter's site-packages hold, its bytecode
    # compiled first (as an installed package's is: __pycache__ is git-ignored)
    env = {**os.environ, **ENV, "PYTHONPATH": str(REPO), "CTM_DATABASE": str(db)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cli = [str(Path(sys.executable).with_name("ctm-pbx")), "--config"]

    def process(command: list[str]) -> tuple[float, float]:
        """Wall and CPU seconds of a process that runs ``command``, each the best of the runs
        (CPU: steadier when the machine is shared)."""
        walls, cpus = [], []
        for _ in range(args.runs):
            before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            subprocess.run(command, check=True, env=env, capture_output=True)
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return min(walls), min(cpus)

    compile_all = [sys.executable, "-m", "compileall", "-q", str(REPO / "ctm_pbx")]
    subprocess.run(compile_all, check=True, env=env, capture_output=True)
    python_s = process([sys.executable, "-c", "pass"])
    import_s = process([sys.executable, "-c", "import ctm_pbx"])
    help_s = process([*cli, str(EXAMPLE), "--help"])
    check_example_s = process([*cli, str(EXAMPLE), "config", "check"])
    check_s = process([*cli, str(big), "config", "check"])
    text, port = daemon_config(big.read_text(encoding="utf-8"), work)
    served = work / "daemon.yaml"
    served.write_text(text, encoding="utf-8")
    run = [*cli, str(served), "run"]
    env["CTM_DATABASE"] = str(work / "daemon.db")
    run_new_s = daemon_start(run, env, port)
    starts = [daemon_start(run, env, port) for _ in range(args.runs)]
    run_again_s = (min(w for w, _ in starts), min(c for _, c in starts))
    print(
        json.dumps(
            {
                "sources": len(config.sources),
                "pools": len(config.pools),
                "tracking_numbers": len(config.tracking_numbers),
                "yaml_lines": big.read_text().count("\n"),
                "load_config_s": round(load_s, 3),
                "load_config_again_s": round(reload_s, 3),
                "load_config_example_s": round(example_s, 3),
                "source_index_build_s": round(index_s, 4),
                "start_new_database_s": round(first_start_s, 3),
                "start_again_s": round(again_start_s, 3),
                # processes: [wall seconds, CPU seconds]
                "config_check_s": _pair(check_s),
                "config_check_example_s": _pair(check_example_s),
                "help_s": _pair(help_s),
                "run_to_healthz_new_database_s": _pair(run_new_s),
                "run_to_healthz_s": _pair(run_again_s),
                "python_pass_s": _pair(python_s),
                "import_ctm_pbx_s": _pair(import_s),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
