"""Batch prediction with write-back: ``pr.predict`` against a hand-written loop, in one run.

What it measures
----------------
The table of ``ingest.py`` (``id`` BIGINT PRIMARY KEY, ``f0..f15`` floats) with 1M and 4M
rows in SQLite (``benchmarks/.data/predict_<N>.db``) and 1M rows in PostgreSQL (db
``test``). One model, a torch MLP 16 -> 64 -> 1, registered in each store; both methods
load it from the registry and write one row per key (id, model, version, prediction,
created_at) into a table whose primary key is (id, model, version), by upsert:

    ours    ``pr.predict(model, store.table(..., columns=["id", f0..f15]), output=...)``:
            shards read in parallel, an actor pool (one model load per actor), each batch
            upserted from its actor;
    theirs  the loop people write: ``pandas.read_sql`` of the whole query, ``model.predict``,
            one ``executemany`` upsert through the DBAPI driver (sqlite3 / psycopg), commit.

Both output tables are emptied before each timed run. Ray is started and ``pr.predict`` runs
once on 50k rows first (warm worker processes). Reported: seconds and rows/s per method
(min over ``--repeats``, and the median when there are several), the speed-up (target on 2
cores: >= 1.5x on SQLite, >= 2.5x on PostgreSQL), and the driver's peak RSS increase during
``pr.predict`` against the size of one batch (target < 2x). ``--json PATH`` writes one row
per backend and size (the benchmark contract of ``_contract.py``; ratio_kind "speedup").
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import sqlalchemy as sa
import torch
from _common import (
    PeakRSS,
    banner,
    ensure_data_dir,
    fmt_bytes,
    fmt_rate,
    keep_idle_workers,
    quiet_ray,
    write_json_rows,
)
from ingest import N_FEATURES, PG_SA_URL, PG_URL, TABLE, build_postgres, build_sqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pinnacle_ray as pr
from pinnacle_ray._internal.runtime import ensure_ray
from pinnacle_ray.registry.torch_flavor import save_model

FEATURES = [f"f{i}" for i in range(N_FEATURES)]
MODEL = "bench-predict-mlp"
OURS, THEIRS = "bench_predict_ours", "bench_predict_theirs"
TARGET_SPEEDUP = {"sqlite": 1.5, "postgresql": 2.5}  # issue 24: on 2 cores
TARGET_MEMORY = 2.0


def register_model(store: pr.SqlDatastore) -> int:
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )
    with tempfile.TemporaryDirectory() as folder:
        save_model(folder, module, features=FEATURES, label="label", objective="mse")
        return store.models.register(MODEL, "torch", folder).version


def create_output(engine: sa.Engine, name: str) -> None:
    """The output table both methods write into: primary key (id, model, version)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(
            f"CREATE TABLE {name} (id BIGINT NOT NULL, model VARCHAR(128) NOT NULL, "
            "version BIGINT NOT NULL, prediction DOUBLE PRECISION, created_at TIMESTAMP, "
            "PRIMARY KEY (id, model, version))"
        )


