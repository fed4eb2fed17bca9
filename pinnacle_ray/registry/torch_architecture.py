"""Describe a torch module's structure as JSON and rebuild it from code, without pickle.

Three kinds of node:

- ``sequential``: an ``nn.Sequential`` (nested too), its children by name;
- ``torch.nn``: a standard layer from :data:`SAFE_LAYERS`, with constructor arguments read
  from the layer's attributes (``Linear(in_features, out_features, bias)``), rebuilt with
  no user code at all;
- ``class``: any other module, by import path ``module:qualname`` and constructor
  arguments, when they can be recovered: from ``get_config()`` (or an ``init_kwargs``
  dict), or because each ``__init__`` parameter is an attribute of the same name.

A class defined in ``__main__`` or inside a function cannot be imported elsewhere; it is
recorded as ``unavailable`` and loading it needs ``model=<an instance>`` as a template.
Rebuilding a ``class`` node imports its module, only when the loading user trusts it (see
``registry/trust.py``: checked before the import), and calls the constructor with the
stored JSON arguments; only ``nn.Module`` subclasses are accepted.
"""

from __future__ import annotations

import importlib
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import RegistryError
from .trust import check_trusted

__all__ = ["SAFE_LAYERS", "build_module", "describe_architecture", "unwrap"]

