"""Feature and label columns: checked against the schema before a run, turned into tensors
inside it, and counted exactly when a batch holds NaN/inf/NULL."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import ray.data

from ..errors import ColumnNotFound, ConfigError, NonFiniteValues, NonNumericFeature

__all__ = [
    "batch_arrays",
    "check_columns",
    "check_feature_list",
    "count_non_finite",
    "non_finite_message",
]


def check_feature_list(features: Any) -> None:
    """ConfigError unless ``features`` is a non-empty list of column names (not one string)."""
    names: list[Any] = []
    if not isinstance(features, (str, bytes, Mapping)):
        try:
            names = list(features)
        except TypeError:  # a number, None, ...
            names = []
    if not names:
        raise ConfigError(f"features must be a non-empty list of column names, got {features!r}")
    bad = [f for f in names if not isinstance(f, str) or not f]
    if bad:
        raise ConfigError(f"features must be column names (non-empty strings); got {bad!r}")


def check_columns(
    schema: pa.Schema,
    features: Sequence[str],
    label: str | None,
    *,
    any_type: Collection[str] = (),
    vectors: bool = False,
) -> None:
    """Raise when a feature/label is missing or not numeric (booleans count as numbers;
    with ``vectors``, a feature may also hold lists of numbers, e.g. embeddings); the
    columns in ``any_type`` only have to exist (a pipeline encodes them)."""
    check_feature_list(features)
    names = list(schema.names)
    wanted = [*features, *([label] if label is not None else [])]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ColumnNotFound(
            f"column(s) {missing} are not in the training query; its columns are {names}"
        )
    for column in wanted:
        if column in any_type:
            continue
        kind = schema.field(column).type
        if _is_number(kind) or (vectors and column != label and _is_vector(kind)):
            continue
        role = "label" if column == label else "feature"
        binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
        hint = (
            "decode it into arrays with transform= (training) or preprocess= (training and "
            "prediction)"
            if binary and role == "feature"
            else "encode it as numbers in the query (e.g. CASE WHEN ... or a lookup table) or "
            "drop it from features"
        )
        raise NonNumericFeature(f"{role} column {column!r} has type {kind}, not a number; {hint}")


def _is_number(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    )


def _is_vector(kind: pa.DataType) -> bool:
    """A list (or fixed-size list, or nested list) of numbers, or Ray's tensor type."""
    if isinstance(kind, pa.ExtensionType):
        kind = kind.storage_type
    while (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        kind = kind.value_type
        if isinstance(kind, pa.ExtensionType):
            kind = kind.storage_type
    return _is_number(kind) and not pa.types.is_null(kind)


def batch_arrays(
    batch: Mapping[str, np.ndarray], features: Sequence[str], label: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(float32 feature matrix, label vector) from a numpy batch; raises on NaN/inf/NULL."""
    columns = [np.asarray(batch[f], dtype=np.float32) for f in features]
    x = np.stack(columns, axis=1) if columns else np.empty((0, 0), np.float32)
    y = None if label is None else np.asarray(batch[label], dtype=np.float64)
    if not np.isfinite(x).all() or (y is not None and not np.isfinite(y).all()):
        found = {
            name: int((~np.isfinite(values)).sum())
            for name, values in [*zip(features, columns, strict=True), (label, y)]
            if values is not None and name is not None
        }
        raise NonFiniteValues(non_finite_message({k: v for k, v in found.items() if v}, "a batch"))
    return x, y


def count_non_finite(dataset: ray.data.Dataset, columns: Sequence[str]) -> dict[str, int]:
    """Rows per column that are NaN, inf or NULL, over the whole dataset (one Ray Data pass)."""

    def count(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            c: [int((~np.isfinite(np.asarray(batch[c], dtype=np.float64))).sum())] for c in columns
        }

    totals = dataset.select_columns(list(columns)).map_batches(count, batch_format="numpy")
    sums: dict[str, int] = dict.fromkeys(columns, 0)
    for row in totals.iter_rows():
        for c in columns:
            sums[c] += int(row[c])
    return {c: n for c, n in sums.items() if n}


def non_finite_message(counts: Mapping[str, int], where: str) -> str:
    """One line naming each column with NaN/inf/NULL and how many rows, and what to do."""
    parts = ", ".join(f"{c!r}: {n} row(s)" for c, n in counts.items())
    return (
        f"NaN, inf or NULL values in {where} ({parts}); filter them out in the query "
        "(e.g. where=... or a SQL WHERE col IS NOT NULL) or fill them before training"
    )
