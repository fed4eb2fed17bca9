"""scikit-learn's bundled data sets written as datastore tables, with an id key and a split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

import pinnacle_ray as pr


def _frame(bunch) -> pd.DataFrame:
    frame = bunch.frame.copy()
    frame.columns = [c.replace(" ", "_").replace("(", "").replace(")", "") for c in frame.columns]
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    # Every 5th row is validation: the same rows on every backend and every run.
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    return frame


def breast_cancer(store: pr.SqlDatastore, table: str) -> list[str]:
    """569 rows, 30 float features, ``target`` (0/1) and ``kind`` (benign/malignant)."""
    frame = _frame(load_breast_cancer(as_frame=True))
    features = [c for c in frame.columns if c not in ("id", "target", "split")]
    frame["kind"] = np.where(frame["target"] == 1, "benign", "malignant")
    store.write(table, frame, key="id")
    return features


def diabetes(store: pr.SqlDatastore, table: str) -> list[str]:
    """442 rows, 10 float features, ``target`` (disease progression)."""
    frame = _frame(load_diabetes(as_frame=True))
    store.write(table, frame, key="id")
    return [c for c in frame.columns if c not in ("id", "target", "split")]


def iris(store: pr.SqlDatastore, table: str) -> list[str]:
    """150 rows, 4 features, ``target`` (0, 1, 2)."""
    frame = _frame(load_iris(as_frame=True))
    store.write(table, frame, key="id")
    return [c for c in frame.columns if c not in ("id", "target", "split")]


def in_order(
    query, features: list[str], label: str | None
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The query's rows in key order, as the in-process comparison fits them."""
    frame = query.to_arrow().to_pandas().sort_values("id", kind="stable")
    return frame[features], (frame[label].to_numpy() if label else None)
