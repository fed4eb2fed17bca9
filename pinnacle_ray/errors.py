"""One exception tree for everything pinnacle_ray refuses, rooted at :class:`PinnacleError`.

Every message says what was wrong, the value seen and what to do about it. Messages never
carry a password: ``pinnacle_ray._internal.secrets.mask`` scrubs them before an error
leaves the package.
"""

from __future__ import annotations

__all__ = [
    "ArtifactStoreFull",
    "ChecksumMismatch",
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
    "IncompatibleCheckpoint",
    "InvalidIdentifier",
    "InvalidKey",
    "InvalidName",
    "InvalidURL",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "LabelMismatch",
    "MetricNotReported",
    "MissingExtra",
    "MixedTypes",
    "ModelNotFound",
    "NonFiniteValues",
    "NonNumericFeature",
    "NotShippable",
    "PinnacleError",
    "PretrainedNotFound",
    "QueryError",
    "RegistryError",
    "ResourceError",
    "SingleClass",
    "SpecError",
    "StorageNotShared",
    "TableNotFound",
    "TooFewRows",
    "TrainingFailed",
    "UnsafeArtifact",
    "WriteError",
]


class PinnacleError(Exception):
    """Base of every error pinnacle_ray raises on purpose."""


class ConfigError(PinnacleError, ValueError):
    """An argument or setting has a value pinnacle_ray cannot use."""


class InvalidName(ConfigError):
    """A model, checkpoint handle, sweep, job or run name cannot be used: it would become a
    folder or a Ray run name, so it may hold only letters, digits and ``-_.``."""


class MissingExtra(ConfigError, ImportError):
    """An optional package is not installed: a trainer, backend, model flavor or feature
    needs one of the package's extras. The message names the command that installs it,
    e.g. ``pip install "pinnacle-ray[xgboost]"``; ``extra`` holds the extra's name and
    ``name`` (as on any ``ImportError``) the module that is missing. A ``ConfigError`` too,
    as the missing MLflow and plotting packages were reported before extras existed."""

    def __init__(self, message: str, extra: str | None = None, module: str | None = None) -> None:
        # ImportError's own __init__ (the first in the MRO, BaseException's, takes no name=).
        ImportError.__init__(self, message, name=module)
        self.extra = extra

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.extra, self.name))


class ResourceError(PinnacleError):
    """A run asks for more than the cluster has, or could never be scheduled."""


class DatastoreError(PinnacleError):
    """Something went wrong talking to a datastore."""


class DatastoreConnectionError(DatastoreError):
    """The datastore cannot be reached (wrong host or port, server down, timeout)."""


class InvalidURL(DatastoreConnectionError, ValueError):
    """The connection URL is malformed or names an unsupported backend."""


class DatastoreAuthenticationError(DatastoreConnectionError):
    """The server refused the credentials."""


class TableNotFound(DatastoreError, LookupError):
    """A table (or collection) named in a query does not exist."""


class ColumnNotFound(DatastoreError, LookupError):
    """A column named in a query, key, filter or write does not exist."""


class InvalidIdentifier(DatastoreError, ValueError):
    """A table or column name cannot be used as an identifier."""


class InvalidKey(DatastoreError, ValueError):
    """The shard or upsert key is missing, not sortable, or holds values it cannot."""


class QueryError(DatastoreError):
    """The database rejected a query (syntax, types, parameters)."""


class EmptyResult(DatastoreError):
    """A query returned no rows where rows are required (e.g. training)."""


class WriteError(DatastoreError):
    """Rows could not be written; the transaction was rolled back and nothing was written."""


class DuplicateKey(WriteError):
    """An insert-only write met a row whose key already exists; nothing was written."""


class DataError(PinnacleError, ValueError):
    """The rows themselves cannot be trained on (types, NaN/inf, missing values)."""


class MixedTypes(DataError):
    """A document field holds values of different types (e.g. numbers and strings)."""


class NonNumericFeature(DataError):
    """A feature or label column is not numeric where a number is needed."""


class NonFiniteValues(DataError):
    """A feature or label column holds NaN, inf or NULL values."""


class SingleClass(DataError):
    """A classifier's label column holds only one class: there is nothing to tell apart."""


class TooFewRows(DataError):
    """The query returns fewer rows than the run needs (e.g. one per worker)."""


class EmptyText(DataError):
    """A text column holds empty strings or NULLs where a model needs text to read."""


class LabelMismatch(DataError):
    """The validation rows hold labels the training rows (or the resumed model) never had."""


class PretrainedNotFound(ConfigError, LookupError):
    """A pretrained model or tokenizer is not available locally, or is not a transformers one."""


class DataTooLarge(ResourceError):
    """The data would not fit in the memory one process can be given (scikit-learn)."""


class StorageNotShared(ConfigError):
    """A run on a Ray cluster with several nodes would keep its checkpoints or model files
    on one machine's disk (a SQLite store, a local-folder artifact root or storage path)."""


class MetricNotReported(ConfigError):
    """The metric to listen to (early stopping, best checkpoint, sweeps) is never reported."""


class RegistryError(PinnacleError):
    """The model registry cannot store or find what was asked."""


class ModelNotFound(RegistryError, LookupError):
    """No registered model, version or checkpoint handle matches the request."""


class ArtifactStoreFull(RegistryError, OSError):
    """The artifact store ran out of space (or quota) while a version was being stored;
    the registration was undone."""


class ChecksumMismatch(RegistryError):
    """A stored artifact's bytes differ from the checksum recorded when it was registered."""


class UnsafeArtifact(RegistryError):
    """A stored model would run code when loaded (a pickle-based file, untrusted skops types)
    or lies outside the artifact root; refused unless explicitly allowed."""


class IncompatibleCheckpoint(RegistryError, ValueError):
    """Stored weights do not fit the model they are loaded into (names or shapes differ)."""


class TrainingFailed(PinnacleError):
    """A training run ended because a Ray Train worker died (killed, crashed, node lost) more
    often than ``FailureConfig(max_failures=...)`` allows; Ray's error is its ``__cause__``."""


class SpecError(ConfigError):
    """A run spec (YAML) is missing a field, has one it should not, or holds a bad value."""


class JobError(PinnacleError):
    """A Ray job could not be submitted, found or controlled."""


class JobNotFound(JobError, LookupError):
    """No job record (and no Ray job) has the submission id asked for."""


class DuplicateJob(JobError):
    """The same spec is already running as another job; submit with ``--force`` to run twice."""


class JobFailed(JobError):
    """A Ray job ended ``FAILED`` or ``STOPPED`` instead of producing its result; ``status``
    and ``error`` say how, the job's logs say more (``job.logs()``)."""

    def __init__(self, message: str, status: str = "FAILED", error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.status, self.error))


class NotShippable(JobError, ValueError):
    """A fit cannot be started as a Ray job: something it needs cannot travel to the cluster
    (an object that does not pickle, a plain Dataset, a SQLite file the cluster cannot read)."""


class ClusterUnreachable(JobError, ConnectionError):
    """No Ray cluster (job server / dashboard) answers at the address given; ``refused``
    when the host answered but nothing listens there (the cluster was stopped)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.refused))
