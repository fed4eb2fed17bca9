"""`./dev bench all` (benchmarks/all.py): one table and one JSON from every benchmark script.

Fake benchmark scripts in tmp_path stand for the real ones (no Ray, no database): one that
writes good rows, one that writes rows breaking the contract, one that fails, one that
writes nothing, one that hangs with a child process, and two that are absent. The run must
give one row per result or per broken script, stop the hanging one's whole process group at
its time limit, and never stop early.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
ALL_PY = BENCH_DIR / "all.py"


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) with its folder on sys.path."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "benchmark": "ingest SQLite 1M",
        "ours_s": 0.625,
        "baseline": "read_sql",
        "baseline_s": 4.43,
        "ratio": 7.08,
        "ratio_kind": "speedup",
        "target": ">= 8x",
        "met": False,
        "note": "",
    }
    row.update(over)
    return row


def _ends_within(pid: int, limit_s: float) -> bool:
    """Whether process ``pid`` is gone (or a zombie nobody reaped yet) within ``limit_s``:
    SIGKILL lands asynchronously, so this waits for the state, not for a fixed time."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        with contextlib.suppress(psutil.TimeoutExpired, psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=0.1)
    return False


GOOD = """
import json, sys
path = sys.argv[sys.argv.index("--json") + 1]
rows = [
    {"benchmark": "ingest SQLite", "ours_s": 0.625, "baseline": "read_sql",
     "baseline_s": 4.43, "ratio": 7.088, "ratio_kind": "speedup", "target": ">= 8x",
     "met": False, "note": "one | pipe"},
    {"benchmark": "ingest PostgreSQL", "ours_s": 1.0, "baseline": "connectorx-1",
     "baseline_s": 0.968, "ratio": 0.968, "ratio_kind": "throughput", "target": "",
     "met": None, "note": ""},
]
open(path, "w").write(json.dumps(rows))
print("got", sys.argv[1:])
"""
BAD_ROWS = """
import json, sys
open(sys.argv[sys.argv.index("--json") + 1], "w").write(json.dumps([{"benchmark": "x"}]))
"""
FAILS = """
print("reading shards")
raise RuntimeError("database is locked")
"""
NO_JSON = """
print("a table, but no --json")
"""
HANGS = """
import os, subprocess, sys, threading
# Its own process group, as Ray's workers take: only the session still holds it.
child = subprocess.Popen(
    [sys.executable, "-c", "import threading; threading.Event().wait()"],
    preexec_fn=os.setpgrp,
)
open(os.environ["FAKE_BENCH_PID_FILE"], "w").write(f"{child.pid}")
print("started a child, now waiting forever", flush=True)
threading.Event().wait()
"""


