"""Ingest benchmark: read a whole SQL table into Arrow / a materialized Ray Dataset.

What it measures
----------------
A table ``bench_ingest`` (``id`` BIGINT primary key 1..N, ``f0..f15`` and ``label`` DOUBLE,
``bucket`` INTEGER = id % 100; deterministic data, default N = 1,000,000) is built once in
SQLite (``benchmarks/.data/ingest.db``) and in PostgreSQL
(``postgresql+psycopg://postgres@127.0.0.1:5432/test``; skipped with a loud message when it
is unreachable) and reused while its row count matches. Every method below then reads the
whole table, once as a warm-up (so the OS page cache is equally warm for all) and
``--repeats`` times timed; min and median wall-clock seconds and rows/s are reported:

1. ``pinnacle_ray``: ``pr.connect(url).table("bench_ingest", key="id").to_dataset()``,
   materialized. The driver's peak RSS increase during this read is sampled every 20 ms and
   printed next to the size of one shard (dataset bytes / number of blocks).
2. ``ray.data.read_sql`` with a plain ``sqlite3.connect`` / ``psycopg.connect`` factory,
   materialized, as a user would call it.
3. A raw DBAPI cursor ``fetchmany(65536)`` loop, columns transposed into ``pa.array``.
4. connectorx ``read_sql(..., return_type="arrow")`` with 1 and with 2 partitions on ``id``.
5. ADBC (``adbc_driver_sqlite`` / ``adbc_driver_postgresql``) ``fetch_arrow_table()``.

MongoDB (``--backends ...,mongo``, on by default) runs only when ``PINNACLE_TEST_MONGO_URI``
names a server (``mongodb://host:27017/database``); otherwise it prints that it skipped Mongo
and why. The same rows become documents of collection ``bench_ingest`` (``_id`` = id), and
the readers are: pinnacle_ray's sharded ``store.find("bench_ingest").to_dataset()``,
``pymongoarrow``'s ``find_arrow_all`` in one process, ``ray.data.read_mongo``, and a plain
pymongo cursor into Arrow (the last two need ``pip install pymongoarrow``).

Ray is started once, before any timing, so its start-up is not counted for either Ray
reader. Targets checked (issue 24, ratios from the min times): pinnacle_ray >= 8x faster than
``ray.data.read_sql``; >= 1.0x the speed of the faster connectorx configuration of this run
(1 or 2 partitions, whichever had the smaller min); on PostgreSQL also >= 1.0x the speed of
one process doing ADBC ``fetch_arrow_table``.

``--json PATH`` writes those comparisons as rows of the benchmark contract
(``benchmarks/_contract.py``), one per target and backend, for ``./dev bench all``.

How to run (from the repository root)
-------------------------------------
    .venv/bin/python benchmarks/ingest.py                           # 1M rows, 3 repeats
    .venv/bin/python benchmarks/ingest.py --rows 200000 --repeats 1 # quick check
    .venv/bin/python benchmarks/ingest.py --backends sqlite         # SQLite only
    .venv/bin/python benchmarks/ingest.py --json /tmp/ingest.json   # contract rows too
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from _common import (
    PeakRSS,
    Result,
    banner,
    build_sqlite_table,
    ensure_data_dir,
    fmt_bytes,
    fmt_rate,
    keep_idle_workers,
    linear_chunks,
    quiet_ray,
    time_method,
    write_json_rows,
)

TABLE = "bench_ingest"
SQL = f"SELECT * FROM {TABLE}"
N_FEATURES = 16
SEED = 20240601
GEN_CHUNK = 250_000
FETCH_SIZE = 65536
PG_SA_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

SPEEDUP_TARGET_READ_SQL = 8.0
RATIO_TARGET_CX_BEST = 1.0
RATIO_TARGET_ADBC_PG = 1.0

M_PR = "pinnacle_ray"
M_READ_SQL = "ray.data.read_sql"
M_DBAPI = "DBAPI fetchmany -> Arrow"
M_CX1 = "connectorx (1 partition)"
M_CX2 = "connectorx (2 partitions)"
M_ADBC = "ADBC fetch_arrow_table"
M_CX_BEST = "connectorx (best of 1 and 2 partitions)"

EXPECTED_COLUMNS = ["id", *[f"f{i}" for i in range(N_FEATURES)], "label", "bucket"]


# --------------------------------------------------------------------------- data


def arrow_schema() -> pa.Schema:
    return pa.schema(
        [("id", pa.int64())]
        + [(f"f{i}", pa.float64()) for i in range(N_FEATURES)]
        + [("label", pa.float64()), ("bucket", pa.int32())]
    )


def generate_batches(rows: int) -> Iterator[pa.RecordBatch]:
    """Deterministic data: features ~ N(0, 1), label = features @ w + noise, bucket = id % 100."""
    schema = arrow_schema()
    for ids, feats, label in linear_chunks(rows, N_FEATURES, SEED, GEN_CHUNK):
        arrays = [pa.array(ids)]
        arrays += [pa.array(feats[:, i]) for i in range(N_FEATURES)]
        arrays += [pa.array(label), pa.array((ids % 100).astype(np.int32))]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def create_table_ddl(with_pk: bool) -> str:
    cols = ["id BIGINT PRIMARY KEY" if with_pk else "id BIGINT NOT NULL"]
    cols += [f"f{i} DOUBLE PRECISION" for i in range(N_FEATURES)]
    cols += ["label DOUBLE PRECISION", "bucket INTEGER"]
    return f"CREATE TABLE {TABLE} ({', '.join(cols)})"


def _reader(rows: int) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(arrow_schema(), generate_batches(rows))


def build_sqlite(path: Path, rows: int, rebuild: bool) -> None:
    build_sqlite_table(
        path,
        TABLE,
        create_table_ddl(with_pk=True),
        EXPECTED_COLUMNS,
        rows,
        lambda: _reader(rows),
        rebuild,
    )


def build_postgres(rows: int, rebuild: bool) -> None:
    import adbc_driver_postgresql.dbapi as adbc_pg
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        if not rebuild:
            try:
                cur = conn.execute(f"SELECT * FROM {TABLE} LIMIT 0")
                cols = [d.name for d in cur.description or []]
                row = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
                if cols == EXPECTED_COLUMNS and row is not None and row[0] == rows:
                    print(f"postgresql: reusing {TABLE} ({rows:,} rows)")
                    return
            except psycopg.errors.UndefinedTable:
                pass
        t0 = time.perf_counter()
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(create_table_ddl(with_pk=False))  # PK added after the COPY: faster
        with adbc_pg.connect(PG_URL) as aconn:
            with aconn.cursor() as cur:
                cur.adbc_ingest(TABLE, _reader(rows), mode="append")
            aconn.commit()
        conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    print(f"postgresql: built {TABLE} ({rows:,} rows) in {time.perf_counter() - t0:.1f}s")


# --------------------------------------------------------------------------- backends


@dataclass
class Backend:
    name: str
    sa_url: str  # SQLAlchemy URL, for pinnacle_ray
    cx_url: str  # connectorx URL
    dbapi_factory: Callable[[], Any]  # picklable: shipped to Ray read tasks by read_sql
    adbc_connect: Callable[[], Any]


def sqlite_backend(path: Path) -> Backend:
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    p = str(path.resolve())
    return Backend(
        name="sqlite",
        sa_url=f"sqlite:///{p}",
        cx_url=f"sqlite://{p}",
        dbapi_factory=functools.partial(sqlite3.connect, p),
        adbc_connect=functools.partial(adbc_sqlite.connect, p),
    )


def postgres_backend() -> Backend:
    import adbc_driver_postgresql.dbapi as adbc_pg
    import psycopg

    return Backend(
        name="postgresql",
        sa_url=PG_SA_URL,
        cx_url=PG_URL,
        dbapi_factory=functools.partial(psycopg.connect, PG_URL),
        adbc_connect=functools.partial(adbc_pg.connect, PG_URL),
    )


# --------------------------------------------------------------------------- readers


@dataclass
class PrStats:
    """What the pinnacle_ray reader observed on its last call."""

    peak_rss_deltas: list[int]
    size_bytes: int = 0
    num_blocks: int = 0


def read_pinnacle_ray(backend: Backend, rows: int, stats: PrStats) -> Any:
    import pinnacle_ray as pr

    pa.default_memory_pool().release_unused()
    with PeakRSS(interval_s=0.02) as rss:
        store = pr.connect(backend.sa_url)
        ds = store.table(TABLE, key="id").to_dataset()
        ds = ds.materialize()
        assert ds.count() == rows, f"count {ds.count()} != {rows}"
    stats.peak_rss_deltas.append(rss.peak_delta)
    stats.size_bytes = ds.size_bytes()
    stats.num_blocks = ds.num_blocks()
    return ds


def read_ray_read_sql(backend: Backend, rows: int) -> Any:
    ds = ray.data.read_sql(SQL, backend.dbapi_factory).materialize()
    assert ds.count() == rows, f"count {ds.count()} != {rows}"
    return ds


def read_dbapi_fetchmany(backend: Backend) -> pa.Table:
    conn = backend.dbapi_factory()
    try:
        cur = conn.cursor()
        cur.execute(SQL)
        names = [d[0] for d in cur.description]
        batches: list[pa.RecordBatch] = []
        while True:
            chunk = cur.fetchmany(FETCH_SIZE)
            if not chunk:
                break
            cols = list(zip(*chunk, strict=True))
            batches.append(pa.RecordBatch.from_arrays([pa.array(c) for c in cols], names=names))
        cur.close()
        return pa.Table.from_batches(batches)
    finally:
        conn.close()


def read_connectorx(backend: Backend, partitions: int) -> pa.Table:
    import connectorx as cx

    if partitions <= 1:
        return cx.read_sql(backend.cx_url, SQL, return_type="arrow")
    return cx.read_sql(
        backend.cx_url, SQL, return_type="arrow", partition_on="id", partition_num=partitions
    )


def read_adbc(backend: Backend) -> pa.Table:
    with backend.adbc_connect() as conn, conn.cursor() as cur:
        cur.execute(SQL)
        return cur.fetch_arrow_table()


def check_rows(rows: int) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        n = out.count() if isinstance(out, ray.data.Dataset) else out.num_rows
        if n != rows:
            raise AssertionError(f"read {n} rows, expected {rows}")

    return check


# --------------------------------------------------------------------------- reporting


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


SQL_TARGETS = [
    (M_READ_SQL, SPEEDUP_TARGET_READ_SQL, "speed-up vs ray.data.read_sql"),
    (M_CX_BEST, RATIO_TARGET_CX_BEST, "speed vs the faster connectorx"),
]


def sql_targets(backend: str) -> list[tuple[str, float | None, str]]:
    """The targets of one SQL backend: one ADBC process is a target on PostgreSQL only."""
    adbc = RATIO_TARGET_ADBC_PG if backend == "postgresql" else None
    return [*SQL_TARGETS, (M_ADBC, adbc, "speed vs one ADBC fetch_arrow_table process")]


def best_connectorx(results: dict[str, Result]) -> str | None:
    """The connectorx configuration with the smaller min time in this run (None if both failed)."""
    ok = [m for m in (M_CX1, M_CX2) if m in results and results[m].ok]
    return min(ok, key=lambda m: results[m].min_s) if ok else None


def resolve(results: dict[str, Result], method: str) -> tuple[str, Result | None]:
    """``method``'s result; the best-connectorx pseudo-method names the configuration that won."""
    if method == M_CX_BEST:
        best = best_connectorx(results)
        return (best or M_CX_BEST), (results[best] if best else None)
    return method, results.get(method)


