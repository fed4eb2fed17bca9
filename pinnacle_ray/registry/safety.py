"""What a flavor may load without the user's say-so: formats that cannot run code.

safetensors, XGBoost JSON/UBJ, JSON configs and skops files whose types are all trusted
load by default. A pickle-based file (``.pkl``, ``.joblib``, ``.bin``, ``.pt``, ...) can run
any code while it is read, so it is loaded only with ``allow_pickle=True``, and torch files
even then only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import UnsafeArtifact

__all__ = ["PICKLE_SUFFIXES", "pickle_files", "refuse_pickle", "unsafe_skops_types"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt")
HOW = (
    "If you trust where this file came from, pass allow_pickle=True (store.models.load(..., "
    "allow_pickle=True), pr.predict(..., allow_pickle=True), pinnacle-ray predict "
    "--allow-pickle); better, save the model again in a safe format (safetensors, XGBoost "
    "UBJ/JSON, skops, save_pretrained with safetensors)"
)
# Modules whose classes, ufuncs and numeric functions a scikit-learn model is made of.
_SAFE_MODULES = ("sklearn", "numpy", "scipy")
_SAFE_FUNCTION_MODULES = ("math", "cmath")


def pickle_files(directory: str | os.PathLike[str]) -> list[str]:
    """Names of the pickle-based files directly in ``directory``, sorted."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)


def refuse_pickle(path: str | os.PathLike[str], what: str) -> UnsafeArtifact:
    """The error for loading pickle-based ``path`` (``what`` names the format) unasked."""
    return UnsafeArtifact(
        f"refusing to load {os.fspath(path)}: it is {what}, a pickle-based format that can run "
        f"any code while it is loaded. {HOW}"
    )


def unsafe_skops_types(types: Iterable[str]) -> list[str]:
    """The types among ``types`` (skops' untrusted ones, as ``module.name``) that are not
    classes, ufuncs or numeric functions of scikit-learn, numpy, scipy or ``math``."""
    return sorted(t for t in types if not _safe_type(t))


def _safe_type(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    root = module.split(".", 1)[0]
    if root in _SAFE_FUNCTION_MODULES and module == root and not name.startswith("_"):
        return True
    if root not in _SAFE_MODULES or not name or name.startswith("_"):
        return False
    try:  # only modules of the packages named above are imported
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    import numpy as np

    # A class is rebuilt from its state; a ufunc computes on numbers. A plain function of
    # these packages could be called with stored arguments (numpy.load, ...): not trusted.
    return isinstance(value, (type, np.ufunc))
