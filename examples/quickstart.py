"""Quickstart: a table in embedded SQLite -> sharded Ray Dataset -> a torch model trained on
two Ray Train workers -> registered in the same database -> loaded back to predict.

Run it with ``./dev quickstart`` (sets up .venv on first use). It needs no server and no
network: the data is scikit-learn's bundled diabetes data set, and Ray starts locally.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from ray.train import ScalingConfig
from sklearn.datasets import load_diabetes

import pinnacle_ray as pr
from pinnacle_ray.datastore import SqlDatastore

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def build_table(store: SqlDatastore) -> int:
    """Write the diabetes data set into table ``patients``, with an ``id`` and a split."""
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    # A deterministic 80/20 split, so reruns (idempotent upserts) give the same rows.
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    return store.write("patients", frame, key="id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="quickstart.db", help="SQLite file to create or reuse")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    store = pr.connect(Path(args.db))
    written = build_table(store)
    print(f"wrote {written} rows into table 'patients' of {store.url}")

    train = store.table("patients", where={"split": "train"})  # key: the primary key, id
    valid = store.table("patients", where={"split": "valid"})
    print(f"query: patients where split='train', key={train.key!r}: {train.count()} rows")
    print("\nshard plan with shards=4 (each shard is one Ray ReadTask):")
    print(train.plan(shards=4))

    started = time.perf_counter()
    dataset = train.to_dataset(shards=4).materialize()
    elapsed = time.perf_counter() - started
    print(f"\nread {dataset.count()} rows as a Ray Dataset in {elapsed:.2f} s; schema:")
    print(dataset.schema())

    # The managed loop: no training code to write. Two Ray Train workers (DDP) on this
    # machine's CPUs, validation every epoch, a checkpoint per validation, early stopping.
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(len(FEATURES), 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
    )
    trainer = pr.TorchTrainer(
        model=mlp,
        objective="mse",
        features=FEATURES,
        label="progression",
        optimizer_cls="Adam",
        optimizer_kwargs={"lr": 0.5},
        batch_size=32,
        epochs=args.epochs,
        no_improve_then_stop=5,
        listen="valid/loss",
        scaling_config=ScalingConfig(num_workers=2),
        name="diabetes-mlp",
    )
    started = time.perf_counter()
    result = trainer.fit(train=train, valid=valid)
    elapsed = time.perf_counter() - started
    print(
        f"\ntrained {result.name} in {elapsed:.1f} s: step {result.metrics['step']}, epoch "
        f"{result.metrics['epoch']}, valid mse {result.metrics['valid/loss']:.1f}"
    )
    print(f"registered as {result.name} version {result.version} in {store.url}")
    for version in store.models.list(result.name)[:3]:
        print(f"  {version}")

    model = store.models.load(result.name, handle="best")
    rows = valid.to_arrow().slice(0, 5)
    predicted = model.predict(rows)
    print("\npredictions of the best checkpoint on 5 validation rows:")
    for truth, guess in zip(rows.column("progression").to_pylist(), predicted, strict=True):
        print(f"  progression {truth:6.1f}   predicted {guess:6.1f}")
    print(
        "\nnext: examples/sklearn_and_xgboost.py trains scikit-learn and XGBoost models on a "
        "table the same way (pr.SklearnTrainer, pr.XGBoostTrainer)"
    )


if __name__ == "__main__":
    main()
