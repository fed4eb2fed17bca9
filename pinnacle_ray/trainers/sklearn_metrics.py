"""Validation metrics for a fitted estimator, by what it is: accuracy/F1/ROC-AUC for
classifiers, RMSE/MAE/R² for regressors, silhouette for clusterers, plus ``score``.

Predictions are gathered batch by batch (:class:`Evaluation`), so a model trained
incrementally is scored without holding its validation rows in memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.base import is_classifier, is_regressor

__all__ = ["Evaluation", "estimator_kind"]

SILHOUETTE_SAMPLE = 2_000


def estimator_kind(estimator: Any) -> str:
    """``classifier``, ``regressor``, ``clusterer`` or ``transformer`` (pipelines by their
    last step)."""
    if is_classifier(estimator):
        return "classifier"
    if is_regressor(estimator):
        return "regressor"
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if getattr(last, "_estimator_type", None) == "clusterer" or hasattr(last, "fit_predict"):
        return "clusterer"
    return "transformer"


class Evaluation:
    """Predictions of one estimator on validation batches, turned into metrics at the end."""

    def __init__(self, estimator: Any, prefix: str = "valid") -> None:
        self.estimator = estimator
        self.kind = estimator_kind(estimator)
        self.prefix = prefix
        self._truth: list[np.ndarray] = []
        self._predicted: list[np.ndarray] = []
        self._proba: list[np.ndarray] = []
        self._sample: list[Any] = []
        self._score: float | None = None
        self.rows = 0

    def add(self, x: Any, y: np.ndarray | None) -> None:
        """Predict on one batch and keep what the metrics need (not the batch itself)."""
        self.rows += len(x)
        if self.kind in ("classifier", "regressor"):
            self._truth.append(np.asarray(y))
            self._predicted.append(np.asarray(self.estimator.predict(x)))
            if self.kind == "classifier" and hasattr(self.estimator, "predict_proba"):
                self._proba.append(np.asarray(self.estimator.predict_proba(x)))
        elif self.kind == "clusterer" and hasattr(self.estimator, "predict"):
            take = max(0, SILHOUETTE_SAMPLE - sum(len(s[1]) for s in self._sample))
            if take:
                part = x[:take]
                self._sample.append((part, np.asarray(self.estimator.predict(part))))

    def set_score(self, x: Any, y: np.ndarray | None) -> None:
        """``estimator.score`` on the whole validation set (when it is in memory)."""
        if hasattr(self.estimator, "score"):
            try:
                value = self.estimator.score(x, y) if y is not None else self.estimator.score(x)
            except (TypeError, ValueError, AttributeError, NotImplementedError):
                return
            self._score = float(value)

    def metrics(self) -> dict[str, float]:
        """The metrics named ``<prefix>/<metric>`` (NaN-free; undefined ones are left out)."""
        out: dict[str, float] = {}
        if self.kind == "classifier" and self._truth:
            out.update(_classification(self._truth, self._predicted, self._proba, self.estimator))
        elif self.kind == "regressor" and self._truth:
            out.update(_regression(np.concatenate(self._truth), np.concatenate(self._predicted)))
        elif self.kind == "clusterer" and self._sample:
            out.update(_clustering(self._sample))
        if self._score is not None:
            out["score"] = self._score
        out = {k: v for k, v in out.items() if math.isfinite(v)}
        out["rows"] = float(self.rows)
        return {f"{self.prefix}/{k}": v for k, v in out.items()}


def _classification(
    truth: list[np.ndarray], predicted: list[np.ndarray], proba: list[np.ndarray], est: Any
) -> dict[str, float]:
    y, p = np.concatenate(truth), np.concatenate(predicted)
    classes = list(getattr(est, "classes_", np.unique(y)))
    binary = len(classes) == 2
    out = {
        "accuracy": float(skm.accuracy_score(y, p)),
        "f1": float(
            skm.f1_score(y, p, average="binary" if binary else "macro", pos_label=classes[-1])
            if binary
            else skm.f1_score(y, p, average="macro")
        ),
    }
    if proba and len(np.unique(y)) > 1:
        scores = np.concatenate(proba)
        try:
            if binary:
                out["roc_auc"] = float(skm.roc_auc_score(y == classes[-1], scores[:, 1]))
            else:
                out["roc_auc"] = float(
                    skm.roc_auc_score(y, scores, multi_class="ovr", labels=classes)
                )
        except ValueError:  # a class missing from the validation rows
            pass
    return out


def _regression(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y, p = y.astype(np.float64), p.astype(np.float64)
    out = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, p))),
        "mae": float(skm.mean_absolute_error(y, p)),
    }
    if len(y) > 1:
        out["r2"] = float(skm.r2_score(y, p))
    return out


def _clustering(sample: list[tuple[Any, np.ndarray]]) -> dict[str, float]:
    import pandas as pd

    parts = [s[0] for s in sample]
    x = pd.concat(parts) if isinstance(parts[0], pd.DataFrame) else np.concatenate(parts)
    labels = np.concatenate([s[1] for s in sample])
    if not 1 < len(np.unique(labels)) < len(labels):
        return {}
    try:
        return {"silhouette": float(skm.silhouette_score(np.asarray(x, dtype=float), labels))}
    except (TypeError, ValueError):  # non-numeric raw columns: a pipeline encodes them
        return {}
