"""scikit-learn and XGBoost on a SQLite table: train both, register both in the same
database, load them back and compare their predictions.

Run it with ``.venv/bin/python examples/sklearn_and_xgboost.py`` (after ``./dev quickstart``
or ``./dev test`` set up ``.venv``). No server, no network: the data is scikit-learn's
bundled breast cancer data set, and Ray starts locally.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ray.train import ScalingConfig
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pinnacle_ray as pr
from pinnacle_ray.datastore import SqlDatastore


def build_table(store: SqlDatastore) -> list[str]:
    """Write the data set into table ``tumours`` (id, 30 features, diagnosis, split)."""
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    store.write("tumours", frame, key="id")
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="classic.db", help="SQLite file to create or reuse")
    args = parser.parse_args()

    store = pr.connect(Path(args.db))
    features = build_table(store)
    train = store.table("tumours", where={"split": "train"})
    valid = store.table("tumours", where={"split": "valid"})
    print(f"table 'tumours' in {store.url}: {train.count()} train / {valid.count()} valid rows")

    # scikit-learn: the whole query in one Ray task (2 CPUs); string labels are fine.
    started = time.perf_counter()
    sk = pr.SklearnTrainer(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        features=features,
        label="diagnosis",
        name="tumour-logreg",
        num_cpus=2,
    ).fit(train=train, valid=valid)
    print(
        f"\n{sk.name} v{sk.version} in {time.perf_counter() - started:.1f} s: accuracy "
        f"{sk.metrics['valid/accuracy']:.3f}, ROC-AUC {sk.metrics['valid/roc_auc']:.3f}"
    )

    # XGBoost: two Ray Train workers build one booster; early stopping keeps the best round.
    # XGBoost needs numeric labels, so this query computes them.
    started = time.perf_counter()
    numeric = "SELECT *, CASE WHEN diagnosis = 'benign' THEN 1 ELSE 0 END AS benign FROM tumours"
    xg = pr.XGBoostTrainer(
        params={"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "eta": 0.3},
        features=features,
        label="benign",
        num_boost_round=200,
        early_stopping_rounds=10,
        scaling_config=ScalingConfig(num_workers=2),
        name="tumour-xgb",
    ).fit(
        train=store.sql(numeric + " WHERE split = :s", params={"s": "train"}, key="id"),
        valid=store.sql(numeric + " WHERE split = :s", params={"s": "valid"}, key="id"),
    )
    best = store.models.get("tumour-xgb", handle="best")
    print(
        f"{xg.name} v{xg.version} in {time.perf_counter() - started:.1f} s: stopped at round "
        f"{xg.metrics['round']}, best round {best.step} (valid AUC {best.metrics['valid/auc']:.3f})"
    )

    print("\nregistered in the same database:")
    for version in store.models.list()[:4]:
        print(f"  {version}")

    logreg = store.models.load("tumour-logreg")
    booster = store.models.load("tumour-xgb")  # the version's artifact: the best round
    rows = valid.to_arrow().slice(0, 6)
    p_logreg = logreg.predict_proba(rows)[:, logreg.classes.index("benign")]
    p_xgb = booster.predict_proba(rows)[:, 1]
    print("\nP(benign) on 6 validation rows:")
    for truth, a, b in zip(rows.column("diagnosis").to_pylist(), p_logreg, p_xgb, strict=True):
        print(f"  {truth:<10} logistic regression {a:5.3f}   xgboost {b:5.3f}")


if __name__ == "__main__":
    main()