def ratio_lines(
    results: dict[str, Result],
    targets: list[tuple[str, float | None, str]] = SQL_TARGETS,
    ours: str = M_PR,
) -> list[tuple[str, str, str]]:
    """(description, value, verdict) for each target (no verdict when it has none)."""
    pr_res = results.get(ours)
    out: list[tuple[str, str, str]] = []
    for method, target, label in targets:
        other, o = resolve(results, method)
        if method == M_CX_BEST and o is not None:
            label = f"speed vs {other}, the faster connectorx"
        wanted = f" (target >= {target:g}x)" if target is not None else ""
        desc = f"pinnacle_ray {label}{wanted}"
        if pr_res is None or not pr_res.ok:
            out.append((desc, "n/a (pinnacle_ray FAILED)", "FAIL"))
        elif o is None or not o.ok:
            out.append((desc, f"n/a ({other} FAILED)", "n/a"))
        else:
            r = o.min_s / pr_res.min_s
            out.append((desc, f"{r:.2f}x", verdict(r >= target) if target is not None else ""))
    return out


def print_report(
    backend: str,
    rows: int,
    repeats: int,
    results: dict[str, Result],
    targets: list[tuple[str, float | None, str]] = SQL_TARGETS,
    ours: str = M_PR,
) -> str:
    """Print the plain-text table; return the markdown version."""
    w = max(len(m) for m in results) + 2
    print()
    print(banner(f"{backend}: read {rows:,} rows of {TABLE} (best of {repeats}, after warm-up)"))
    print(f"{'method':<{w}}{'min s':>10}{'median s':>10}{'rows/s':>14}")
    print("-" * (w + 34))
    for m, r in results.items():
        if r.ok:
            print(f"{m:<{w}}{r.min_s:>10.3f}{r.median_s:>10.3f}{fmt_rate(r.rows_per_s):>14}")
        else:
            print(f"{m:<{w}}  FAILED {r.error}")
    print()
    ratios = ratio_lines(results, targets, ours)
    dw = max(len(d) for d, _, _ in ratios)
    for desc, val, v in ratios:
        print(f"  {desc:<{dw}}  {val:>26}  {v}")

    md = [
        f"**{backend}**, {rows:,} rows, min/median of {repeats} after a warm-up read",
        "",
        "| method | min s | median s | rows/s |",
        "|---|---:|---:|---:|",
    ]
    for m, r in results.items():
        if r.ok:
            md.append(f"| {m} | {r.min_s:.3f} | {r.median_s:.3f} | {fmt_rate(r.rows_per_s)} |")
        else:
            md.append(f"| {m} | FAILED | | |")
    md.append("")
    for desc, val, v in ratios:
        md.append(f"- {desc}: **{val}** {v}")
    return "\n".join(md)