def test_bench_all_gives_rows_and_one_status_row_per_broken_script(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name, body in {
        "ingest": GOOD,
        "train_overhead": BAD_ROWS,
        "predict": FAILS,
        "classic": NO_JSON,
        "sweep": HANGS,
    }.items():
        (scripts / f"{name}.py").write_text(textwrap.dedent(body))
    pid_file = tmp_path / "child.pid"
    out = tmp_path / "all.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ALL_PY),
            "--scripts-dir",
            str(scripts),
            "--log-dir",
            str(tmp_path / "logs"),
            "--timeout",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FAKE_BENCH_PID_FILE": str(pid_file)},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr

    report = json.loads(out.read_text())
    status = {r["script"]: r["status"] for r in report["runs"]}
    assert status == {
        "ingest": "ok",
        "train_overhead": "failed",
        "hf_finetune": "missing",
        "predict": "failed",
        "classic": "failed",
        "sweep": "timed out",
        "cold_start": "missing",
    }
    rows = report["rows"]
    assert [r["benchmark"] for r in rows] == [
        "ingest SQLite",
        "ingest PostgreSQL",
        "train_overhead",
        "hf_finetune",
        "predict",
        "classic",
        "sweep",
        "cold_start",
    ]
    notes = {r["script"]: r["note"] for r in rows if r["status"] != "ok"}
    assert "missing keys ['baseline'" in notes["train_overhead"]
    assert notes["predict"] == "exit 1: RuntimeError: database is locked"
    assert "wrote no --json rows" in notes["classic"]
    assert notes["sweep"].startswith("stopped at its 4 s limit; last line: started a child")
    assert notes["cold_start"].endswith("cold_start.py not found: nothing was run")
    assert rows[0]["ratio"] == 7.088 and rows[0]["met"] is False
    assert set(report["header"]) >= {"date", "machine", "load_before", "load_after", "quick"}
    assert report["header"]["machine"]["cpus"] >= 1

    # The real script's arguments reached the fake, with --json last.
    ingest_log = (tmp_path / "logs" / "ingest.log").read_text()
    assert "got ['--rows', '1000000'" in ingest_log and "'--json'" in ingest_log

    # The hanging script's child (as a local Ray's worker would be) was stopped with it.
    assert _ends_within(int(pid_file.read_text()), 10.0)

    # One table with every row; a pipe inside a note does not split its cell.
    table = proc.stdout
    assert (
        "| ingest SQLite | 0.625 s | read_sql 4.43 s | 7.09x speed-up | >= 8x | **missed** "
        "| one \\| pipe |" in table
    )
    assert "| sweep | - | - | - | - | **timed out** |" in table
    assert "| cold_start | - | - | - | - | **missing** |" in table


def test_format_table_says_met_missed_or_no_target(monkeypatch: pytest.MonkeyPatch) -> None:
    bench_all = _load("all", monkeypatch)
    rows = [
        {**_row(ratio=0.64, ratio_kind="time", target="<= 0.7x", met=True), "status": "ok"},
        {**_row(baseline_s=None, ratio=None, met=None, note="baseline failed"), "status": "ok"},
        {**_row(target="", met=None, ratio_kind="throughput", ratio=0.77), "status": "ok"},
    ]
    lines = bench_all.format_table(rows).splitlines()
    assert lines[0] == "| benchmark | ours | baseline | ratio | target | met | note |"
    assert lines[2] == (
        "| ingest SQLite 1M | 0.625 s | read_sql 4.43 s | 0.64x time | <= 0.7x | met |  |"
    )
    assert lines[3] == (
        "| ingest SQLite 1M | 0.625 s | read_sql | - | >= 8x | not measured | baseline failed |"
    )
    assert lines[4] == (
        "| ingest SQLite 1M | 0.625 s | read_sql 4.43 s | 0.77x throughput | - | no target |  |"
    )


def test_bench_all_refuses_an_unknown_benchmark_name() -> None:
    proc = subprocess.run(
        [sys.executable, str(ALL_PY), "--only", "ingest,ingset"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--only: unknown benchmark(s) ['ingset']; choose from ingest," in proc.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ours_s": True}, "ours_s=True is a bool"),
        ({"ratio_kind": "faster"}, "ratio_kind='faster'; use one of ('time', 'throughput'"),
        ({"extra": 1}, "unknown keys ['extra']"),
    ],
)
def test_write_json_rows_refuses_a_row_breaking_the_contract_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object], message: str
) -> None:
    contract = _load("_contract", monkeypatch)
    path = tmp_path / "rows.json"
    with pytest.raises(ValueError, match="row 0 \\('ingest SQLite 1M'\\)") as info:
        contract.write_json_rows(path, [_row(**change)])
    assert message in str(info.value)
    assert not path.exists()


def test_write_json_rows_writes_unmeasured_figures_as_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = _load("_contract", monkeypatch)
    path = tmp_path / "rows.json"
    contract.write_json_rows(path, [_row(baseline_s=math.nan, ratio=None, ours_s=1)])
    (row,) = json.loads(path.read_text())
    assert row["baseline_s"] is None and row["ratio"] is None and row["ours_s"] == 1.0


def test_bench_all_prints_what_finished_when_stopped_by_sigterm(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "ingest.py").write_text(textwrap.dedent(GOOD))
    (scripts / "sweep.py").write_text(textwrap.dedent(HANGS))
    pid_file = tmp_path / "child.pid"
    out = tmp_path / "all.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ALL_PY),
            "--scripts-dir",
            str(scripts),
            "--log-dir",
            str(tmp_path / "logs"),
            "--only",
            "ingest,sweep,cold_start",
            "--json",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "FAKE_BENCH_PID_FILE": str(pid_file)},
    )
    try:
        # The hanging script is running once its child's pid is written.
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        proc.terminate()
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, stdout
    report = json.loads(out.read_text())
    assert [(r["script"], r["status"]) for r in report["rows"]] == [
        ("ingest", "ok"),
        ("ingest", "ok"),
        ("sweep", "interrupted"),
    ]
    assert report["rows"][2]["note"] == "stopped by Ctrl-C or SIGTERM; not run: cold_start"
    assert "| sweep | - | - | - | - | **interrupted** |" in stdout
    assert _ends_within(int(pid_file.read_text()), 10.0)
