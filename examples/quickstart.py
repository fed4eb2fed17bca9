"""Quickstart: a table in embedded SQLite, read back as a sharded Ray Dataset.

Run it with ``./dev quickstart`` (sets up .venv on first use). It needs no server and no
network: the data is scikit-learn's bundled diabetes data set, and Ray starts locally.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

import pinnacle_ray as pr


def build_table(store: pr.SqlDatastore) -> int:
    """Write the diabetes data set into table ``patients``, with an ``id`` and a split."""
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    # A deterministic 80/20 split, so reruns (idempotent upserts) give the same rows.
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    return store.write("patients", frame, key="id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="quickstart.db", help="SQLite file to create or reuse")
    args = parser.parse_args()

    store = pr.connect(Path(args.db))
    written = build_table(store)
    print(f"wrote {written} rows into table 'patients' of {store.url}")

    train = store.table("patients", where={"split": "train"})  # key: the primary key, id
    print(f"query: patients where split='train', key={train.key!r}: {train.count()} rows")

    print("\nshard plan chosen for this machine:")
    print(train.plan())
    print("\nshard plan with shards=4 (each shard is one Ray ReadTask):")
    print(train.plan(shards=4))

    started = time.perf_counter()
    dataset = train.to_dataset(shards=4).materialize()
    elapsed = time.perf_counter() - started
    print(f"\nread {dataset.count()} rows as a Ray Dataset in {elapsed:.2f} s; schema:")
    print(dataset.schema())
    first = dataset.take(3)
    print("\nfirst rows:")
    for row in first:
        print("  ", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})


if __name__ == "__main__":
    main()