# --------------------------------------------------------------------------- main


def json_rows(
    backend: str,
    rows: int,
    repeats: int,
    results: dict[str, Result],
    targets: list[tuple[str, float | None, str]],
    ours: str = M_PR,
    note: str = "",
) -> list[dict[str, Any]]:
    """The benchmark contract's rows: one per target, ratio = baseline min / ours min."""
    out = []
    pr_res = results.get(ours)
    for method, target, _ in targets:
        other, o = resolve(results, method)
        ours_s = pr_res.min_s if pr_res is not None and pr_res.ok else None
        base_s = o.min_s if o is not None and o.ok else None
        ratio = base_s / ours_s if ours_s and base_s else None
        medians = " / ".join(
            f"{r.median_s:.3f}" if r is not None and r.ok else "n/a" for r in (pr_res, o)
        )
        out.append(
            {
                "benchmark": f"ingest {backend} {rows:,} rows",
                "ours_s": None if ours_s is None else round(ours_s, 4),
                "baseline": other,
                "baseline_s": None if base_s is None else round(base_s, 4),
                "ratio": None if ratio is None else round(ratio, 3),
                "ratio_kind": "speedup",
                "target": f">= {target:g}x" if target is not None else "",
                "met": None if target is None else bool(ratio is not None and ratio >= target),
                "note": f"min of {repeats} after a warm-up; medians {medians} s{note}",
            }
        )
    return out


