"""The model registry: versions, checkpoint handles, metrics and lineage inside the datastore.

Importing this package gives every datastore its ``store.models`` (a :class:`ModelRegistry`).
Artifacts are stored in formats that run no code on load; each framework's save/load code
is a flavor found by name (:mod:`.flavors`), so this room never imports the trainers.
"""

from __future__ import annotations

from ..datastore.base import set_models_factory
from .aliases import HandleMove
from .cleanup import CleanupReport
from .flavors import get_flavor, register_flavor
from .records import CheckpointRecord, CheckpointSpec, ModelVersion
from .registry import ModelRegistry
from .sweeps import SweepTrial

__all__ = [
    "CheckpointRecord",
    "CheckpointSpec",
    "CleanupReport",
    "HandleMove",
    "ModelRegistry",
    "ModelVersion",
    "SweepTrial",
    "get_flavor",
    "register_flavor",
]

set_models_factory(ModelRegistry)
