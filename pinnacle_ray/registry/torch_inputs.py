"""Rows -> what a torch model is called with, the same in training and in prediction.

``signature`` says how the model is called, with SuperDuperDB's values:

- ``"singleton"`` (default): ``model(x)``, one float32 tensor. One feature: its values as
  they are (a scalar column becomes ``(rows, 1)``, an image column ``(rows, H, W)``);
  several: each flattened per row and concatenated into ``(rows, width)``.
- ``"*args"``: ``model(a, b, ...)``, one float32 tensor per feature in ``features`` order
  (a scalar column ``(rows, 1)``, a vector column ``(rows, dim)``, cells keep their shape).
- ``"**kwargs"``: ``model(a=..., b=...)``, the same tensors by feature name.

Vector cells (list/fixed-size-list columns such as embeddings, or the arrays a transform
makes) are stacked; bytes and strings must be turned into numbers first (``transform=`` or
``preprocess=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ColumnNotFound, ConfigError, NonFiniteValues, NonNumericFeature

__all__ = ["SIGNATURES", "call_model", "check_signature", "feature_array", "model_inputs"]

SIGNATURES = ("singleton", "*args", "**kwargs")

Inputs = Any  # an array, a tuple of arrays or a dict of arrays (tensors on the worker)


def check_signature(signature: Any) -> str:
    """``signature`` if it is one of :data:`SIGNATURES`, else ConfigError listing them."""
    if signature not in SIGNATURES:
        raise ConfigError(
            f"signature={signature!r} is not known; use one of {list(SIGNATURES)}: one tensor, "
            "one positional tensor per feature, or one keyword tensor per feature"
        )
    return str(signature)


def feature_array(name: str, values: Any, *, check_finite: bool = True) -> np.ndarray:
    """``values`` of feature ``name`` as float32 with the rows first; vector cells stacked.
    NonNumericFeature for bytes/strings; NonFiniteValues for NaN/inf/NULL when
    ``check_finite`` (training; a prediction passes them to the model)."""
    array = np.asarray(values)
    if array.dtype == object:
        try:
            array = np.stack([np.asarray(v, dtype=np.float32) for v in array])
        except (TypeError, ValueError):
            raise NonNumericFeature(
                f"feature {name!r} holds values that are not numbers or equal-length vectors "
                f"(e.g. bytes or text); turn them into arrays with transform= (training) or "
                "preprocess= (training and prediction)"
            ) from None
    elif array.dtype.kind not in "biuf":
        raise NonNumericFeature(
            f"feature {name!r} has dtype {array.dtype}, not numbers; turn it into arrays with "
            "transform= (training) or preprocess= (training and prediction)"
        )
    array = array.astype(np.float32, copy=False)
    if not check_finite:
        return array
    bad = int((~np.isfinite(array)).reshape(len(array), -1).any(axis=1).sum()) if array.size else 0
    if bad:
        raise NonFiniteValues(
            f"NaN, inf or NULL values in a batch ({name!r}: {bad} row(s)); filter them out in "
            "the query (e.g. where=... or a SQL WHERE col IS NOT NULL) or fill them before "
            "training"
        )
    return array


def model_inputs(
    batch: Mapping[str, Any],
    features: Sequence[str],
    signature: str = "singleton",
    *,
    check_finite: bool = True,
) -> Inputs:
    """The numpy inputs for ``signature`` from the ``features`` columns of ``batch``."""
    missing = [f for f in features if f not in batch]
    if missing:
        raise ColumnNotFound(
            f"the batch has no column(s) {missing}; its columns are {list(batch)[:30]}. "
            "features= names the columns the model is given (after transform/preprocess)"
        )
    arrays = {f: feature_array(f, batch[f], check_finite=check_finite) for f in features}
    if signature == "singleton":
        if len(arrays) == 1:
            (only,) = arrays.values()
            return only.reshape(len(only), 1) if only.ndim == 1 else np.ascontiguousarray(only)
        flat = [a.reshape(len(a), -1) for a in arrays.values()]
        return np.ascontiguousarray(np.concatenate(flat, axis=1))
    shaped = {f: a.reshape(len(a), 1) if a.ndim == 1 else a for f, a in arrays.items()}
    if signature == "*args":
        return tuple(shaped.values())
    return shaped


def call_model(model: Any, inputs: Inputs, signature: str) -> Any:
    """``model`` called with ``inputs`` as ``signature`` says (positional, keyword, or one)."""
    if signature == "*args":
        return model(*inputs)
    if signature == "**kwargs":
        return model(**inputs)
    return model(inputs)