def run_backend(backend: Backend, rows: int, repeats: int, contract: list[dict[str, Any]]) -> str:
    print()
    print(banner(f"{backend.name}: timing readers ({repeats} repeat(s) + 1 warm-up each)"))
    check = check_rows(rows)
    results: dict[str, Result] = {}

    def record(res: Result) -> None:
        results[res.method] = res
        if res.ok:
            print(f"  {res.method:<28} min {res.min_s:8.3f}s  median {res.median_s:8.3f}s")
        else:
            print(f"  {res.method}: FAILED {res.error}")
        sys.stdout.flush()

    # 1. pinnacle_ray (may not be implemented yet: failures are reported, never fatal)
    pr_stats = PrStats(peak_rss_deltas=[])
    record(
        time_method(
            M_PR, lambda: read_pinnacle_ray(backend, rows, pr_stats), rows, repeats, check=check
        )
    )
    note = ""
    if results[M_PR].ok:
        # Peak over the timed calls only (the warm-up also pays for the first import).
        peak = max(pr_stats.peak_rss_deltas[-repeats:])
        shard = pr_stats.size_bytes / max(pr_stats.num_blocks, 1)
        print(
            f"  driver peak RSS delta during pinnacle_ray read: {fmt_bytes(peak)}; "
            f"one shard = {fmt_bytes(pr_stats.size_bytes)} / {pr_stats.num_blocks} blocks "
            f"= {fmt_bytes(shard)}; ratio peak/shard = {peak / shard:.2f}"
        )
        note = f"; {pr_stats.num_blocks} blocks; driver peak RSS +{fmt_bytes(peak)}"

    # 2-5. baselines
    record(
        time_method(
            M_READ_SQL, lambda: read_ray_read_sql(backend, rows), rows, repeats, check=check
        )
    )
    record(time_method(M_DBAPI, lambda: read_dbapi_fetchmany(backend), rows, repeats, check=check))
    record(time_method(M_CX1, lambda: read_connectorx(backend, 1), rows, repeats, check=check))
    record(time_method(M_CX2, lambda: read_connectorx(backend, 2), rows, repeats, check=check))
    record(time_method(M_ADBC, lambda: read_adbc(backend), rows, repeats, check=check))

    targets = sql_targets(backend.name)
    contract.extend(json_rows(backend.name, rows, repeats, results, targets, note=note))
    return print_report(backend.name, rows, repeats, results, targets)


