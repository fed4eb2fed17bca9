"""What runs inside the scikit-learn fit task: build the arrays, fit, score.

In memory, rows are sorted by the query's key first, so the fit does not depend on the
order the shards arrived in: the same query gives the same model as ``pandas.read_sql``
with ``ORDER BY key``. Incrementally, batches stream from the shards into ``partial_fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
import ray.data
from joblib import parallel_config

from ..errors import EmptyResult, NonFiniteValues, NonNumericFeature
from ..registry.sklearn_flavor import serialize, to_frame
from .features import non_finite_message
from .holdout import holdout_mask
from .sklearn_metrics import Evaluation
from .tabular import concat_table, distinct_values, label_array, require_classes

__all__ = ["FitSpec", "fit_in_memory", "fit_incremental"]


@dataclass(frozen=True)
class FitSpec:
    """Everything the fit task needs besides the estimator and the data."""

    features: list[str]
    label: str | None
    key: str | None
    kind: str
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    num_cpus: float = 1.0
    batch_size: int = 10_000
    epochs: int = 1
    valid_fraction: float | None = 0.2
    seed: int = 0
    # note("scoring") tells the driver's progress line a phase started (None: no line).
    note: Callable[[str], None] | None = None

    @property
    def columns(self) -> list[str]:
        wanted = [*self.features, self.label, self.key]
        return list(dict.fromkeys(c for c in wanted if c is not None))

    @property
    def holdout(self) -> bool:
        return self.valid_fraction is not None and self.key is not None


def fit_and_serialize(
    task: Callable[..., tuple[Any, dict[str, float]]], *args: Any
) -> tuple[Any, dict[str, float], tuple[bytes, list[str]]]:
    """Run the fit ``task`` (:func:`fit_in_memory` or :func:`fit_incremental`) and hand
    back its fitted estimator serialized as well (skops bytes and the types they need):
    serializing here keeps skops' costly import in the pooled fit worker (see
    :func:`pinnacle_ray.registry.sklearn_flavor.serialize`)."""
    estimator, metrics = task(*args)
    started = time.perf_counter()
    serialized = serialize(estimator)
    return estimator, {**metrics, "timing/serialize_s": time.perf_counter() - started}, serialized


def fit_in_memory(
    estimator: Any,
    train: list[ray.ObjectRef],
    valid: list[ray.ObjectRef] | None,
    spec: FitSpec,
) -> tuple[Any, dict[str, float]]:
    """Fit ``estimator`` on all of ``train`` (a read dataset's Arrow block refs) at once;
    (fitted estimator, metrics). The blocks are read already: this task needs no other."""
    started = time.perf_counter()
    table = _in_key_order(concat_table(train, spec.columns, spec.key), spec.key)
    valid_table = concat_table(valid, spec.columns) if valid is not None else None
    if valid_table is None and spec.holdout:
        table, valid_table = _split(table, spec)
    x, y = _xy(table, spec, "the training rows")
    if spec.kind == "classifier":
        require_classes(np.unique(y), spec.label or "", "the training rows")
    arrays_done = time.perf_counter()
    _call(estimator.fit, x, y, spec)
    fit_done = time.perf_counter()
    if spec.note is not None:
        spec.note("scoring")
    if valid_table is not None:
        evaluation = Evaluation(estimator, "valid")
        x_valid, y_valid = _xy(valid_table, spec, "the validation rows")
    else:
        evaluation = Evaluation(estimator, "train")
        x_valid, y_valid = x, y
    with parallel_config(n_jobs=max(1, int(spec.num_cpus))):
        evaluation.add(x_valid, y_valid)
        evaluation.set_score(x_valid, y_valid)
    timing = {
        "timing/arrays_s": arrays_done - started,
        "timing/fit_s": fit_done - arrays_done,
        "timing/score_s": time.perf_counter() - fit_done,
    }
    return estimator, {**evaluation.metrics(), "train/rows": float(len(x)), **timing}


def _in_key_order(table: pa.Table, key: str | None) -> pa.Table:
    """``table`` sorted by ``key`` (so the fit does not depend on shard arrival order);
    shards are key ranges, so this is usually a check, not a sort."""
    if key is None or table.column(key).null_count:
        return table
    keys = table.column(key).to_numpy()
    if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():
        return table.sort_by(key)
    return table


def fit_incremental(
    estimator: Any,
    train: ray.data.Dataset,
    valid: ray.data.Dataset | None,
    spec: FitSpec,
) -> tuple[Any, dict[str, float]]:
    """Stream ``train`` into ``estimator.partial_fit`` for ``spec.epochs`` passes, holding one
    batch at a time; (fitted estimator, metrics)."""
    kwargs = dict(spec.fit_kwargs)
    if spec.kind == "classifier" and "classes" not in kwargs:
        known = getattr(estimator, "classes_", None)  # a resumed model keeps its classes
        classes = list(known) if known is not None else distinct_values(train, spec.label or "")
        require_classes(classes, spec.label or "", "the training query")
        kwargs["classes"] = np.asarray(classes)
    rows = batches = 0
    for _ in range(spec.epochs):
        for table in _batches(train, spec, held=False if spec.holdout and valid is None else None):
            x, y = _xy(table, spec, "a training batch")
            _call(estimator.partial_fit, x, y, spec, kwargs)
            rows += len(x)
            batches += 1
    if rows == 0:
        raise EmptyResult("no training rows reached partial_fit (the query or split is empty)")
    if spec.note is not None:
        spec.note("scoring")
    if valid is not None:
        evaluation, source, held = Evaluation(estimator, "valid"), valid, None
    elif spec.holdout:
        evaluation, source, held = Evaluation(estimator, "valid"), train, True
    else:
        evaluation, source, held = Evaluation(estimator, "train"), train, None
    for table in _batches(source, spec, held=held):
        x, y = _xy(table, spec, "a validation batch")
        evaluation.add(x, y)
    metrics = evaluation.metrics()
    metrics.update({"train/rows": float(rows // spec.epochs), "train/batches": float(batches)})
    return estimator, metrics


def _batches(dataset: ray.data.Dataset, spec: FitSpec, held: bool | None) -> Iterator[pa.Table]:
    """Arrow batches of ``spec.batch_size`` rows; with ``held``, only the held-out (True) or
    the training (False) rows of the key-hash split."""
    for table in dataset.iter_batches(batch_size=spec.batch_size, batch_format="pyarrow"):
        if held is not None:
            mask = holdout_mask(table.column(spec.key).to_numpy(), spec.valid_fraction, spec.seed)
            table = table.filter(pa.array(mask if held else ~mask))
        if table.num_rows:
            yield table


def _split(table: pa.Table, spec: FitSpec) -> tuple[pa.Table, pa.Table]:
    assert spec.key is not None and spec.valid_fraction is not None
    mask = holdout_mask(table.column(spec.key).to_numpy(), spec.valid_fraction, spec.seed)
    held, kept = table.filter(pa.array(mask)), table.filter(pa.array(~mask))
    if held.num_rows == 0 or kept.num_rows == 0:
        raise EmptyResult(
            f"the {spec.valid_fraction:.0%} validation split by key {spec.key!r} leaves "
            f"{held.num_rows} validation and {kept.num_rows} training rows (too few rows); "
            "pass valid=<query>, another valid_fraction, or valid_fraction=None"
        )
    return kept, held


def _xy(table: pa.Table, spec: FitSpec, where: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    x = to_frame(table, spec.features)
    y = label_array(table, spec.label, where) if spec.label is not None else None
    return x, y


def _call(
    method: Any,
    x: pd.DataFrame,
    y: np.ndarray | None,
    spec: FitSpec,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """``method(x, y, **kwargs)`` with joblib on the task's CPUs, and scikit-learn's input
    errors turned into ours (with the columns and counts)."""
    kwargs = spec.fit_kwargs if kwargs is None else kwargs
    args = (x,) if y is None else (x, y)
    try:
        with parallel_config(n_jobs=max(1, int(spec.num_cpus))):
            method(*args, **kwargs)
    except ValueError as exc:
        text = str(exc)
        if "NaN" in text or "infinity" in text:
            counts = {c: int(n) for c, n in x.isna().sum().items() if n}
            raise NonFiniteValues(
                non_finite_message(counts or {"features": 0}, "the training rows")
                + ", or put a SimpleImputer in the pipeline, or use an estimator that accepts "
                "missing values (HistGradientBoosting*)"
            ) from exc
        if "could not convert string" in text or "dtype='numeric'" in text:
            raise NonNumericFeature(
                f"{text.splitlines()[0]}: a feature holds text the estimator cannot use; "
                "encode it in the pipeline (OneHotEncoder, OrdinalEncoder) or drop it"
            ) from exc
        raise
