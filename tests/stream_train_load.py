"""Train one epoch of the managed torch loop over an SQLite table ~10x Ray's object store.

Run by tests/test_load.py in a subprocess, because it needs a Ray of its own with a small
object store (``ray.init(object_store_memory=...)``). Prints one JSON line of figures:
table rows and size (Arrow bytes), object store size, rows the loop trained on, driver
peak RSS growth, seconds.

    python tests/stream_train_load.py <folder> [--store-mb 80] [--factor 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import threading
import time
from pathlib import Path

import psutil

WIDTH = 30  # float features; with the id and the label, 8 * 32 = 256 Arrow bytes per row


def build_table(path: Path, rows: int) -> None:
    """``big(id, f0..f29, y)`` with ``rows`` rows, generated inside SQLite in one statement."""
    features = [f"f{i}" for i in range(WIDTH)]
    values = [f"((i * {2 * k + 3}) % 1009) / 1009.0" for k in range(WIDTH)]
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            f"CREATE TABLE big (id INTEGER PRIMARY KEY, {', '.join(f + ' REAL' for f in features)}"
            ", y REAL)"
        )
        conn.execute(
            f"WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {rows - 1}) "
            f"INSERT INTO big SELECT i, {', '.join(values)}, ((i * 3) % 1009) / 1009.0 FROM c"
        )
    conn.close()


class PeakRSS:
    """This process's peak resident memory above its level at the start, sampled every 10 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.stop = threading.Event()
        self.base = self.process.memory_info().rss
        self.peak = 0
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--store-mb", type=int, default=80)
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args()
    store_bytes = args.store_mb * 1_000_000
    row_bytes = 8 * (WIDTH + 2)
    rows = args.factor * store_bytes // row_bytes

    started = time.perf_counter()
    db = args.folder / "big.db"
    if not db.exists():  # a fresh folder in the test; kept between runs by hand
        build_table(db, rows)
    built = time.perf_counter()
    print(f"built {rows} rows in {built - started:.1f} s", file=sys.stderr, flush=True)

    import ray
    import torch
    from ray.train import ScalingConfig

    import pinnacle_ray as pr
    from pinnacle_ray._internal.quiet_logging import worker_env
    from pinnacle_ray._internal.runtime import keep_idle_workers, wait_for_cpus
    from pinnacle_ray.trainers.caching import estimated_bytes, fits_in_object_store

    keep_idle_workers()
    for attempt in range(3):
        try:
            ray.init(
                address="local",  # a Ray of its own, never the test session's
                num_cpus=2,
                object_store_memory=store_bytes,
                include_dashboard=True,  # Ray Train polls the State API it serves
                logging_level=logging.WARNING,
                runtime_env={"env_vars": worker_env()},
            )
            break
        except Exception as exc:  # Ray gives its raylet 30 s to start: a loaded machine
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
            print(f"Ray did not start ({exc}); trying again", file=sys.stderr, flush=True)
            ray.shutdown()
    wait_for_cpus()
    store = pr.connect(db, artifact_root=args.folder / "art")
    query = store.table("big")
    features = [f"f{i}" for i in range(WIDTH)]
    table_bytes = estimated_bytes(query.to_dataset().schema().base_schema, rows)
    trainer = pr.TorchTrainer(
        model=torch.nn.Linear(WIDTH, 1),
        objective="mse",
        features=features,
        label="y",
        batch_size=16_384,
        epochs=1,
        listen=None,  # no holdout: every row trains
        scaling_config=ScalingConfig(num_workers=1),
        run_config=ray.train.RunConfig(storage_path=str(args.folder / "runs")),
        name="stream",
    )
    rss = PeakRSS()
    result = trainer.fit(train=query, register=False)
    peak = rss.close()
    figures = {
        "rows": rows,
        "table_bytes": table_bytes,
        "object_store_bytes": int(ray.cluster_resources()["object_store_memory"]),
        "cached": fits_in_object_store(table_bytes),
        "trained_rows": int(result.metrics["train/rows"]),
        "epoch_done": bool(result.metrics["epoch_done"]),
        "steps": int(result.metrics["step"]),
        "driver_peak_rss_growth_bytes": peak,
        "build_seconds": round(built - started, 1),
        "train_seconds": round(time.perf_counter() - built, 1),
    }
    print(json.dumps(figures), flush=True)
    store.close()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