# --------------------------------------------------------------------------- MongoDB

MONGO_ENV = "PINNACLE_TEST_MONGO_URI"
M_PR_MONGO = "pinnacle_ray (find, sharded)"
M_PYMONGOARROW = "pymongoarrow find_arrow_all"
M_READ_MONGO = "ray.data.read_mongo"
M_CURSOR = "pymongo cursor -> Arrow"


def mongo_collection(uri: str) -> Any:
    from pymongo import MongoClient
    from pymongo.uri_parser import parse_uri

    database = parse_uri(uri)["database"]
    if not database:
        raise ValueError(f"{MONGO_ENV} names no database; add it: mongodb://host:27017/bench")
    return MongoClient(uri)[database][TABLE]


def build_mongo(uri: str, rows: int, rebuild: bool) -> None:
    coll = mongo_collection(uri)
    if not rebuild and coll.estimated_document_count() == rows:
        print(f"mongo: reusing collection {TABLE} ({rows:,} documents)")
        return
    coll.drop()
    started = time.perf_counter()
    for batch in generate_batches(rows):
        docs = batch.to_pylist()
        for doc in docs:
            doc["_id"] = doc.pop("id")
        coll.insert_many(docs, ordered=False)
    print(f"mongo: built collection {TABLE} in {time.perf_counter() - started:.1f} s")


def read_mongo_pinnacle(uri: str, rows: int) -> Any:
    import pinnacle_ray as pr

    store = pr.connect(uri)
    ds = store.find(TABLE).to_dataset().materialize()
    assert ds.count() == rows, f"count {ds.count()} != {rows}"
    return ds


def read_mongo_pymongoarrow(uri: str) -> pa.Table:
    from pymongoarrow.api import find_arrow_all

    return find_arrow_all(mongo_collection(uri), {})


def read_ray_read_mongo(uri: str, rows: int) -> Any:
    from pymongo.uri_parser import parse_uri

    database = parse_uri(uri)["database"]
    ds = ray.data.read_mongo(uri=uri, database=database, collection=TABLE).materialize()
    assert ds.count() == rows, f"count {ds.count()} != {rows}"
    return ds


def read_mongo_cursor(uri: str) -> pa.Table:
    cursor = mongo_collection(uri).find({}, batch_size=FETCH_SIZE)
    batches, pending = [], []
    for doc in cursor:
        pending.append(doc)
        if len(pending) == FETCH_SIZE:
            batches.append(pa.Table.from_pylist(pending))
            pending = []
    if pending:
        batches.append(pa.Table.from_pylist(pending))
    return pa.concat_tables(batches)


