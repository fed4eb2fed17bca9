"""The checkpoint a worker's loop starts from: Ray's latest after a restart, else the
registered one ``fit(resume_from=...)`` named. Apart from :mod:`.checkpoint` (which needs
torch) so that XGBoost and scikit-learn workers start without importing torch."""

from __future__ import annotations

import ray.train

__all__ = ["get_checkpoint", "set_registered_start"]

# Set in each worker by the trainer's loop wrapper when fit(resume_from=...) is used.
_registered_start: ray.train.Checkpoint | None = None


def get_checkpoint() -> ray.train.Checkpoint | None:
    """The checkpoint to start from inside a loop: this run's latest after a worker restart
    (``ray.train.get_checkpoint()``), else the registered one ``fit(resume_from=...)`` named,
    else None.
    """
    return ray.train.get_checkpoint() or _registered_start


def set_registered_start(checkpoint: ray.train.Checkpoint | None) -> None:
    """Record the registered checkpoint this worker's run continues from (trainer use)."""
    global _registered_start
    _registered_start = checkpoint