SAFE_LAYERS = frozenset(
    {
        "Linear", "Bilinear", "Identity", "Flatten", "Unflatten", "Embedding",
        "ReLU", "ReLU6", "GELU", "Tanh", "Sigmoid", "SiLU", "Mish", "LeakyReLU", "ELU",
        "SELU", "CELU", "PReLU", "Softplus", "Softsign", "Hardtanh", "Hardswish",
        "Hardsigmoid", "Tanhshrink", "LogSigmoid", "Softmax", "LogSoftmax",
        "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout",
        "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "RMSNorm",
        "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    }
)  # fmt: skip
_TUPLE = "__tuple__"
_SKIPPED_PARAMS = {"device", "dtype"}


class _Unrecoverable(Exception):
    """A constructor argument has no JSON form."""


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP/DataParallel wrapper (what the weights were saved from)."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return module.module if isinstance(module, wrappers) else module


def describe_architecture(module: nn.Module) -> dict[str, Any]:
    """A JSON description of ``module`` that :func:`build_module` rebuilds without pickle."""
    return _describe(unwrap(module))


def build_module(architecture: dict[str, Any], trusted_modules: Sequence[str] = ()) -> nn.Module:
    """A new module with the structure ``architecture`` describes (untrained weights).

    A ``class`` node's module is imported only when it is in ``trusted_modules`` (names,
    see ``trust.trusted_module_names``); otherwise ``UnsafeArtifact``, before any import."""
    kind = architecture.get("kind") if isinstance(architecture, dict) else None
    if kind == "sequential":
        return nn.Sequential(
            OrderedDict(
                (str(c["name"]), build_module(c["module"], trusted_modules))
                for c in architecture["layers"]
            )
        )
    if kind == "torch.nn":
        name = architecture.get("class")
        if name not in SAFE_LAYERS:
            raise RegistryError(f"torch.nn.{name} is not a layer pinnacle_ray rebuilds")
        return _construct(getattr(nn, name), f"torch.nn.{name}", architecture.get("args", {}))
    if kind == "class":
        path = str(architecture.get("class"))
        check_trusted(path, trusted_modules)
        cls = _import_class(path)
        return _construct(cls, path, architecture.get("args", {}))
    if kind == "unavailable":
        path = str(architecture.get("class"))
        raise RegistryError(
            f"the model class {path} cannot be rebuilt here: {architecture.get('reason')}. "
            f"Pass model=<an instance of {path.rsplit(':', 1)[-1]}> to load(); the stored "
            "weights are loaded into a copy of it"
        )
    raise RegistryError(
        f"unknown architecture description {architecture!r}; pass model=<an instance> to load()"
    )


def _describe(module: nn.Module) -> dict[str, Any]:
    cls = type(module)
    if cls is nn.Sequential:
        layers = [{"name": n, "module": _describe(c)} for n, c in module.named_children()]
        return {"kind": "sequential", "layers": layers}
    if cls.__name__ in SAFE_LAYERS and getattr(nn, cls.__name__, None) is cls:
        try:
            return {"kind": "torch.nn", "class": cls.__name__, "args": _init_args(module, cls)}
        except _Unrecoverable as exc:
            return _unavailable(cls, str(exc))
    reason = _not_importable(cls)
    if reason:
        return _unavailable(cls, reason)
    try:
        args = _exposed_args(module)
        if args is None:
            args = _init_args(module, cls)
    except _Unrecoverable as exc:
        return _unavailable(cls, str(exc))
    return {"kind": "class", "class": _path(cls), "args": args}


def _unavailable(cls: type, reason: str) -> dict[str, Any]:
    return {"kind": "unavailable", "class": _path(cls), "reason": reason}


def _path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _not_importable(cls: type) -> str | None:
    if cls.__module__ == "__main__":
        return (
            "it is defined in __main__ (a script or notebook), which other processes cannot import"
        )
    if "<locals>" in cls.__qualname__:
        return "it is defined inside a function, so it cannot be imported"
    try:
        found = _resolve(cls.__module__, cls.__qualname__)
    except (ImportError, AttributeError):
        return f"{_path(cls)} cannot be imported"
    if found is not cls:
        return f"importing {_path(cls)} gives a different object"
    return None


def _exposed_args(module: nn.Module) -> dict[str, Any] | None:
    get_config = getattr(type(module), "get_config", None)
    config = module.get_config() if callable(get_config) else getattr(module, "init_kwargs", None)
    if not isinstance(config, dict):
        return None
    return {str(k): _encode(v, str(k)) for k, v in config.items()}


def _init_args(module: nn.Module, cls: type) -> dict[str, Any]:
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        raise _Unrecoverable(f"the signature of {cls.__qualname__}.__init__ is unknown") from None
    args: dict[str, Any] = {}
    for p in params:
        if p.kind is p.VAR_KEYWORD or p.name in _SKIPPED_PARAMS or p.name.startswith("_"):
            continue
        if p.kind is p.VAR_POSITIONAL:
            if cls.__name__ in SAFE_LAYERS:
                continue  # e.g. Identity(*args, **kwargs) ignores them
            raise _Unrecoverable(f"{cls.__qualname__}.__init__ takes *{p.name}")
        has_default = p.default is not p.empty
        try:
            value = getattr(module, p.name)
        except AttributeError:
            if has_default:
                continue
            raise _Unrecoverable(
                f"its __init__ argument {p.name!r} is not stored as an attribute "
                f"self.{p.name} (or exposed by get_config())"
            ) from None
        if isinstance(p.default, bool) and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # e.g. Linear(bias=True) keeps self.bias as a tensor
        args[p.name] = _encode(value, p.name)
    return args


def _encode(value: Any, name: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Size):
        value = tuple(value)
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, name) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v, name) for k, v in value.items()}
    if (
        hasattr(value, "item")
        and getattr(value, "ndim", None) == 0
        and not isinstance(value, torch.Tensor)
    ):
        return value.item()  # numpy scalar
    raise _Unrecoverable(
        f"its __init__ argument {name!r} holds a {type(value).__name__}, which has no JSON form"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TUPLE}:
            return tuple(_decode(v) for v in value[_TUPLE])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _construct(cls: type, path: str, args: dict[str, Any]) -> nn.Module:
    kwargs = _decode(args)
    try:
        module = cls(**kwargs)
    except Exception as exc:
        raise RegistryError(
            f"rebuilding {path}(**{kwargs}) failed: {type(exc).__name__}: {exc}. Pass "
            "model=<an instance> to load() to use your own"
        ) from None
    return module


def _import_class(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    try:
        cls = _resolve(module_name, qualname)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(
            f"the model class {path} cannot be imported here ({type(exc).__name__}: {exc}); "
            "install its package, or pass model=<an instance> to load()"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise RegistryError(f"{path} is not a torch.nn.Module class; refusing to call it")
    return cls


def _resolve(module_name: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
