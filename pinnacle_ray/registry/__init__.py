"""The model registry: versions, checkpoint handles, metrics and lineage inside the datastore.

Importing this package gives every datastore its ``store.models`` (a :class:`ModelRegistry`).
Artifacts are stored in formats that run no code on load; each framework's save/load code
is a flavor found by name (:mod:`.flavors`), so this room never imports the trainers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..datastore.base import set_models_factory
from .flavors import get_flavor, register_flavor
from .records import CheckpointRecord, CheckpointSpec, ModelVersion

if TYPE_CHECKING:
    from .aliases import HandleMove
    from .registry import ModelRegistry
    from .sweeps import SweepTrial

# The registry itself reads and writes through a datastore (SQLAlchemy, pandas); a Ray
# Train worker that only imports a flavor to save its checkpoints does not load it.
_LAZY = {"HandleMove": "aliases", "ModelRegistry": "registry", "SweepTrial": "sweeps"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _models(store: Any) -> ModelRegistry:
    from .registry import ModelRegistry

    return ModelRegistry(store)


__all__ = [
    "CheckpointRecord",
    "CheckpointSpec",
    "HandleMove",
    "ModelRegistry",
    "ModelVersion",
    "SweepTrial",
    "get_flavor",
    "register_flavor",
]

set_models_factory(_models)
