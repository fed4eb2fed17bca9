"""pinnacle_ray: train models on Ray directly on the data in your database.

Example::

    import pinnacle_ray as pr

    store = pr.connect("sqlite:///shop.db")
    q = store.table("houses", columns=["id", "rooms", "area", "price"], key="id")
    ds = q.to_dataset()          # a ray.data.Dataset, its shards read in parallel
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors
from ._lazy import lazy_attributes
from .errors import (
    ChecksumMismatch,
    ClusterUnreachable,
    ColumnNotFound,
    ConfigError,
    DataError,
    DatastoreAuthenticationError,
    DatastoreConnectionError,
    DatastoreError,
    DataTooLarge,
    DuplicateJob,
    DuplicateKey,
    EmptyResult,
    EmptyText,
    IncompatibleCheckpoint,
    InvalidIdentifier,
    InvalidKey,
    InvalidName,
    InvalidURL,
    JobError,
    JobFailed,
    JobNotFound,
    LabelMismatch,
    MetricNotReported,
    MixedTypes,
    ModelNotFound,
    NonFiniteValues,
    NonNumericFeature,
    NotShippable,
    PinnacleError,
    PretrainedNotFound,
    QueryError,
    RegistryError,
    ResourceError,
    SingleClass,
    SpecError,
    TableNotFound,
    TooFewRows,
    TrainingFailed,
    UnsafeArtifact,
    WriteError,
)

if TYPE_CHECKING:
    from .datastore import ShardPlan, SqlDatastore, SqlQuery, connect
    from .datastore.mongo import MongoDatastore
    from .datastore.mongo_query import MongoQuery
    from .jobs import Job
    from .predict import PredictResult, predict
    from .registry import (
        CheckpointRecord,
        CheckpointSpec,
        CleanupReport,
        HandleMove,
        ModelRegistry,
        ModelVersion,
        SweepTrial,
    )
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
    from .tune import SweepResult, sweep

# The trainers import torch, Ray Train, scikit-learn and XGBoost (seconds), predict imports
# Ray Train's config for its resource plan, the Mongo classes pymongo, the datastore and
# registry SQLAlchemy and pandas; the package is also imported by every Ray Data read task
# and every Ray Train worker, which need only some of them. They load on first use
# instead: ``pr.connect`` and ``pr.TorchTrainer`` work as before.
_LAZY = {
    "ShardPlan": "datastore",
    "SqlDatastore": "datastore",
    "SqlQuery": "datastore",
    "connect": "datastore",
    "CheckpointRecord": "registry",
    "CheckpointSpec": "registry",
    "CleanupReport": "registry",
    "HandleMove": "registry",
    "ModelRegistry": "registry",
    "ModelVersion": "registry",
    "SweepTrial": "registry",
    "MongoDatastore": "datastore.mongo",
    "MongoQuery": "datastore.mongo_query",
    "PredictResult": "predict",
    "predict": "predict",
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
    "SweepResult": "tune",
    "sweep": "tune",
    "Job": "jobs",
}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


__version__ = "0.1.0"

__all__ = [
    "CheckpointRecord",
    "CheckpointSpec",
    "ChecksumMismatch",
    "CleanupReport",
    "ClusterUnreachable",
    "ColumnNotFound",
    "ConfigError",
    "DataError",
    "DataTooLarge",
    "DatastoreAuthenticationError",
    "DatastoreConnectionError",
    "DatastoreError",
    "DuplicateJob",
    "DuplicateKey",
    "EmptyResult",
    "EmptyText",
    "HandleMove",
    "HuggingFaceTrainer",
    "IncompatibleCheckpoint",
    "InvalidIdentifier",
    "InvalidKey",
    "InvalidName",
    "InvalidURL",
    "Job",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "LabelMismatch",
    "MLflowCallback",
    "MetricNotReported",
    "MixedTypes",
    "ModelNotFound",
    "ModelRegistry",
    "ModelVersion",
    "MongoDatastore",
    "MongoQuery",
    "NonFiniteValues",
    "NonNumericFeature",
    "NotShippable",
    "PinnacleError",
    "PredictResult",
    "PretrainedNotFound",
    "QueryError",
    "RegistryError",
    "ResourceError",
    "ShardPlan",
    "SingleClass",
    "SklearnTrainer",
    "SpecError",
    "SqlDatastore",
    "SqlQuery",
    "SweepResult",
    "SweepTrial",
    "TableNotFound",
    "TooFewRows",
    "TorchTrainer",
    "TrainResult",
    "TrainingFailed",
    "UnsafeArtifact",
    "WriteError",
    "XGBoostTrainer",
    "__version__",
    "connect",
    "errors",
    "get_checkpoint",
    "load_state",
    "predict",
    "report",
    "save_state",
    "sweep",
]
