"""Sweep parameters by path: ``{"optimizer_kwargs.lr": tune.loguniform(1e-4, 1e-1)}``.

A path starts with an argument of the trainer's constructor and goes down from there:
into dicts by key (``params.max_depth``, ``train_loop_config.lr``), into dataclasses by
field, and into scikit-learn estimators by ``set_params`` name (``estimator__alpha``,
``estimator__ridge__alpha`` for a pipeline step). Each trial builds its own trainer from
the arguments the user gave, with the trial's values put in, so the trainer's own checks
apply to every sampled value.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["check_space", "flatten_space", "with_arguments", "with_params"]

# Set by the sweep itself: resources are planned once for all trials, names and run
# folders are per trial.
_NOT_SWEPT = ("scaling_config", "run_config", "name")


def flatten_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a.b": x}``; search spaces and grid searches are leaves."""
    if not isinstance(space, Mapping):
        raise ConfigError(
            f"param_space must be a dict of parameter paths, got {type(space).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in space.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"param_space keys must be parameter paths (strings), got {key!r}")
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and set(value) != {"grid_search"} and value:
            out.update(flatten_space(value, path))
        else:
            out[path] = value
    return out


def check_space(trainer: Any, space: dict[str, Any]) -> Any:
    """Build a trainer from one sample of every parameter (ConfigError naming the path for
    an unknown path or a value the trainer refuses), before any trial starts."""
    if not hasattr(trainer, "_arguments"):
        raise ConfigError(
            f"{type(trainer).__name__} cannot be swept: it does not keep the arguments it was "
            "built with (decorate its class with pinnacle_ray.trainers.base.keeps_arguments)"
        )
    if not space:
        raise ConfigError("param_space is empty; give at least one parameter path to sweep")
    samples = {path: _sample(value) for path, value in space.items()}
    return with_params(trainer, {k: v for k, v in samples.items() if v is not _UNKNOWN})


def with_params(trainer: Any, params: Mapping[str, Any]) -> Any:
    """A new trainer like ``trainer`` (built from its arguments) with ``params`` set by path."""
    arguments = copy.deepcopy(trainer._arguments)
    accepted = list(inspect.signature(type(trainer)).parameters)
    for path, value in params.items():
        head, rest = _split(path)
        if head in _NOT_SWEPT:
            raise ConfigError(
                f"param_space path {path!r}: {head} cannot be swept (the sweep plans resources "
                "once and names each trial's run); sweep the trainer's other arguments"
            )
        if head not in accepted:
            raise ConfigError(
                f"param_space path {path!r}: {type(trainer).__name__} has no argument {head!r}; "
                f"its arguments are {accepted}"
            )
        arguments[head] = _assign(arguments.get(head), rest, value, path, head)
    try:
        return type(trainer)(**arguments)
    except ConfigError as exc:
        raise type(exc)(f"with {dict(params)}: {exc}") from None


def with_arguments(trainer: Any, **arguments: Any) -> Any:
    """A new trainer like ``trainer`` with some constructor arguments replaced."""
    return type(trainer)(**{**trainer._arguments, **arguments})


def _split(path: str) -> tuple[str, list[str]]:
    """``"a.b.c"`` -> ("a", ["b", "c"]); ``"estimator__ridge__alpha"`` -> ("estimator",
    ["ridge__alpha"]), the scikit-learn way of naming a nested parameter."""
    head, *rest = path.split(".")
    if "__" in head:
        head, nested = head.split("__", 1)
        rest = [nested, *rest]
    return head, rest


def _assign(value: Any, rest: list[str], new: Any, path: str, where: str) -> Any:
    """``value`` with ``new`` put at ``rest`` (copies; the user's objects are untouched)."""
    if not rest:
        return new
    segment, deeper = rest[0], rest[1:]
    if value is None or isinstance(value, Mapping):
        # Dicts of keyword arguments (optimizer_kwargs, params, train_loop_config) take
        # new keys, as Tune's own param_space does; the trainer checks what it can.
        out = dict(value or {})
        out[segment] = _assign(out.get(segment), deeper, new, path, f"{where}.{segment}")
        return out
    if hasattr(value, "set_params") and hasattr(value, "get_params"):
        name = "__".join(rest)
        known = value.get_params(deep=True)
        if name not in known:
            shown = sorted(k for k in known if not isinstance(known[k], type))
            raise ConfigError(
                f"param_space path {path!r}: {type(value).__name__} has no parameter {name!r}; "
                f"its parameters are {shown}"
            )
        out = copy.deepcopy(value)
        out.set_params(**{name: new})
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        if segment not in names:
            raise ConfigError(
                f"param_space path {path!r}: {where} ({type(value).__name__}) has no field "
                f"{segment!r}; its fields are {names}"
            )
        inner = _assign(getattr(value, segment), deeper, new, path, f"{where}.{segment}")
        return dataclasses.replace(value, **{segment: inner})
    raise ConfigError(
        f"param_space path {path!r}: {where} is a {type(value).__name__}, which has no "
        f"parameter {segment!r} to set; address a dict key, a dataclass field or an "
        "estimator parameter"
    )


def _sample(value: Any) -> Any:
    """One concrete value of a search space (the first of a grid), to check it early."""
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        values = list(value["grid_search"])
        if not values:
            raise ConfigError("a grid_search has no values; give it at least one")
        return values[0]
    sample = getattr(value, "sample", None)
    if callable(sample) and type(value).__module__.startswith("ray.tune"):
        try:
            return sample()
        except Exception:  # sample_from functions need a spec: checked in the trial
            return _UNKNOWN
    return value


_UNKNOWN = object()
