"""The torch flavor: the checkpoint file layout, and loading a registered model to predict.

A torch checkpoint folder holds ``model.safetensors`` (the unwrapped module's state_dict),
``optimizer.safetensors`` + ``state.json`` (optimizer structure and an ``extra`` dict) when
written for resume, and, for a registered model, ``pinnacle.json``: ``{"framework":
"torch", "features": [...], "label": ..., "objective": ..., "architecture": {...}}``.
Nothing is pickled: the architecture is rebuilt from code (see ``torch_architecture``).

Example::

    model = store.models.load("mlp", handle="best")     # a TorchModel
    model.predict(frame)                                # numpy array, one value per row
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import (
    ColumnNotFound,
    ConfigError,
    IncompatibleCheckpoint,
    UnsafeArtifact,
)
from .code_refs import resolve
from .flavors import META_FILE
from .safety import pickle_files, refuse_pickle
from .torch_architecture import build_module, describe_architecture, unwrap
from .torch_inputs import call_model, model_inputs
from .trust import TrustedModules, check_trusted, trusted_module_names

__all__ = [
    "META_FILE",
    "MODEL_FILE",
    "OPTIMIZER_TENSORS",
    "STATE_FILE",
    "TorchModel",
    "build_module",
    "check_compatible",
    "describe_architecture",
    "load_model",
    "model_meta",
    "save_model",
]

MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
STATE_FILE = "state.json"

CLASSIFICATION = ("bce", "cross_entropy")
_SHOWN_MISMATCHES = 5


class TorchModel:
    """A loaded torch model that predicts on rows: pandas, Arrow, or a dict of numpy arrays.

    Example::

        model = store.models.load("house-mlp")
        model.predict(pandas_frame)          # float array (regression) or class indices
        model.predict_proba(arrow_table)     # class probabilities (bce, cross_entropy)
        model.module, model.features, model.label, model.meta

    A model trained with ``preprocess=``/``postprocess=`` runs them around the call here
    too (imported by the path its version stores), and is called as its ``signature``
    says: it predicts from raw rows exactly as training saw them.
    """

    def __init__(
        self, module: nn.Module, meta: dict[str, Any], trusted_modules: Sequence[str] = ()
    ) -> None:
        self.module = module.eval()
        self.meta = meta
        features = meta.get("features")
        self.features: list[str] | None = list(features) if features else None
        self.label: str | None = meta.get("label")
        self.objective: str | None = meta.get("objective")
        self.signature: str = meta.get("signature") or "singleton"
        self.preprocess = _stored_function(meta, "preprocess", trusted_modules)
        self.postprocess = _stored_function(meta, "postprocess", trusted_modules)

    def __repr__(self) -> str:
        return (
            f"TorchModel({type(self.module).__name__}, features={self.features}, "
            f"label={self.label!r}, objective={self.objective!r})"
        )

    def predict(self, batch: Any) -> np.ndarray:
        """Predictions for the rows of ``batch``: values (1-D for one output) or class indices;
        with a stored ``postprocess``, what it returns for the model's outputs."""
        out = self._forward(batch)
        if self.postprocess is not None:
            return np.asarray(self.postprocess(_squeeze(out).numpy()))
        if self.objective == "cross_entropy":
            return out.argmax(dim=-1).numpy()
        if self.objective == "bce":
            return (_squeeze(out) > 0).to(torch.int64).numpy()  # logit > 0 <=> p > 0.5
        return _squeeze(out).numpy()

    def predict_proba(self, batch: Any) -> np.ndarray:
        """Class probabilities per row (``[1-p, p]`` for a single-logit ``bce`` model)."""
        if self.objective not in CLASSIFICATION:
            raise ConfigError(
                f"predict_proba is for classification models (objective {CLASSIFICATION}); "
                f"this model's objective is {self.objective!r}. Use predict()"
            )
        out = self._forward(batch)
        if self.objective == "cross_entropy":
            return torch.softmax(out, dim=-1).numpy()
        p = torch.sigmoid(_squeeze(out))
        return torch.stack([1 - p, p], dim=-1).numpy() if p.dim() == 1 else p.numpy()

    def _forward(self, batch: Any) -> torch.Tensor:
        param = next(self.module.parameters(), None)

        def tensor(array: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(array))
            if param is not None:  # the rows go where the weights are (a GPU: device="cuda")
                x = x.to(device=param.device, dtype=param.dtype)
            return x

        inputs = self._inputs(batch)
        if isinstance(inputs, dict):
            inputs = {k: tensor(v) for k, v in inputs.items()}
        elif isinstance(inputs, tuple):
            inputs = tuple(tensor(v) for v in inputs)
        else:
            inputs = tensor(inputs)
        with torch.inference_mode():
            return call_model(self.module, inputs, self.signature).detach().cpu().float()

    def _inputs(self, batch: Any) -> Any:
        if isinstance(batch, (np.ndarray, torch.Tensor)) and self.signature == "singleton":
            array = batch.numpy() if isinstance(batch, torch.Tensor) else batch
            return np.ascontiguousarray(np.atleast_2d(array), dtype=np.float32)
        if self.preprocess is not None:
            # The raw rows, every column, as training's preprocess saw them (numpy).
            names = _column_names(batch)
            rows = self.preprocess({n: _raw_column(batch, n) for n in names})
            return model_inputs(rows, self.features or [], self.signature, check_finite=False)
        if self.features is None:
            raise ConfigError(
                "this model was registered without feature names (a custom training loop); "
                "pass a 2-D numpy array with the columns in the order the model expects"
            )
        names = _column_names(batch)
        missing = [f for f in self.features if f not in names]
        if missing:
            raise ColumnNotFound(
                f"the batch has no column(s) {missing}, which the model needs; its columns "
                f"are {names[:30]}. The model was trained on features {self.features}"
            )
        # As the training loop shapes them (registry/torch_inputs.py), NaN passed through.
        columns = {name: _column(batch, name) for name in self.features}
        return model_inputs(columns, self.features, self.signature, check_finite=False)


