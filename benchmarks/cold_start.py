"""Cold start: the first read of a fresh Python process (Ray start included), and the
quickstart end to end, each in a fresh subprocess.

What it measures
----------------
(a) ours    a fresh ``python`` that imports ``pinnacle_ray``, connects to a small SQLite
            table (``--rows`` rows, built once in ``benchmarks/.data/cold_start.db``) and
            runs ``q.to_dataset()`` + ``take(1)``: ``to_dataset()`` starts the local Ray
            instance, ``take(1)`` reads the first rows. The figure is ``to_dataset()`` +
            ``take(1)`` (issue 24 item 7: <= 4 s); import and connect are printed beside it.
(b) plain   a fresh ``python`` doing what a user writes with Ray alone: ``ray.init()``,
            ``ray.data.read_sql`` of the same table, ``take(1)``; the same span is timed
            (``ray.init()`` + read + ``take(1)``).
(c) quickstart  ``examples/quickstart.py`` on a new SQLite file, wall clock of the whole
            process (interpreter start to exit, Ray start and shutdown included; target
            <= 30 s on a warm venv). There is no like-for-like baseline for it: its row is
            compared with the 30 s budget itself (ratio = seconds / 30).

(a) and (b) alternate, ``--repeats`` times each (min and median printed). Every child
runs without ``RAY_ADDRESS``, so it starts (and stops) a Ray instance of its own, as a
first run on a laptop does. The machine may be shared: read the load printed beside the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import banner, ensure_data_dir, write_json_rows

ROOT = Path(__file__).resolve().parents[1]
TABLE = "patients"
READ_TARGET_S = 4.0
QUICKSTART_BUDGET_S = 30.0

OURS = """
import json, sys, time
t0 = time.perf_counter()
import pinnacle_ray as pr
t1 = time.perf_counter()
q = pr.connect(sys.argv[1]).table("patients", key="id")
t2 = time.perf_counter()
ds = q.to_dataset()
t3 = time.perf_counter()
rows = ds.take(1)
t4 = time.perf_counter()
assert len(rows) == 1, rows
print("RESULT " + json.dumps({"import": t1 - t0, "connect": t2 - t1,
      "to_dataset": t3 - t2, "take": t4 - t3}), flush=True)
"""

PLAIN = """
import json, sqlite3, sys, time
t0 = time.perf_counter()
import ray
import ray.data
t1 = time.perf_counter()
ray.init()
t2 = time.perf_counter()
path = sys.argv[1].removeprefix("sqlite:///")
ds = ray.data.read_sql("SELECT * FROM patients", lambda: sqlite3.connect(path))
t3 = time.perf_counter()
rows = ds.take(1)
t4 = time.perf_counter()
assert len(rows) == 1, rows
print("RESULT " + json.dumps({"import": t1 - t0, "ray_init": t2 - t1,
      "to_dataset": t3 - t2, "take": t4 - t3}), flush=True)
