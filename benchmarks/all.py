"""Run every benchmark at a size that finishes in about 15 minutes on 2 cores; print one table.

``./dev bench all [--json PATH] [--quick] [--only NAMES] [--timeout S] [--lock FILE]``

Each benchmark script (``BENCHMARKS`` below: name, arguments, time limit) runs as its own
subprocess, one after the other, with ``--json <tmpfile>``, and writes there the rows of the
benchmark contract (``_contract.py``: benchmark, ours_s, baseline, baseline_s, ratio,
ratio_kind, target, met, note). Their output goes to one log file per script under
``benchmarks/.data/bench-all/<date>/`` (``--verbose`` echoes it too). When every script has
run, one Markdown table is printed: benchmark, ours, baseline, ratio, target, met/missed,
with the date, the machine (CPUs, CPU model, RAM), the Python, Ray and torch versions and
the load average before and after. ``--json PATH`` writes the same rows plus that header.
On a machine shared with other people's benchmarks, ``--lock FILE`` holds an exclusive
flock on FILE while each script runs (the wait is reported, not counted).

A script that is absent, exits non-zero, writes no rows or rows that break the contract,
or runs past its time limit becomes one row saying so ("missing", "failed", "timed out")
and the run goes on with the next script; a timed-out script's whole process group (its
local Ray included) is stopped. The exit status is 1 when any script did not give rows,
else 0 (a missed target is a figure, not an error).

Sizes (full run; ``--quick`` is a smoke test of a few minutes at toy sizes, whose ratios mean
little): see ``BENCHMARKS``. This module imports nothing beyond the standard library and
``_contract``, so it runs even when the package or Ray is broken.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from _contract import JSON_ROW_KEYS, read_json_rows

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_LOG_ROOT = BENCH_DIR / ".data" / "bench-all"


@dataclass(frozen=True)
class Benchmark:
    """One script of the run: its name (``benchmarks/<name>.py``), the arguments of the full
    and of the ``--quick`` run, and the wall-clock limit after which it is stopped."""

    name: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    timeout_s: float
    quick_timeout_s: float = 240.0


# Full sizes: what issue 24 compares, cut to one timed repeat where a script defaults to
# more, so the whole run stays within ~15 minutes on 2 idle cores (times measured on the
# 2-core machine are in docs/benchmarks.md). The limits leave ~2x headroom for one script
# without letting a hang eat the budget.
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "ingest",
        ("--rows", "1000000", "--repeats", "1", "--backends", "sqlite,postgresql"),
        ("--rows", "100000", "--repeats", "1", "--backends", "sqlite"),
        timeout_s=300,
    ),
    Benchmark(
        "train_overhead",
        ("--rows", "200000", "--repeats", "1"),
        ("--rows", "20000", "--repeats", "1", "--methods", "ours,ray"),
        timeout_s=300,
    ),
    Benchmark(
        "hf_finetune",
        ("--rows", "4000", "--steps", "60", "--repeats", "1"),
        ("--rows", "400", "--steps", "5"),
        timeout_s=360,
    ),
    Benchmark(
        "predict",
        ("--rows", "1000000", "--backends", "sqlite,postgresql"),
        ("--rows", "100000", "--backends", "sqlite"),
        timeout_s=300,
    ),
    Benchmark(
        "classic",
        ("--rows", "1000000", "--repeats", "1", "--xgb-repeats", "1"),
        ("--rows", "50000", "--repeats", "1", "--xgb-repeats", "1", "--rounds", "10"),
        timeout_s=300,
    ),
    Benchmark(
        "sweep",
        ("--rows", "50000", "--trials", "4"),
        ("--rows", "5000", "--trials", "2"),
        timeout_s=300,
    ),
    Benchmark(
        "cold_start", ("--repeats", "3"), ("--repeats", "1", "--no-quickstart"), timeout_s=240
    ),
)

STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUS_FAILED = "failed"
STATUS_TIMED_OUT = "timed out"
STATUS_INTERRUPTED = "interrupted"


# ---------------------------------------------------------------------------------------
# Running one script
# ---------------------------------------------------------------------------------------


def status_row(script: str, status: str, note: str) -> dict[str, Any]:
    """The single row standing for a script that gave no figures (missing, failed, timed out
    or interrupted): no figures, ``note`` says why."""
    return {
        "benchmark": script,
        "ours_s": None,
        "baseline": "",
        "baseline_s": None,
        "ratio": None,
        "ratio_kind": "time",
        "target": "",
        "met": None,
        "note": note,
        "script": script,
        "status": status,
    }


def _last_error_line(log_text: str) -> str:
    """The line of a failed script's output that most likely says why (an exception line,
    else the last non-empty line), cut to 240 characters."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) or ln.startswith("error:"):
            return ln[:240]
    return lines[-1][:240] if lines else "no output"


