"""The model registry: versions, checkpoint handles, metrics and lineage inside the datastore.

``store.models`` is a :class:`ModelRegistry` (``pinnacle_ray.connect`` hands the datastore the
factory that makes it).
Artifacts are stored in formats that run no code on load; each framework's save/load code
is a flavor found by name (:mod:`.flavors`), so this room never imports the trainers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._internal.lazy import lazy_attributes
from .flavors import get_flavor, register_flavor
from .records import CheckpointRecord, CheckpointSpec, ModelVersion

if TYPE_CHECKING:
    from .aliases import HandleMove
    from .cards import card_text
    from .cleanup import CleanupReport
    from .registry import ModelRegistry
    from .storage import ModelFiles, RunStorage
    from .sweeps import SweepTrial

# The registry itself reads and writes through a datastore (SQLAlchemy, pandas); a Ray
# Train worker that only imports a flavor to save its checkpoints does not load it.
_LAZY = {
    "CleanupReport": "cleanup",
    "card_text": "cards",
    "HandleMove": "aliases",
    "ModelFiles": "storage",
    "ModelRegistry": "registry",
    "RunStorage": "storage",
    "SweepTrial": "sweeps",
}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


__all__ = [
    "CheckpointRecord",
    "CheckpointSpec",
    "CleanupReport",
    "HandleMove",
    "ModelFiles",
    "ModelRegistry",
    "ModelVersion",
    "RunStorage",
    "SweepTrial",
    "card_text",
    "get_flavor",
    "register_flavor",
]
