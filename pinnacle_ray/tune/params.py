"""Sweep parameters by path, with one routing syntax: ``{"optimizer_kwargs__lr": ...}``.

A path starts with a parameter of the trainer (``trainer.get_params()``, its constructor's
arguments) and goes down with ``__``, scikit-learn's and skorch's syntax for nested
parameters: into dicts by key (``params__max_depth``, ``train_loop_config__lr``,
``training_args__learning_rate``), into dataclasses by field, and into scikit-learn
estimators by their ``set_params`` names (``estimator__alpha``, ``estimator__ridge__alpha``
for a pipeline step). A nested dict in the space, Ray Tune's natural form
(``{"optimizer_kwargs": {"lr": ...}}``), is the same path. Each trial builds its own
trainer from the parameters the user gave, with the trial's values put in
(``type(t)(**{**t.get_params(), ...})``), so the trainer's own checks apply to every
sampled value.

The dotted form of earlier releases (``optimizer_kwargs.lr``) still routes the same way,
with a ``FutureWarning`` naming the new spelling; it goes in the next release.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..trainers.params import SEPARATOR, routed_arguments

if TYPE_CHECKING:
    from ..trainers import Trainer

__all__ = [
    "SEPARATOR",
    "check_space",
    "check_trainer",
    "flatten_space",
    "new_spelling",
    "with_arguments",
    "with_params",
]

# Set by the sweep itself: resources are planned once for all trials, names and run
# folders are per trial.
_NOT_SWEPT = ("scaling_config", "run_config", "name")


def flatten_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep's parameter paths: ``{"a": {"b": x}}`` -> ``{"a__b": x}``; search spaces
    and grid searches are leaves. A dotted path (``"a.b"``) is kept as given, so that
    trials and results carry the keys the user wrote, and warned about once: one
    ``FutureWarning`` naming each new spelling, pointing at the code that called
    ``pr.sweep``."""
    if not isinstance(space, Mapping):
        raise ConfigError(
            f"param_space must be a dict of parameter paths, got {type(space).__name__}"
        )
    out = _flatten(space, "")
    dotted = [path for path in out if "." in path]
    if dotted:
        renames = ", ".join(f"{p!r} -> use {new_spelling(p)!r}" for p in dotted)
        warnings.warn(
            f"param_space paths with '.' are deprecated and stop working in the next release; "
            f"nested parameters are named with '__' as in scikit-learn: {renames}",
            FutureWarning,
            stacklevel=3,  # flatten_space <- pr.sweep <- the user's call
        )
    return out


def new_spelling(path: str) -> str:
    """``"optimizer_kwargs.lr"`` -> ``"optimizer_kwargs__lr"``."""
    return path.replace(".", SEPARATOR)


def check_trainer(trainer: Any) -> None:
    """ConfigError unless ``trainer`` gives back its arguments (``get_params``), which is
    what every trial builds its own trainer from."""
    if not callable(getattr(trainer, "get_params", None)):
        raise ConfigError(
            f"{type(trainer).__name__} cannot be swept: it has no get_params() giving back "
            "the arguments it was built with; pass a pinnacle_ray trainer, or a class that "
            "follows pinnacle_ray.trainers.Trainer"
        )


def check_space(trainer: Trainer, space: Mapping[str, Any]) -> Trainer:
    """Build a trainer from one sample of every parameter (ConfigError naming the path for
    an unknown path or a value the trainer refuses), before any trial starts."""
    check_trainer(trainer)
    if not space:
        raise ConfigError("param_space is empty; give at least one parameter path to sweep")
    samples = {path: _sample(value) for path, value in space.items()}
    return with_params(trainer, {k: v for k, v in samples.items() if v is not _UNKNOWN})


def with_params(trainer: Trainer, params: Mapping[str, Any]) -> Trainer:
    """A new trainer like ``trainer`` (built from its parameters) with ``params`` set by path:
    ``type(t)(**{**t.get_params(), ...})``, routed as ``set_params`` routes them
    (:func:`pinnacle_ray.trainers.params.routed_arguments`). The user's objects are
    untouched: what a path changes is copied (a dict along the path, an estimator, a
    dataclass), the other arguments are handed on as given, as scikit-learn's ``clone``
    does."""
    spelled: dict[str, Any] = {}
    for path, value in params.items():
        new = new_spelling(path)
        head = new.split(SEPARATOR, 1)[0]
        if head in _NOT_SWEPT:
            raise ConfigError(
                f"param_space path {path!r}: {head} cannot be swept (the sweep plans resources "
                "once and names each trial's run); sweep the trainer's other arguments"
            )
        spelled[new] = value
    arguments = routed_arguments(
        type(trainer).__name__, trainer.get_params(), spelled, context="param_space path "
    )
    try:
        return type(trainer)(**arguments)
    except ConfigError as exc:
        raise type(exc)(f"with {dict(params)}: {exc}") from None


def with_arguments(trainer: Trainer, **arguments: Any) -> Trainer:
    """A new trainer like ``trainer`` with some constructor arguments replaced."""
    return type(trainer)(**{**trainer.get_params(), **arguments})


def _flatten(space: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in space.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"param_space keys must be parameter paths (strings), got {key!r}")
        path = f"{prefix}{SEPARATOR}{key}" if prefix else key
        if isinstance(value, Mapping) and set(value) != {"grid_search"} and value:
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


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
