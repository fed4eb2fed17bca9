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
    ColumnNotFound,
    ConfigError,
    DatastoreAuthenticationError,
    DatastoreConnectionError,
    DatastoreError,
    EmptyResult,
    InvalidIdentifier,
    InvalidKey,
    InvalidURL,
    PinnacleError,
    QueryError,
    ResourceError,
    TableNotFound,
    WriteError,
)
from .trainers import TorchTrainer, TrainResult, load_state, report, save_state

__version__ = "0.1.0"

__all__ = [
    "ColumnNotFound",
    "ConfigError",
    "DatastoreAuthenticationError",
    "DatastoreConnectionError",
    "DatastoreError",
    "EmptyResult",
    "InvalidIdentifier",
    "InvalidKey",
    "InvalidURL",
    "PinnacleError",
    "QueryError",
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
    "load_state",
    "report",
    "save_state",
]
