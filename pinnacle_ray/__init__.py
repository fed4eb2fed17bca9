"""pinnacle_ray: train models on Ray directly on the data in your database.

Example::

    import pinnacle_ray as pr

    store = pr.connect("sqlite:///shop.db")
    q = store.table("houses", columns=["id", "rooms", "area", "price"], key="id")
    ds = q.to_dataset()          # a ray.data.Dataset, its shards read in parallel
"""

from __future__ import annotations

from . import errors
from .datastore import ShardPlan, SqlDatastore, SqlQuery, connect
from .errors import (
    ChecksumMismatch,
    ColumnNotFound,
    ConfigError,
    DataError,
    DatastoreAuthenticationError,
    DatastoreConnectionError,
    DatastoreError,
    DuplicateKey,
    EmptyResult,
    IncompatibleCheckpoint,
    InvalidIdentifier,
    InvalidKey,
    InvalidURL,
    MetricNotReported,
    ModelNotFound,
    NonFiniteValues,
    NonNumericFeature,
    PinnacleError,
    QueryError,
    RegistryError,
    ResourceError,
    TableNotFound,
    WriteError,
)
from .registry import CheckpointRecord, CheckpointSpec, ModelRegistry, ModelVersion
from .trainers import (
    TorchTrainer,
    TrainResult,
    get_checkpoint,
    load_state,
    report,
    save_state,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointRecord",
    "CheckpointSpec",
    "ChecksumMismatch",
    "ColumnNotFound",
    "ConfigError",
    "DataError",
    "DatastoreAuthenticationError",
    "DatastoreConnectionError",
    "DatastoreError",
    "DuplicateKey",
    "EmptyResult",
    "IncompatibleCheckpoint",
    "InvalidIdentifier",
    "InvalidKey",
    "InvalidURL",
    "MetricNotReported",
    "ModelNotFound",
    "ModelRegistry",
    "ModelVersion",
    "NonFiniteValues",
    "NonNumericFeature",
    "PinnacleError",
    "QueryError",
    "RegistryError",
    "ResourceError",
    "ShardPlan",
    "SqlDatastore",
    "SqlQuery",
    "TableNotFound",
    "TorchTrainer",
    "TrainResult",
    "WriteError",
    "__version__",
    "connect",
    "errors",
    "get_checkpoint",
    "load_state",
    "report",
    "save_state",
]