"""


def build_table(path: Path, rows: int) -> None:
    """Table ``patients`` (id, 10 float features, a label, a split) with ``rows`` rows."""
    with sqlite3.connect(path) as conn:
        try:
            (count,) = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
            if count == rows:
                return
        except sqlite3.OperationalError:
            pass
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        features = ", ".join(f"f{i} REAL" for i in range(10))
        conn.execute(
            f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, {features}, label REAL, split TEXT)"
        )
        conn.executemany(
            f"INSERT INTO {TABLE} VALUES ({', '.join('?' * 13)})",
            [
                (i, *[((i * 7 + j) % 13) / 13 for j in range(10)], i % 50, "train")
                for i in range(rows)
            ],
        )
    conn.close()


def child_env() -> dict[str, str]:
    """The environment of a first run: no Ray address, no pinnacle_ray verbosity."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.pop("PINNACLE_RAY_VERBOSE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(code: str, url: str, timeout_s: float) -> dict[str, float] | None:
    """The child's phase times; None (and the reason printed) when it failed or timed out,
    so one failed start does not lose the other figures."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, url],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        print(f"a child timed out after {timeout_s:g} s ({load()})")
        return None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        print(f"a child failed ({done.returncode}): {done.stderr[-800:]}")
        return None
    return json.loads(lines[-1].removeprefix("RESULT "))


def run_quickstart(timeout_s: float) -> float | None:
    """Wall clock of ``examples/quickstart.py`` in a fresh process; None when it failed."""
    with tempfile.TemporaryDirectory(prefix="pinnacle-cold-") as folder:
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "examples" / "quickstart.py"),
                    "--db",
                    f"{folder}/q.db",
                ],
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                cwd=folder,
            )
        except subprocess.TimeoutExpired:
            print(f"the quickstart timed out after {timeout_s:g} s ({load()})")
            return None
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        print(f"the quickstart failed ({done.returncode}): {done.stderr[-800:]}")
        return None
    return elapsed


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-quickstart", action="store_true", help="skip (c)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per child process, s")
    parser.add_argument("--json", type=Path, default=None, help="write contract rows here")
    args = parser.parse_args()

    path = ensure_data_dir() / "cold_start.db"
    build_table(path, args.rows)
    url = f"sqlite:///{path}"
    print(banner(f"cold start: first read of {args.rows:,} rows in a fresh process; quickstart"))
    print(f"before: {load()}")
    ours: list[dict[str, float]] = []
    plain: list[dict[str, float]] = []
    for _ in range(args.repeats):
        for code, into in ((OURS, ours), (PLAIN, plain)):
            if (found := run_child(code, url, args.timeout)) is not None:
                into.append(found)
    quick = None if args.no_quickstart else run_quickstart(max(args.timeout, 180.0))
    print(f"after: {load()}")

    def first_read(m: dict[str, float]) -> float:
        return m.get("ray_init", 0.0) + m["to_dataset"] + m["take"]

    a = [first_read(m) for m in ours]
    b = [first_read(m) for m in plain]
    if not a or not b:
        print(f"no figure: {len(a)} of (a) and {len(b)} of (b) finished")
        if args.json is not None:
            write_json_rows(args.json, [_failed_row(args.rows, len(a), len(b))])
        return
    print(f"\n{'method (fresh process)':<58} {'min s':>7} {'median s':>9}")
    rows = [
        ("(a) pr: to_dataset() + take(1), Ray start included", a),
        ("(b) plain Ray: ray.init() + read_sql + take(1)", b),
        ("    (a) import pinnacle_ray", [m["import"] for m in ours]),
        ("    (a) connect + table", [m["connect"] for m in ours]),
        ("    (a) to_dataset() (starts Ray)", [m["to_dataset"] for m in ours]),
        ("    (a) take(1)", [m["take"] for m in ours]),
        ("    (b) import ray, ray.data", [m["import"] for m in plain]),
        ("    (b) ray.init()", [m["ray_init"] for m in plain]),
        ("    (b) read_sql + take(1)", [m["to_dataset"] + m["take"] for m in plain]),
    ]
    for label, values in rows:
        print(f"{label:<58} {min(values):7.2f} {statistics.median(values):9.2f}")
    ratio = min(a) / min(b)
    print(f"\n(a)/(b): {ratio:.2f}x (min); (a) target <= {READ_TARGET_S:g} s: min {min(a):.2f} s")
    if quick is not None:
        print(
            f"(c) quickstart end to end: {quick:.1f} s (budget {QUICKSTART_BUDGET_S:g} s; "
            f"{'met' if quick <= QUICKSTART_BUDGET_S else 'missed'})"
        )

    if args.json is not None:
        out = [
            {
                "benchmark": f"cold start: first to_dataset()+take(1), {args.rows:,} rows",
                "ours_s": min(a),
                "baseline": "plain Ray: ray.init() + read_sql + take(1)",
                "baseline_s": min(b),
                "ratio": ratio,
                "ratio_kind": "time",
                "target": f"ours <= {READ_TARGET_S:g} s",
                "met": min(a) <= READ_TARGET_S,
                "note": (
                    f"fresh process, Ray start included; min of {args.repeats} "
                    f"(median {statistics.median(a):.2f} s); import "
                    f"{min(m['import'] for m in ours):.2f} s + connect "
                    f"{min(m['connect'] for m in ours):.2f} s not counted; {load()}"
                ),
            }
        ]
        if not args.no_quickstart:
            out.append(
                {
                    "benchmark": "quickstart end to end (examples/quickstart.py)",
                    "ours_s": quick,
                    "baseline": f"{QUICKSTART_BUDGET_S:g} s budget (no like-for-like baseline)",
                    "baseline_s": QUICKSTART_BUDGET_S,
                    "ratio": None if quick is None else quick / QUICKSTART_BUDGET_S,
                    "ratio_kind": "time",
                    "target": "<= 1.0x (30 s)",
                    "met": None if quick is None else quick <= QUICKSTART_BUDGET_S,
                    "note": (
                        f"one run, fresh process, warm venv{'' if quick else ' (failed)'}; {load()}"
                    ),
                }
            )
        write_json_rows(args.json, out)


def _failed_row(rows: int, ours: int, plain: int) -> dict[str, object]:
    return {
        "benchmark": f"cold start: first to_dataset()+take(1), {rows:,} rows",
        "ours_s": None,
        "baseline": "plain Ray: ray.init() + read_sql + take(1)",
        "baseline_s": None,
        "ratio": None,
        "ratio_kind": "time",
        "target": f"ours <= {READ_TARGET_S:g} s",
        "met": None,
        "note": f"children finished: {ours} of (a), {plain} of (b); {load()}",
    }


if __name__ == "__main__":
    main()