def run_mongo(uri: str, rows: int, repeats: int, contract: list[dict[str, Any]]) -> str:
    print()
    print(banner(f"mongo: timing readers ({repeats} repeat(s) + 1 warm-up each)"))
    check = check_rows(rows)
    results: dict[str, Result] = {}
    for name, fn in (
        (M_PR_MONGO, lambda: read_mongo_pinnacle(uri, rows)),
        (M_PYMONGOARROW, lambda: read_mongo_pymongoarrow(uri)),
        (M_READ_MONGO, lambda: read_ray_read_mongo(uri, rows)),
        (M_CURSOR, lambda: read_mongo_cursor(uri)),
    ):
        res = time_method(name, fn, rows, repeats, check=check)
        results[name] = res
        if res.ok:
            print(f"  {name:<28} min {res.min_s:8.3f}s  median {res.median_s:8.3f}s")
        else:
            print(f"  {name}: FAILED {res.error}")
        sys.stdout.flush()
    targets = [
        (M_PYMONGOARROW, None, "speed vs pymongoarrow find_arrow_all (one process)"),
        (M_READ_MONGO, None, "speed-up vs ray.data.read_mongo"),
    ]
    contract.extend(json_rows("mongo", rows, repeats, results, targets, M_PR_MONGO))
    return print_report("mongo", rows, repeats, results, targets, M_PR_MONGO)


def skip_banner(what: str, why: str) -> None:
    print()
    print("!" * 78)
    print(f"!!! {what} SKIPPED: {why}")
    print("!" * 78)
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=1_000_000, help="table size (default 1,000,000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (default 3)")
    p.add_argument(
        "--backends",
        default="sqlite,postgresql,mongo",
        help="comma-separated subset of sqlite,postgresql,mongo (default all; mongo runs "
        f"only when {MONGO_ENV} is set)",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the tables even if present")
    p.add_argument(
        "--json", metavar="PATH", help="write the comparisons as benchmark-contract rows"
    )
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql", "mongo"}
    if unknown:
        p.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.rows < 1 or args.repeats < 1:
        p.error("--rows and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows, repeats = args.rows, args.repeats

    # Ray first, before any timing: start-up is not counted for either Ray-based reader.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    keep_idle_workers()
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    quiet_ray()
    print(
        f"python {platform.python_version()}, ray {ray.__version__}, pyarrow {pa.__version__}, "
        f"{os.cpu_count()} CPUs; rows={rows:,}, repeats={repeats}"
    )

    backends: list[Backend] = []
    if "sqlite" in args.backends:
        path = ensure_data_dir() / "ingest.db"
        build_sqlite(path, rows, args.rebuild)
        backends.append(sqlite_backend(path))
    if "postgresql" in args.backends:
        try:
            build_postgres(rows, args.rebuild)
            backends.append(postgres_backend())
        except Exception as e:
            msg = f"{type(e).__name__}: {e}".strip().splitlines()[0]
            skip_banner("PostgreSQL", f"{PG_URL} unusable: {msg}")
    mongo_uri = None
    if "mongo" in args.backends:
        mongo_uri = os.environ.get(MONGO_ENV)
        if not mongo_uri:
            skip_banner(
                "MongoDB",
                f"{MONGO_ENV} is not set (no MongoDB server on this machine; the test "
                "stand-in is not a server to time). Set it to mongodb://host:27017/bench",
            )
        else:
            try:
                build_mongo(mongo_uri, rows, args.rebuild)
            except Exception as e:
                from pinnacle_ray._internal.secrets import mask

                msg = f"{type(e).__name__}: {e}".strip().splitlines()[0]
                skip_banner("MongoDB", f"{mask(mongo_uri)} unusable: {msg}")
                mongo_uri = None

    markdown: list[str] = []
    contract: list[dict[str, Any]] = []
    for b in backends:
        markdown.append(run_backend(b, rows, repeats, contract))
        gc.collect()
    if mongo_uri:
        markdown.append(run_mongo(mongo_uri, rows, repeats, contract))
    if args.json:
        write_json_rows(args.json, contract)

    if markdown:
        print()
        print(banner("markdown (paste into a README)"))
        print()
        print("\n\n".join(markdown))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
