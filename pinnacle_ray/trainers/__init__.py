"""Trainers: each receives Ray Datasets (from queries) and hands back a ``TrainResult``.

``Trainer`` is the Protocol the four satisfy (scikit-learn-style ``get_params`` /
``set_params`` / ``clone``, ``fit``, ``submit``): what ``tune`` and ``jobs`` type against.

Each framework's trainer loads on first use, so using one does not import the others.

What a room above needs besides the trainers is named here too, not imported from the
modules inside (``jobs`` does so): ``default_run_config`` (the quiet, uniquely named
``RunConfig`` a fit starts from), ``progress_on`` (whether a progress bar shows) and
``check_reachable`` (a store's model files and checkpoints reach every node). They are not
in ``__all__``: users do not call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._internal.lazy import lazy_attributes

if TYPE_CHECKING:
    from .base import TrainResult
    from .base import default_run_config as default_run_config
    from .checkpoint import get_checkpoint, load_state, report, save_state
    from .huggingface import HuggingFaceTrainer
    from .progress import progress_on as progress_on
    from .protocol import Trainer
    from .resources import ClusterResources, ResourcePlan, plan_resources
    from .sklearn import SklearnTrainer
    from .storage import check_reachable as check_reachable
    from .torch import TorchTrainer
    from .xgboost import XGBoostTrainer

_WHERE = {
    "TrainResult": "base",
    "Trainer": "protocol",
    "get_checkpoint": "checkpoint",
    "load_state": "checkpoint",
    "report": "checkpoint",
    "save_state": "checkpoint",
    "ClusterResources": "resources",
    "ResourcePlan": "resources",
    "plan_resources": "resources",
    "HuggingFaceTrainer": "huggingface",
    "SklearnTrainer": "sklearn",
    "TorchTrainer": "torch",
    "XGBoostTrainer": "xgboost",
    # for the rooms above (see the module docstring)
    "default_run_config": "base",
    "progress_on": "progress",
    "check_reachable": "storage",
}

__all__ = [
    "ClusterResources",
    "HuggingFaceTrainer",
    "ResourcePlan",
    "SklearnTrainer",
    "TorchTrainer",
    "TrainResult",
    "Trainer",
    "XGBoostTrainer",
    "get_checkpoint",
    "load_state",
    "plan_resources",
    "report",
    "save_state",
]


# The extra each name needs beyond the core install (its module imports that framework);
# without it, using the name raises MissingExtra naming ``pip install "pinnacle-ray[...]"``.
_EXTRAS = {
    "get_checkpoint": "torch",
    "load_state": "torch",
    "report": "torch",
    "save_state": "torch",
    "HuggingFaceTrainer": "hf",
    "SklearnTrainer": "sklearn",
    "TorchTrainer": "torch",
    "XGBoostTrainer": "xgboost",
}


__getattr__, __dir__ = lazy_attributes(globals(), _WHERE, _EXTRAS)
