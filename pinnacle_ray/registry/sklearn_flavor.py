"""The scikit-learn flavor: estimators saved with skops, loaded back without running code.

A registered folder holds ``model.skops`` and ``pinnacle.json`` (features, label, kind,
classes, the estimator's parameters and the types it needs). skops refuses to load a type
nobody trusted; the types trusted at load are those the trainer saved (recorded in the
checksummed ``pinnacle.json``), so a swapped artifact cannot smuggle code in, and only when
they are scikit-learn/numpy/scipy classes or numeric functions unless ``allow_pickle=True``
(which also loads a pickled ``model.joblib`` / ``model.pkl``).

Example::

    model = store.models.load("house-price")      # a SklearnModel
    model.predict(frame)                          # one value or class per row
    model.predict_proba(frame)                    # classifiers that have it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._internal.extras import needs_extra
from ..errors import ColumnNotFound, ConfigError, IncompatibleCheckpoint, UnsafeArtifact
from .flavors import META_FILE
from .safety import HOW, pickle_files, refuse_pickle, unsafe_skops_types

__all__ = ["MODEL_FILE", "SklearnModel", "load_model", "save_model", "serialize", "to_frame"]

MODEL_FILE = "model.skops"


class SklearnModel:
    """A loaded scikit-learn estimator that predicts on rows (pandas, Arrow, dict of arrays).

    ``estimator`` is the fitted object itself; ``features``, ``label``, ``classes`` and
    ``meta`` say what it was trained on.
    """

    def __init__(self, estimator: Any, meta: dict[str, Any]) -> None:
        self.estimator = estimator
        self.meta = meta
        self.features: list[str] = list(meta.get("features") or [])
        self.label: str | None = meta.get("label")
        classes = getattr(estimator, "classes_", None)
        self.classes: list[Any] | None = None if classes is None else list(classes)

    def __repr__(self) -> str:
        return (
            f"SklearnModel({type(self.estimator).__name__}, features={self.features}, "
            f"label={self.label!r})"
        )

    def predict(self, batch: Any) -> np.ndarray:
        """One prediction per row: a value, a class (as trained, strings too) or a cluster."""
        return np.asarray(self.estimator.predict(self._inputs(batch)))

    def predict_proba(self, batch: Any) -> np.ndarray:
        """Class probabilities per row, columns in the order of ``classes``."""
        if not hasattr(self.estimator, "predict_proba"):
            raise ConfigError(
                f"{type(self.estimator).__name__} has no predict_proba (e.g. SVC without "
                "probability=True, or a regressor); use predict()"
            )
        return np.asarray(self.estimator.predict_proba(self._inputs(batch)))

    def transform(self, batch: Any) -> Any:
        """The fitted transformer's output for the rows (PCA, scalers, encoders, ...)."""
        if not hasattr(self.estimator, "transform"):
            raise ConfigError(f"{type(self.estimator).__name__} has no transform()")
        return self.estimator.transform(self._inputs(batch))

    def _inputs(self, batch: Any) -> Any:
        if isinstance(batch, np.ndarray):
            return np.atleast_2d(batch)
        return to_frame(batch, self.features)


def to_frame(batch: Any, features: list[str]) -> pd.DataFrame:
    """The ``features`` columns of ``batch`` (pandas, Arrow, dict of arrays) as a DataFrame,
    in training order: a pipeline selects its columns by these names."""
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        names = list(batch.column_names)
    elif isinstance(batch, pd.DataFrame):
        names = [str(c) for c in batch.columns]
    elif isinstance(batch, dict):
        names = [str(k) for k in batch]
    else:
        raise ConfigError(
            f"cannot predict on a {type(batch).__name__}; pass a pandas DataFrame, a pyarrow "
            "Table, a dict of numpy arrays or a 2-D numpy array"
        )
    missing = [f for f in features if f not in names]
    if missing:
        raise ColumnNotFound(
            f"the batch has no column(s) {missing}, which the model needs; its columns are "
            f"{names[:30]}. The model was trained on features {features}"
        )
    if isinstance(batch, pd.DataFrame):
        return batch[features]
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return batch.select(features).to_pandas()
    return pd.DataFrame({f: np.asarray(batch[f]) for f in features})


