"""Trainers: each receives Ray Datasets (from queries) and hands back a ``TrainResult``."""

from .base import TrainResult
from .checkpoint import get_checkpoint, load_state, report, save_state
from .resources import ClusterResources, ResourcePlan, plan_resources
from .torch import TorchTrainer

__all__ = [
    "ClusterResources",
    "ResourcePlan",
    "TorchTrainer",
    "TrainResult",
    "get_checkpoint",
    "load_state",
    "plan_resources",
    "report",
    "save_state",
]
