"""pinnacle_ray: train models on Ray directly on the data in your database.

Example::

    import pinnacle_ray as pr

    store = pr.connect("sqlite:///shop.db")
    q = store.table("houses", columns=["id", "rooms", "area", "price"], key="id")
    ds = q.to_dataset()          # a ray.data.Dataset, its shards read in parallel

The facade (``__all__``) is what a user calls or constructs: ``connect``, the four trainers
and their ``TrainResult``, ``predict``, ``sweep``, the checkpoint helpers of a custom train
loop, ``MLflowCallback``, and ``PinnacleError`` with its category bases. Leaf errors live in
``pinnacle_ray.errors``; record and backend types in their modules (``pinnacle_ray.datastore``,
``pinnacle_ray.registry``, ...). Names listed here before still resolve, unlisted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors
from ._internal.lazy import lazy_attributes
from .errors import (
    ConfigError,
    DataError,
    DatastoreError,
    JobError,
    PinnacleError,
    RegistryError,
    ResourceError,
    TrainingFailed,
)

if TYPE_CHECKING:
    from ._connect import connect
    from .batch_predict import predict
    from .trainers import (
        HuggingFaceTrainer,
        SklearnTrainer,
        TorchTrainer,
        TrainResult,
        XGBoostTrainer,
        get_checkpoint,
        load_state,
        report,
        save_state,
    )
    from .trainers.tracking import MLflowCallback
    from .tune import sweep

# The trainers import torch, Ray Train, scikit-learn and XGBoost (seconds), predict imports
# Ray Train's config for its resource plan, the datastore and registry SQLAlchemy and
# pandas; the package is also imported by every Ray Data read task and every Ray Train
# worker, which need only some of them. They load on first use instead: ``pr.connect`` and
# ``pr.TorchTrainer`` work as before.
_LAZY = {
    "connect": "_connect",
    "HuggingFaceTrainer": "trainers",
    "SklearnTrainer": "trainers",
    "TorchTrainer": "trainers",
    "TrainResult": "trainers",
    "XGBoostTrainer": "trainers",
    "get_checkpoint": "trainers",
    "load_state": "trainers",
    "report": "trainers",
    "save_state": "trainers",
    "MLflowCallback": "trainers.tracking",
    # batch_predict, not predict: a submodule named ``predict`` would replace this function
    # as the package attribute once imported (``import pinnacle_ray.predict``).
    "predict": "batch_predict",
    "sweep": "tune",
}

# Names the facade listed before it was cut to what a user calls or constructs: they still
# resolve (``pr.ModelNotFound``, ``pr.SqlDatastore``), so code written against them keeps
# working, but ``__all__`` and ``dir()`` do not show them. Import them from their modules.
_COMPAT = {
    **{name: "errors" for name in errors.__all__},  # every leaf error, new ones included
    "ShardPlan": "datastore",
    "SqlDatastore": "datastore",
    "SqlQuery": "datastore",
    "MongoDatastore": "datastore",
    "MongoQuery": "datastore",
    "CheckpointRecord": "registry",
    "CheckpointSpec": "registry",
    "CleanupReport": "registry",
    "HandleMove": "registry",
    "ModelRegistry": "registry",
    "ModelVersion": "registry",
    "SweepTrial": "registry",
    "PredictResult": "batch_predict",
    "SweepResult": "tune",
    "Job": "jobs",
}

__getattr__, _ = lazy_attributes(globals(), {**_COMPAT, **_LAZY})


def __dir__() -> list[str]:
    """The facade and the module's own attributes (``errors``, ``__version__``, dunders):
    the compatibility names resolve but are not advertised."""
    dunders = {name for name in globals() if name.startswith("__") and name.endswith("__")}
    return sorted({*__all__, "errors", *dunders})


__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DatastoreError",
    "HuggingFaceTrainer",
    "JobError",
    "MLflowCallback",
    "PinnacleError",
    "RegistryError",
    "ResourceError",
    "SklearnTrainer",
    "TorchTrainer",
    "TrainResult",
    "TrainingFailed",
    "XGBoostTrainer",
    "connect",
    "get_checkpoint",
    "load_state",
    "predict",
    "report",
    "save_state",
    "sweep",
]