def clear(engine: sa.Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {name}")


def ours(store: pr.SqlDatastore, batch_size: int, query=None) -> int:
    query = query or store.table(TABLE, columns=["id", *FEATURES])
    return pr.predict(MODEL, query, output=OURS, batch_size=batch_size).rows


def theirs(backend: str, store: pr.SqlDatastore, sqlite_path: Path, version: int) -> int:
    """pandas read, model.predict, executemany upsert: as a user writes it by hand."""
    model = store.models.load(MODEL, version=version)
    select = f"SELECT id, {', '.join(FEATURES)} FROM {TABLE}"
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    upsert = (
        f"INSERT INTO {THEIRS} (id, model, version, prediction, created_at) "
        "VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (id, model, version) DO UPDATE SET "
        "prediction = excluded.prediction, created_at = excluded.created_at"
    )
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(sqlite_path)
        try:
            frame = pd.read_sql(select, conn)
            predicted = model.predict(frame[FEATURES])
            rows = zip(
                frame["id"].tolist(),
                repeat(MODEL),
                repeat(version),
                predicted.tolist(),
                repeat(now.isoformat(sep=" ")),
                strict=False,
            )
            conn.executemany(upsert.format(p="?"), rows)
            conn.commit()
        finally:
            conn.close()
    else:
        import psycopg

        engine = sa.create_engine(PG_SA_URL)
        frame = pd.read_sql(select, engine)
        engine.dispose()
        predicted = model.predict(frame[FEATURES])
        with psycopg.connect(PG_URL) as conn:
            rows = zip(
                frame["id"].tolist(),
                repeat(MODEL),
                repeat(version),
                predicted.tolist(),
                repeat(now),
                strict=False,
            )
            conn.cursor().executemany(upsert.format(p="%s"), rows)
            conn.commit()
    return len(frame)


def check_same(engine: sa.Engine, rows: int) -> str:
    with engine.connect() as conn:
        counts = [
            conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar() for t in (OURS, THEIRS)
        ]
        pairs = conn.exec_driver_sql(
            f"SELECT o.prediction, t.prediction FROM {OURS} o JOIN {THEIRS} t "
            "ON o.id = t.id AND o.model = t.model AND o.version = t.version WHERE o.id <= 1000"
        ).fetchall()
    same = bool(pairs) and np.allclose([p[0] for p in pairs], [p[1] for p in pairs], rtol=1e-5)
    return f"rows written {counts} (expected {rows:,} each); same predictions: {same}"


def run_backend(backend: str, args: argparse.Namespace) -> dict:
    """Time both methods on ``backend`` at ``args.rows`` rows; the benchmark row."""
    path = ensure_data_dir() / f"predict_{args.rows}.db"
    if backend == "sqlite":
        build_sqlite(path, args.rows, args.rebuild)
        store = pr.connect(path)
    else:
        build_postgres(args.rows, args.rebuild)
        store = pr.connect(PG_SA_URL)
    engine = store._engine
    version = register_model(store)
    # pr.predict creates its output on first use; both methods start from the same table.
    create_output(engine, OURS)
    create_output(engine, THEIRS)
    warm = store.sql(f"SELECT id, {', '.join(FEATURES)} FROM {TABLE} WHERE id <= 50000", key="id")
    ours(store, args.batch_size, warm)

    ours_s, theirs_s, peaks = [], [], []
    for _ in range(args.repeats):
        clear(engine, OURS)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            written = ours(store, args.batch_size)
            ours_s.append(time.perf_counter() - t0)
        peaks.append(rss.peak_delta)
        assert written == args.rows, written
        clear(engine, THEIRS)
        t0 = time.perf_counter()
        theirs(backend, store, path, version)
        theirs_s.append(time.perf_counter() - t0)

    batch_bytes = args.batch_size * (1 + N_FEATURES) * 8
    speedup = min(theirs_s) / min(ours_s)
    memory = max(peaks) / batch_bytes
    target = TARGET_SPEEDUP[backend]
    print(f"\n{backend}: {args.rows:,} rows, batch {args.batch_size:,}, {args.repeats} repeat(s)")
    print(
        f"  pr.predict (write-back)           {min(ours_s):7.2f} s  "
        f"{fmt_rate(args.rows / min(ours_s))} rows/s"
    )
    print(
        f"  pandas + predict + executemany    {min(theirs_s):7.2f} s  "
        f"{fmt_rate(args.rows / min(theirs_s))} rows/s"
    )
    print(
        f"  speed-up {speedup:.2f}x (target >= {target}x: "
        f"{'met' if speedup >= target else 'MISSED'})"
    )
    if args.repeats > 1:
        print(
            f"  medians: pr.predict {statistics.median(ours_s):.2f} s, hand loop "
            f"{statistics.median(theirs_s):.2f} s"
        )
    print(
        f"  driver peak RSS {fmt_bytes(max(peaks))} vs one batch {fmt_bytes(batch_bytes)}: "
        f"{memory:.2f}x (target < {TARGET_MEMORY}x: "
        f"{'met' if memory < TARGET_MEMORY else 'MISSED'})"
    )
    same = check_same(engine, args.rows)
    print(f"  {same}")
    if backend != "sqlite":  # a shared server: leave nothing behind
        with engine.begin() as conn:
            for name in (OURS, THEIRS):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    store.close()
    name = "PostgreSQL" if backend == "postgresql" else "SQLite"
    return {
        "benchmark": f"predict write-back {name} {fmt_rows(args.rows)}",
        "ours_s": round(min(ours_s), 3),
        "baseline": "pandas.read_sql + predict + executemany upsert",
        "baseline_s": round(min(theirs_s), 3),
        "ratio": round(speedup, 3),
        "ratio_kind": "speedup",
        "target": f">= {target}x",
        "met": bool(speedup >= target and memory < TARGET_MEMORY),
        "note": (
            f"min of {args.repeats}; medians {statistics.median(ours_s):.2f} / "
            f"{statistics.median(theirs_s):.2f} s; batch {args.batch_size:,}; driver peak RSS "
            f"{memory:.2f}x one batch (< {TARGET_MEMORY}x); {same}"
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="1000000,4000000",
        help="table sizes, comma-separated (PostgreSQL runs the first only; default: 1M and 4M)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="write the rows of the benchmark contract")
    args = parser.parse_args()

    keep_idle_workers()
    ensure_ray()
    quiet_ray()
    sizes = [int(r) for r in str(args.rows).split(",")]
    print(
        banner(f"pr.predict write-back vs a hand-written loop, {', '.join(map(fmt_rows, sizes))}")
    )
    met, rows_out = {}, []
    for backend in (b.strip() for b in args.backends.split(",")):
        # A 4M-row hand-written loop on the server takes minutes; one size says enough there.
        for rows in sizes if backend == "sqlite" else sizes[:1]:
            row = run_backend(backend, argparse.Namespace(**{**vars(args), "rows": rows}))
            rows_out.append(row)
            met[(backend, rows)] = row["met"]
    ray.shutdown()
    if args.json:
        write_json_rows(args.json, rows_out)
    print("\ntargets (SQLite >= 1.5x, PostgreSQL >= 2.5x) on >= 1M rows:")
    for (backend, rows), ok in met.items():
        print(f"  {backend:<11} {rows:>10,} rows  {'met' if ok else 'MISSED'}")
    if args.json:  # a missed target is a figure in the rows, not a failed script
        return 0
    # The target asks for >= 1M rows: met when each backend meets it at one size or more.
    return 0 if all(any(ok for (b, _), ok in met.items() if b == be) for be, _ in met) else 1


def fmt_rows(rows: int) -> str:
    return f"{rows / 1e6:g}M rows" if rows >= 1_000_000 else f"{rows:,} rows"


if __name__ == "__main__":
    raise SystemExit(main())
