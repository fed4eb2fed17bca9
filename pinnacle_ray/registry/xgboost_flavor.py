"""The XGBoost flavor: boosters in XGBoost's own UBJSON format, loaded to predict on rows.

A registered folder holds ``model.ubj`` (the name Ray's ``RayTrainReportCallback`` writes)
and ``pinnacle.json``: features, label, objective and, for categorical features, the
category list each was trained with (so a value maps to the same code at prediction).

Example::

    model = store.models.load("house-xgb")      # an XGBoostModel
    model.predict(frame)                        # values, or classes for classifiers
    model.predict_proba(frame)                  # binary:* and multi:softprob objectives
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._internal.extras import needs_extra
from ..errors import ConfigError, IncompatibleCheckpoint
from .flavors import META_FILE
from .safety import pickle_files, refuse_pickle
from .sklearn_flavor import to_frame

__all__ = ["MODEL_FILE", "XGBoostModel", "is_classification", "load_booster", "load_model"]

MODEL_FILE = "model.ubj"
JSON_FILE = "model.json"  # XGBoost's JSON format: as safe, larger


def is_classification(objective: str | None) -> bool:
    """Whether an XGBoost objective predicts classes (binary:*, multi:*)."""
    return bool(objective) and str(objective).startswith(("binary:", "multi:"))


def feature_frame(batch: Any, features: list[str], categories: dict[str, list[Any]]) -> Any:
    """The features of ``batch`` as XGBoost takes them: float32 numbers, and categorical
    columns coded with the categories seen in training (unseen values become missing)."""
    if not categories and _numeric_arrow(batch, features):
        # Column by column into one float32 matrix: no pandas frame in between (NULL: NaN).
        matrix = np.empty((batch.num_rows, len(features)), np.float32)
        for i, name in enumerate(features):
            column = pc.cast(batch.column(name), pa.float32(), safe=False)
            matrix[:, i] = column.to_numpy(zero_copy_only=False)
        return matrix
    frame = to_frame(batch, features)
    if not categories:
        return np.ascontiguousarray(frame.to_numpy(dtype=np.float32, na_value=np.nan))
    out = {}
    for name in features:
        if name in categories:
            known = frame[name].where(frame[name].isin(categories[name]))  # unseen: missing
            out[name] = pd.Categorical(known, categories=categories[name])
        else:
            out[name] = pd.to_numeric(frame[name], errors="raise").astype(np.float32)
    return pd.DataFrame(out)


def _numeric_arrow(batch: Any, features: list[str]) -> bool:
    """Whether ``batch`` is Arrow and every feature in it is a number (or all NULL)."""
    if not isinstance(batch, (pa.Table, pa.RecordBatch)):
        return False
    schema = batch.schema
    return all(
        name in schema.names
        and (
            pa.types.is_integer(kind := schema.field(name).type)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_null(kind)
        )
        for name in features
    )


class XGBoostModel:
    """A loaded XGBoost booster that predicts on rows (pandas, Arrow, dict of arrays)."""

    def __init__(self, booster: Any, meta: dict[str, Any]) -> None:
        self.booster = booster
        self.meta = meta
        self.features: list[str] = list(meta.get("features") or [])
        self.label: str | None = meta.get("label")
        self.objective: str | None = meta.get("objective")
        self.categories: dict[str, list[Any]] = dict(meta.get("categories") or {})

    def __repr__(self) -> str:
        return (
            f"XGBoostModel(objective={self.objective!r}, rounds="
            f"{self.booster.num_boosted_rounds()}, features={self.features})"
        )

    def predict(self, batch: Any) -> np.ndarray:
        """One value per row; for classification objectives, the class (0..k-1)."""
        raw = self._raw(batch)
        if self.objective in ("binary:logistic", "binary:logitraw", "binary:hinge"):
            cut = 0.0 if self.objective == "binary:logitraw" else 0.5
            return (raw > cut).astype(np.int64)
        if self.objective == "multi:softprob":
            return raw.argmax(axis=-1).astype(np.int64)
        if self.objective == "multi:softmax":
            return raw.astype(np.int64)
        return raw

    def predict_proba(self, batch: Any) -> np.ndarray:
        """Class probabilities per row (``[1-p, p]`` for ``binary:logistic``)."""
        if self.objective == "binary:logistic":
            p = self._raw(batch)
            return np.stack([1 - p, p], axis=-1)
        if self.objective == "multi:softprob":
            return self._raw(batch)
        raise ConfigError(
            f"predict_proba needs objective binary:logistic or multi:softprob; this model's is "
            f"{self.objective!r}. Use predict()"
        )

    def _raw(self, batch: Any) -> np.ndarray:
        with needs_extra("xgboost", "an XGBoost model"):
            import xgboost as xgb

        if isinstance(batch, np.ndarray):
            data = xgb.DMatrix(np.atleast_2d(batch).astype(np.float32), missing=np.nan)
        else:
            frame = feature_frame(batch, self.features, self.categories)
            data = xgb.DMatrix(
                frame,
                missing=np.nan,
                feature_names=self.features,
                enable_categorical=bool(self.categories),
            )
        return np.asarray(self.booster.predict(data))


def load_booster(directory: str | Path, *, allow_pickle: bool = False) -> Any:
    """The booster saved in ``directory``: ``model.ubj`` (or ``model.json``); a pickled
    booster (``.pkl``/``.joblib``) only with ``allow_pickle=True``."""
    with needs_extra("xgboost", "an XGBoost model"):
        import xgboost as xgb

    folder = Path(directory)
    path = next((folder / n for n in (MODEL_FILE, JSON_FILE) if (folder / n).is_file()), None)
    if path is None:
        pickled = [n for n in pickle_files(folder) if n.endswith((".pkl", ".pickle", ".joblib"))]
        if not pickled:
            raise IncompatibleCheckpoint(
                f"{folder / MODEL_FILE} does not exist: not an XGBoost checkpoint"
            )
        if not allow_pickle:
            raise refuse_pickle(folder / pickled[0], "a pickled XGBoost model")
        with needs_extra("xgboost", "a pickled XGBoost model"):
            import joblib

        loaded = joblib.load(folder / pickled[0])
        return loaded.get_booster() if hasattr(loaded, "get_booster") else loaded
    booster = xgb.Booster()
    booster.load_model(str(path))
    return booster


def load_model(
    model_dir: str | Path,
    *,
    weights_dir: str | Path | None = None,
    allow_pickle: bool = False,
    device: str | None = None,
) -> XGBoostModel:
    """The booster in ``model_dir`` (or the checkpoint ``weights_dir``), ready to predict;
    ``device`` (e.g. ``"cuda"``) is the booster's prediction device, default CPU."""
    path = Path(model_dir) / META_FILE
    meta = json.loads(path.read_text()) if path.is_file() else {}
    booster = load_booster(weights_dir or model_dir, allow_pickle=allow_pickle)
    if device is not None:
        booster.set_param({"device": device})
    return XGBoostModel(booster, meta)