def _stored_function(
    meta: dict[str, Any], what: str, trusted_modules: Sequence[str]
) -> Callable[..., Any] | None:
    """The function the version stores under ``what`` by import path (None without one),
    imported only from a module the loading user trusts."""
    path = meta.get(what)
    if not path:
        return None
    check_trusted(str(path), trusted_modules)
    return resolve(str(path), what)


def _raw_column(batch: Any, name: str) -> np.ndarray:
    """Column ``name`` as numpy, values as they are (bytes stay bytes, lists arrays)."""
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return batch.column(name).to_numpy(zero_copy_only=False)
    if isinstance(batch, Mapping):
        return np.asarray(batch[name]) if not isinstance(batch[name], np.ndarray) else batch[name]
    return batch[name].to_numpy()


def load_model(
    model_dir: str | Path,
    *,
    weights_dir: str | Path | None = None,
    model: nn.Module | None = None,
    allow_pickle: bool = False,
    device: str | None = None,
    trusted_modules: TrustedModules = None,
) -> TorchModel:
    """The model in ``model_dir`` (weights from ``weights_dir`` when given), ready to predict.

    ``device`` (e.g. ``"cuda"``) is where the module predicts; rows are moved there and the
    predictions come back as numpy arrays. Default: CPU.

    The architecture is rebuilt from ``pinnacle.json``; pass ``model=`` (an instance, used as
    a template and copied) when it cannot be, e.g. for a class defined in a script. Weights
    saved with ``torch.save`` (``.pt``/``.pth``/``.bin``) instead of safetensors load only
    with ``allow_pickle=True``, and then only as tensors (``torch.load(weights_only=True)``).

    A class that is not a standard ``torch.nn`` layer is imported only from a module you
    trust: ``trusted_modules=`` (names, the class or its module) or the
    ``PINNACLE_RAY_TRUSTED_MODULES`` environment variable; otherwise ``UnsafeArtifact``
    before anything is imported.
    """
    meta = read_meta(model_dir)
    trusted = trusted_module_names(trusted_modules)
    if model is not None:
        module = copy.deepcopy(unwrap(model))
    elif meta.get("architecture"):
        module = build_module(meta["architecture"], trusted)
    else:
        raise ConfigError(
            f"{model_dir} records no architecture (the model was trained by a custom loop "
            "without model=); pass model=<an instance of the module> to load()"
        )
    path = Path(weights_dir or model_dir) / MODEL_FILE
    if not path.is_file() and (pickled := _torch_files(path.parent)):
        source = path.parent / pickled[0]
        state = _load_pickled_weights(source, allow_pickle)
        _check_shapes({k: tuple(v.shape) for k, v in state.items()}, module, source)
        module.load_state_dict(state, strict=True)
        return TorchModel(_on(module, device), meta, trusted)
    check_compatible(path, module)
    module.load_state_dict(load_file(str(path)), strict=True)
    return TorchModel(_on(module, device), meta, trusted)


def _on(module: nn.Module, device: str | None) -> nn.Module:
    """``module`` moved to ``device`` (left where it is for None)."""
    return module if device is None else module.to(torch.device(device))