def serialize(estimator: Any) -> tuple[bytes, list[str]]:
    """``estimator`` as skops bytes, and the types loading them needs.

    Importing ``skops.io`` costs seconds in a process that has imported much (it scans
    every loaded module for scikit-learn's types), so a fit serializes in its task, whose
    pooled worker pays that once, and not in each sweep trial's fresh process."""
    with needs_extra("sklearn", "a scikit-learn model"):
        import skops.io as sio

    data = sio.dumps(estimator)
    return data, sio.get_untrusted_types(data=data)


def save_model(
    directory: str | Path,
    estimator: Any,
    meta: dict[str, Any],
    serialized: tuple[bytes, list[str]] | None = None,
) -> dict[str, Any]:
    """Write ``estimator`` (skops) and ``meta`` plus the types loading needs into
    ``directory``; the meta as written. ``serialized``: what :func:`serialize` gave for
    this estimator already (the folder then gets exactly those bytes)."""
    data, types = serialized if serialized is not None else serialize(estimator)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(data)
    meta = {**meta, "framework": "sklearn", "trusted_types": types}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def load_model(
    model_dir: str | Path, *, weights_dir: str | Path | None = None, allow_pickle: bool = False
) -> SklearnModel:
    """The estimator in ``model_dir`` (or the checkpoint ``weights_dir``), ready to predict.

    ``model.skops`` loads when every type it needs was recorded at registration and is a
    scikit-learn/numpy/scipy class or a numeric function; other types, or a ``model.pkl`` /
    ``model.joblib`` instead, need ``allow_pickle=True`` (``UnsafeArtifact`` otherwise)."""
    with needs_extra("sklearn", "a scikit-learn model"):
        import skops.io as sio

    meta = _read_meta(Path(model_dir))
    folder = Path(weights_dir or model_dir)
    path = folder / MODEL_FILE
    if not path.is_file():
        return SklearnModel(_load_pickled(folder, allow_pickle), meta)
    trusted = list(meta.get("trusted_types") or [])
    needed = sio.get_untrusted_types(file=path)
    unexpected = sorted(set(needed) - set(trusted))
    if unexpected and not allow_pickle:
        raise IncompatibleCheckpoint(
            f"{path} needs types that were not in the model when it was registered: "
            f"{unexpected[:5]}; refusing to load it (it may have been tampered with). Pass "
            "allow_pickle=True only if you trust the file"
        )
    unsafe = unsafe_skops_types(needed)
    if unsafe and not allow_pickle:
        raise UnsafeArtifact(
            f"refusing to load {path}: it needs types outside scikit-learn, numpy and scipy "
            f"classes and numeric functions, which could run code when loaded or used: "
            f"{unsafe[:5]}. {HOW}"
        )
    return SklearnModel(sio.load(path, trusted=needed), meta)


def _load_pickled(folder: Path, allow_pickle: bool) -> Any:
    """The estimator pickled (joblib) in ``folder``, only when the user allows pickles."""
    found = [n for n in pickle_files(folder) if n.endswith((".pkl", ".pickle", ".joblib"))]
    if not found:
        raise IncompatibleCheckpoint(
            f"{folder / MODEL_FILE} does not exist: not a scikit-learn checkpoint"
        )
    path = folder / ("model.joblib" if "model.joblib" in found else found[0])
    if not allow_pickle:
        raise refuse_pickle(path, "a pickled (joblib) estimator")
    with needs_extra("sklearn", "a pickled scikit-learn model"):
        import joblib

    return joblib.load(path)


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    meta = json.loads(path.read_text()) if path.is_file() else {}
    return meta if isinstance(meta, dict) else {}