def _session_members(sid: int) -> list[int]:
    """Processes of session ``sid`` (Linux ``/proc``; elsewhere none are found)."""
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the parenthesised command: state, ppid, pgrp, session, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stop the script and everything it started. It leads its own session: its process
    group (the local Ray's GCS and raylet share it) gets SIGTERM, then after ``grace_s``
    SIGKILL, and so does every process left in the session (Ray's workers move to process
    groups of their own, but not to another session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pid in _session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _pump(src: Any, log: TextIO, echo: bool) -> None:
    """Copy the child's output line by line to its log file (and to stdout with --verbose)."""
    try:
        for raw in iter(src.readline, b""):
            line = raw.decode(errors="replace")
            log.write(line)
            log.flush()
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
    except (OSError, ValueError):  # the log was closed after a stop: the rest is dropped
        pass


def run_script(
    bench: Benchmark,
    args: Sequence[str],
    timeout_s: float,
    scripts_dir: Path,
    log_dir: Path,
    verbose: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``scripts_dir/<name>.py args --json log_dir/<name>.json`` and return its rows and a
    run record (status, wall seconds, load before/after, exit code, log path). Never raises
    for what the script does: a problem becomes one status row. Ctrl-C/SIGTERM stops the
    script's whole session and propagates."""
    script = scripts_dir / f"{bench.name}.py"
    record: dict[str, Any] = {
        "script": bench.name,
        "args": list(args),
        "timeout_s": timeout_s,
        "wall_s": None,
        "returncode": None,
        "load_before": round(os.getloadavg()[0], 2),
        "load_after": None,
        "log": None,
    }
    if not script.is_file():
        record["status"] = STATUS_MISSING
        record["load_after"] = record["load_before"]
        note = f"{script} not found: nothing was run"
        return [status_row(bench.name, STATUS_MISSING, note)], record

    log_path = log_dir / f"{bench.name}.log"
    record["log"] = str(log_path)
    # Kept beside the log, so the rows of the scripts that finished survive an interrupted run.
    json_path = log_dir / f"{bench.name}.json"
    json_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(script), *args, "--json", str(json_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with log_path.open("w") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=BENCH_DIR.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session, so a hang can be stopped whole
        )
        pump = threading.Thread(target=_pump, args=(proc.stdout, log, verbose), daemon=True)
        pump.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(proc)
        except BaseException:  # Ctrl-C or SIGTERM: nothing of it may outlive the run
            _stop_group(proc, grace_s=5.0)
            raise
        pump.join(timeout=10)
    record["wall_s"] = round(time.perf_counter() - started, 1)
    record["returncode"] = proc.returncode
    record["load_after"] = round(os.getloadavg()[0], 2)
    log_text = log_path.read_text(errors="replace")

    if timed_out:
        record["status"] = STATUS_TIMED_OUT
        last = _last_error_line(log_text)
        note = f"stopped at its {timeout_s:.0f} s limit; last line: {last}"
        return [status_row(bench.name, STATUS_TIMED_OUT, note)], record
    if proc.returncode != 0:
        record["status"] = STATUS_FAILED
        note = f"exit {proc.returncode}: {_last_error_line(log_text)}"
        return [status_row(bench.name, STATUS_FAILED, note)], record
    if not json_path.is_file():
        record["status"] = STATUS_FAILED
        note = "exited 0 but wrote no --json rows (does the script take --json PATH?)"
        return [status_row(bench.name, STATUS_FAILED, note)], record
    try:
        rows = read_json_rows(json_path)
    except ValueError as e:
        record["status"] = STATUS_FAILED
        return [status_row(bench.name, STATUS_FAILED, f"bad --json rows: {e}")], record
    if not rows:
        record["status"] = STATUS_FAILED
        return [status_row(bench.name, STATUS_FAILED, "wrote an empty list of rows")], record
    record["status"] = STATUS_OK
    return [{**row, "script": bench.name, "status": STATUS_OK} for row in rows], record


# ---------------------------------------------------------------------------------------
# The header and the table
# ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_header() -> dict[str, Any]:
    """What the figures were measured on: host, CPUs, CPU model, RAM and versions."""
    return {
        "host": platform.node(),
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "ray": _version("ray"),
        "torch": _version("torch"),
        "pyarrow": _version("pyarrow"),
    }


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1:
        return f"{x:.3f} s"
    return f"{x:.2f} s" if x < 100 else f"{x:.1f} s"


_KIND_WORDS = {"time": "time", "speedup": "speed-up", "throughput": "throughput"}


def _fmt_ratio(row: dict[str, Any]) -> str:
    if row["ratio"] is None:
        return "-"
    return f"{row['ratio']:.2f}x {_KIND_WORDS.get(row['ratio_kind'], row['ratio_kind'])}"


def _fmt_met(row: dict[str, Any]) -> str:
    status = row.get("status", STATUS_OK)
    if status != STATUS_OK:
        return f"**{status}**"
    if row["met"] is True:
        return "met"
    if row["met"] is False:
        return "**missed**"
    return "no target" if not row["target"] else "not measured"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The one Markdown table: benchmark, ours, baseline, ratio, target, met/missed, note."""
    out = [
        "| benchmark | ours | baseline | ratio | target | met | note |",
        "|---|---:|---|---:|---|---|---|",
    ]
    for row in rows:
        baseline = row["baseline"] or "-"
        if row["baseline"] and row["baseline_s"] is not None:
            baseline = f"{row['baseline']} {_fmt_s(row['baseline_s'])}"
        cells = [
            row["benchmark"],
            _fmt_s(row["ours_s"]),
            baseline,
            _fmt_ratio(row),
            row["target"] or "-",
            _fmt_met(row),
            row["note"],
        ]
        out.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    return "\n".join(out)


def format_runs(records: Sequence[dict[str, Any]]) -> str:
    """Per script: status, wall time and the 1-minute load average before and after."""
    out = ["| script | status | wall | load before -> after | log |", "|---|---|---:|---|---|"]
    for r in records:
        after = "-" if r["load_after"] is None else f"{r['load_after']:.1f}"
        waited = r.get("lock_wait_s") or 0.0
        cells = [
            r["script"],
            r["status"],
            _fmt_s(r["wall_s"]) + (f" (+{waited:.0f} s for the lock)" if waited >= 1 else ""),
            f"{r['load_before']:.1f} -> {after}",
            r["log"] or "-",
        ]
        out.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    return "\n".join(out)


def format_report(report: dict[str, Any]) -> str:
    """Header lines, the results table, a legend and the per-script runs table."""
    h = report["header"]
    m = h["machine"]
    ram = "? GiB" if m["ram_gib"] is None else f"{m['ram_gib']} GiB"
    lb = " ".join(f"{x:.2f}" for x in h["load_before"])
    la = " ".join(f"{x:.2f}" for x in h["load_after"])
    lines = [
        f"./dev bench all{' --quick' if h['quick'] else ''}: {h['date']}, "
        f"{h['total_s']:.0f} s in all",
        f"machine: {m['host']}, {m['arch']}, {m['cpus']} CPUs ({m['cpu_model']}), {ram} RAM",
        f"python {m['python']}, ray {m['ray']}, torch {m['torch']}, pyarrow {m['pyarrow']}",
        f"load average (1/5/15 min) before: {lb}; after: {la}",
        "",
        format_table(report["rows"]),
        "",
        "ratio: time = ours/baseline (lower is better); speed-up = baseline/ours and "
        "throughput = ours/baseline per second (higher is better).",
        "",
        format_runs(report["runs"]),
    ]
    return "\n".join(lines)


def _row_for_json(row: dict[str, Any]) -> dict[str, Any]:
    """Contract keys first, then what all.py adds (script, status)."""
    return {**{k: row[k] for k in JSON_ROW_KEYS}, "script": row["script"], "status": row["status"]}


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(lock: Path | None) -> Iterator[float]:
    """Hold an exclusive ``flock`` on ``lock`` (when given) and yield the seconds waited for
    it: on a machine shared with other people's benchmarks, no two timed runs overlap."""
    if lock is None:
        yield 0.0
        return
    t0 = time.perf_counter()
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_all(
    benchmarks: Sequence[Benchmark],
    *,
    quick: bool,
    scripts_dir: Path,
    log_dir: Path,
    timeout_s: float | None = None,
    verbose: bool = False,
    lock: Path | None = None,
) -> dict[str, Any]:
    """Run ``benchmarks`` one after the other; return ``{"header": ..., "rows": [...],
    "runs": [...]}`` (rows: the contract keys plus script and status)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    load_before = list(os.getloadavg())
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for i, bench in enumerate(benchmarks):
        args = bench.quick_args if quick else bench.args
        limit = timeout_s or (bench.quick_timeout_s if quick else bench.timeout_s)
        print(
            f"==> {bench.name} {' '.join(args)} (limit {limit:.0f} s, "
            f"load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        try:
            with _exclusive(lock) as waited:
                got, record = run_script(bench, args, limit, scripts_dir, log_dir, verbose)
        except KeyboardInterrupt:
            # Stopped by the user: the table still shows what finished.
            rest = [b.name for b in benchmarks[i + 1 :]]
            note = "stopped by Ctrl-C or SIGTERM" + (
                f"; not run: {', '.join(rest)}" if rest else ""
            )
            rows.append(status_row(bench.name, STATUS_INTERRUPTED, note))
            records.append(
                {
                    "script": bench.name,
                    "args": list(args),
                    "timeout_s": limit,
                    "wall_s": None,
                    "returncode": None,
                    "load_before": round(os.getloadavg()[0], 2),
                    "load_after": None,
                    "log": str(log_dir / f"{bench.name}.log"),
                    "status": STATUS_INTERRUPTED,
                }
            )
            print(f"    {STATUS_INTERRUPTED}", flush=True)
            break
        record["lock_wait_s"] = round(waited, 1)
        rows.extend(got)
        records.append(record)
        wall = "" if record["wall_s"] is None else f" in {record['wall_s']:.0f} s"
        print(f"    {record['status']}{wall}: {len(got)} row(s)", flush=True)
    header = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine_header(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "total_s": round(time.perf_counter() - started, 1),
        "log_dir": str(log_dir),
    }
    return {"header": header, "rows": [_row_for_json(r) for r in rows], "runs": records}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    names = [b.name for b in BENCHMARKS]
    p = argparse.ArgumentParser(
        prog="./dev bench all",
        description="Run every benchmark (one subprocess each) and print one table.",
    )
    p.add_argument("--json", metavar="PATH", help="also write the header and rows as JSON")
    p.add_argument("--quick", action="store_true", help="toy sizes: a smoke test, not figures")
    p.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of {','.join(names)}")
    p.add_argument(
        "--timeout", type=float, metavar="S", help="one time limit for every script (seconds)"
    )
    p.add_argument("--verbose", action="store_true", help="echo every script's output")
    p.add_argument(
        "--lock",
        type=Path,
        metavar="FILE",
        help="hold an exclusive flock on FILE while each script runs (a machine shared with "
        "other people's benchmarks: e.g. /tmp/bench.lock); the wait is not counted",
    )
    p.add_argument(
        "--scripts-dir",
        type=Path,
        default=BENCH_DIR,
        help="where the <name>.py scripts are (default: this folder)",
    )
    p.add_argument(
        "--log-dir",
        type=Path,
        help="where each script's output is kept (default benchmarks/.data/bench-all/<date>)",
    )
    args = p.parse_args(argv)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown or not wanted:
            p.error(f"--only: unknown benchmark(s) {unknown}; choose from {', '.join(names)}")
        args.only = wanted
    if args.timeout is not None and args.timeout <= 0:
        p.error(f"--timeout must be > 0 seconds, got {args.timeout}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    benchmarks = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    log_dir = args.log_dir
    if log_dir is None:
        DEFAULT_LOG_ROOT.parent.mkdir(parents=True, exist_ok=True)
        ignore = DEFAULT_LOG_ROOT.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# benchmark databases; never commit\n*\n")
        log_dir = DEFAULT_LOG_ROOT / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)  # a stop prints what finished
    try:
        report = run_all(
            benchmarks,
            quick=args.quick,
            scripts_dir=args.scripts_dir.resolve(),
            log_dir=log_dir,
            timeout_s=args.timeout,
            verbose=args.verbose,
            lock=args.lock,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if all(r["status"] == STATUS_OK for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