def _torch_files(folder: Path) -> list[str]:
    return [n for n in pickle_files(folder) if n.endswith((".pt", ".pth", ".bin", ".ckpt"))]


def _load_pickled_weights(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """A state_dict saved with ``torch.save``: tensors only, never arbitrary objects."""
    if not allow_pickle:
        raise refuse_pickle(path, "a torch.save (pickle) file")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        raise UnsafeArtifact(
            f"refusing to load {path}: it holds more than tensors ({str(exc).splitlines()[0]}"
            "); pinnacle_ray reads torch.save files only with weights_only=True. Save the "
            "module's state_dict with safetensors instead"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise IncompatibleCheckpoint(
            f"{path} does not hold a state_dict (names -> tensors); save "
            "module.state_dict() (with safetensors) to load it"
        )
    return dict(state)


def check_compatible(weights_path: str | Path, module: nn.Module) -> None:
    """Raise ``IncompatibleCheckpoint`` listing the first mismatches if the weights in
    ``weights_path`` (safetensors) do not fit ``module`` by names and shapes."""
    path = Path(weights_path)
    if not path.is_file():
        raise IncompatibleCheckpoint(
            f"{path} does not exist; the checkpoint holds no {MODEL_FILE} (not a torch "
            "checkpoint written by pr.report / pr.save_state)"
        )
    with safe_open(str(path), framework="pt") as f:
        stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    _check_shapes(stored, module, path)


def _check_shapes(stored: dict[str, tuple[int, ...]], module: nn.Module, path: Path) -> None:
    wanted = {k: tuple(v.shape) for k, v in unwrap(module).state_dict().items()}
    missing = sorted(set(wanted) - set(stored))
    unexpected = sorted(set(stored) - set(wanted))
    shapes = [
        f"{k}: stored {list(stored[k])} vs model {list(wanted[k])}"
        for k in sorted(set(stored) & set(wanted))
        if stored[k] != wanted[k]
    ]
    problems = [
        f"{label} {items[:_SHOWN_MISMATCHES]}{' ...' if len(items) > _SHOWN_MISMATCHES else ''}"
        for label, items in (
            ("shape mismatches", shapes),
            ("missing in the checkpoint", missing),
            ("not in the model", unexpected),
        )
        if items
    ]
    if problems:
        raise IncompatibleCheckpoint(
            f"the weights in {path} do not fit {type(unwrap(module)).__name__}: "
            f"{'; '.join(problems)}. Load them into the architecture they were saved from"
        )


def model_meta(
    module: nn.Module,
    *,
    features: list[str] | None = None,
    label: str | None = None,
    objective: str | None = None,
) -> dict[str, Any]:
    """The ``pinnacle.json`` content for ``module`` (features, label, objective, architecture)."""
    return {
        "framework": "torch",
        "features": list(features) if features else None,
        "label": label,
        "objective": objective,
        "architecture": describe_architecture(module),
    }


def save_model(
    directory: str | Path,
    module: nn.Module,
    *,
    features: list[str] | None = None,
    label: str | None = None,
    objective: str | None = None,
) -> Path:
    """Write ``module``'s weights and meta into ``directory``, ready for ``register``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in unwrap(module).state_dict().items()}
    save_file(weights, str(directory / MODEL_FILE))
    meta = model_meta(module, features=features, label=label, objective=objective)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """The model meta in ``model_dir/pinnacle.json`` (empty when absent)."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    return meta if isinstance(meta, dict) else {}


def _squeeze(out: torch.Tensor) -> torch.Tensor:
    return out.squeeze(-1) if out.dim() > 1 and out.shape[-1] == 1 else out


def _column_names(batch: Any) -> list[str]:
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return list(batch.column_names)
    if isinstance(batch, Mapping):
        return [str(k) for k in batch]
    columns = getattr(batch, "columns", None)  # pandas DataFrame
    if columns is not None:
        return [str(c) for c in columns]
    raise ConfigError(
        f"cannot predict on a {type(batch).__name__}; pass a pandas DataFrame, a pyarrow "
        "Table, a dict of numpy arrays or a 2-D numpy array"
    )


def _column(batch: Any, name: str) -> Any:
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return batch.column(name).to_numpy(zero_copy_only=False)
    if isinstance(batch, Mapping):
        return batch[name]
    series = batch[name]
    try:  # nullable pandas dtypes hold pd.NA, which numpy cannot cast
        return series.to_numpy(dtype=np.float32, na_value=np.nan)
    except (TypeError, ValueError):
        return series.to_numpy()
