"""Shared helpers for the pinnacle_ray benchmarks (timing, peak-RSS sampling, reporting).

Nothing in here imports pinnacle_ray, so a broken package never stops the baselines.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import ray.data

# The --json rows for ./dev bench all, re-exported for the benchmark scripts.
from _contract import JSON_ROW_KEYS, RATIO_KINDS, write_json_rows  # noqa: F401

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / ".data"


def ensure_data_dir() -> Path:
    """Create ``benchmarks/.data`` with a ``.gitignore`` that ignores everything in it."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ignore = DATA_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# benchmark databases; never commit\n*\n")
    return DATA_DIR


class PeakRSS:
    """Sample this process's RSS in a background thread; report the peak increase.

    Use as a context manager: ``with PeakRSS() as m: ...; m.peak_delta``.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline = 0
        self.peak = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._proc.memory_info().rss
            if rss > self.peak:
                self.peak = rss
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_delta(self) -> int:
        return max(0, self.peak - self.baseline)


@dataclass
class Result:
    """Timings of one method on one backend (``times`` empty and ``error`` set on failure)."""

    method: str
    rows: int
    times: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times)

    @property
    def min_s(self) -> float:
        return min(self.times)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.min_s if self.min_s > 0 else float("inf")


def time_method(
    name: str,
    fn: Callable[[], Any],
    rows: int,
    repeats: int,
    *,
    warmup: bool = True,
    check: Callable[[Any], None] | None = None,
) -> Result:
    """Run ``fn`` once untimed (warm-up: equal page cache for every method), then ``repeats``
    times timed. The result of each call is dropped before the next one starts."""
    res = Result(name, rows)
    try:
        if warmup:
            out = fn()
            if check is not None:
                check(out)
            del out
            gc.collect()
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - t0
            if check is not None:
                check(out)
            res.times.append(elapsed)
            del out
            gc.collect()
    except Exception as e:  # a failing method must not stop the others
        res.error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        res.times.clear()
    return res


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_rate(r: float) -> str:
    return f"{r:,.0f}"


def banner(text: str) -> str:
    line = "=" * max(60, len(text) + 4)
    return f"{line}\n  {text}\n{line}"


def build_sqlite_table(
    path: Path,
    table: str,
    ddl: str,
    expected_columns: list[str],
    rows: int,
    reader: Callable[[], pa.RecordBatchReader],
    rebuild: bool,
) -> None:
    """Create ``table`` in SQLite file ``path`` with ``ddl`` and fill it from ``reader()``
    (ADBC bulk ingest), unless a table with these columns and ``rows`` rows is there."""
    with sqlite3.connect(path) as conn:
        if not rebuild:
            try:
                cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
                cols = [d[0] for d in cur.description]
                (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
                if cols == expected_columns and count == rows:
                    print(f"sqlite: reusing {table} ({rows:,} rows) in {path}")
                    return
            except sqlite3.OperationalError:
                pass
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(ddl)
        conn.commit()
    conn.close()

    import adbc_driver_sqlite.dbapi as adbc_sqlite

    t0 = time.perf_counter()
    with adbc_sqlite.connect(str(path)) as aconn:
        with aconn.cursor() as cur:
            cur.adbc_ingest(table, reader(), mode="append")
        aconn.commit()
    with sqlite3.connect(path) as conn:
        conn.execute("ANALYZE")
    conn.close()
    print(f"sqlite: built {table} ({rows:,} rows) in {time.perf_counter() - t0:.1f}s -> {path}")


def quiet_ray() -> None:
    """Ray at WARNING, no progress bars: one line per run stays readable."""
    for name in ("ray", "ray.data", "ray.data._internal", "ray.train", "ray.tune", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Progress bars disabled. To enable, ..." is a WARNING; we disable them on purpose.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False


def keep_idle_workers() -> None:
    """Make the Ray instance started next keep idle worker processes, as pinnacle_ray's own
    local instance does (``pinnacle_ray._internal.runtime.keep_idle_workers``); every
    Ray-based method runs on it. Without it Ray restarts read workers for every run. Set
    here without importing the package, so the other methods still run when it is broken."""
    os.environ.setdefault("RAY_num_workers_soft_limit", str(3 * (os.cpu_count() or 1)))


def linear_chunks(
    rows: int, n_features: int, seed: int, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Deterministic (ids 1..rows, features ~ N(0, 1), label = features @ w + N(0, 0.1) noise)
    in chunks of ``chunk`` rows: the same values for every benchmark with the same seed."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=n_features)
    for start in range(1, rows + 1, chunk):
        stop = min(start + chunk, rows + 1)
        ids = np.arange(start, stop, dtype=np.int64)
        feats = rng.normal(size=(len(ids), n_features))
        label = feats @ weights + rng.normal(scale=0.1, size=len(ids))
        yield ids, feats, label
