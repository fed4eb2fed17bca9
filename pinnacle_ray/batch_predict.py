"""Batch prediction with write-back: a registered model over a query, rows upserted by key.

The module is ``batch_predict``, not ``predict``: a submodule named like the facade's
``pr.predict`` function would replace it as the package attribute when imported (Python binds
every imported submodule on its package), and ``pr.predict(...)`` would then call a module.

``pr.predict`` reads the query's shards through Ray Data and runs ``map_batches`` on a pool
of actors. Each actor loads the model once (checksums verified, by its flavor), predicts a
batch and upserts it into the output table itself, so predictions never travel back to the
driver: the driver only sums the row counts the actors return, and its memory stays flat
however large the table is. Every write is keyed by (the query's key, model, version), so
a rerun, or a retry after a failure halfway, leaves exactly one row per key.

The actors write through the datastore's bulk writer (``store.bulk_writer``), each
through a part of its own; the datastore chooses how the rows reach the table (staged
and merged in one transaction at the commit, or upserted batch by batch: see
``pinnacle_ray.datastore.bulk``). The driver commits the writer when every batch has
succeeded and aborts it when one failed. The run's model, version and created_at are the
writer's shared columns, which a writer may store once.

Everything that can be checked before reading is checked first (model, version, handle,
features, key, output table), so a bad request writes nothing.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import ray
import ray.data

from ._internal.names import MAX_HANDLE_CHARS, validate_name
from ._internal.runtime import cluster_cpus, cluster_gpus, planned_execution
from .datastore.base import store_of
from .datastore.identifiers import validate_identifier
from .errors import ColumnNotFound, ConfigError, InvalidKey, PinnacleError, ResourceError
from .registry.flavors import META_FILE
from .registry.storage import ModelFiles
from .registry.trust import check_architecture, trusted_module_names
from .trainers.storage import check_reachable

if TYPE_CHECKING:
    from .datastore.bulk import BulkWriter
    from .trainers.cluster_shape import ClusterShape
    from .trainers.progress import LiveBar

__all__ = ["DEFAULT_BATCH_SIZE", "PredictResult", "predict"]

# Named after the room (prediction), as before the module was renamed: log settings keep working.
logger = logging.getLogger("pinnacle_ray.predict")

DEFAULT_BATCH_SIZE = 10_000
READ_BLOCK_BYTES = 16 * 1024 * 1024
READ_CPUS = 0.0  # see _plan
# Columns every output row has besides the query's key and the predictions.
MODEL_COLUMN, VERSION_COLUMN, CREATED_COLUMN = "model", "version", "created_at"
_PREDICTION = re.compile(r"prediction(_\d+)?|proba_.*")
# Frameworks whose models predict on CPU only: refused with num_gpus > 0.
CPU_ONLY_FRAMEWORKS = ("sklearn",)


@dataclass(frozen=True)
class PredictResult:
    """What a ``pr.predict`` run wrote: ``rows`` rows of ``model`` ``version`` into ``output``."""

    model: str
    version: int
    output: str
    rows: int
    seconds: float


def predict(
    model: str,
    query: Any,
    output: str,
    version: int | None = None,
    handle: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int | None = None,
    columns: Sequence[str] | None = None,
    allow_pickle: bool = False,
    num_gpus: float = 0,
    trusted_modules: Any = None,
    progress: bool | None = None,
) -> PredictResult:
    """Predict every row of ``query`` with registered ``model`` and upsert the predictions
    into table ``output`` of the query's datastore; returns how many rows were written.

    Each output row holds the query's key, ``model``, ``version``, the prediction
    (``prediction``, or ``prediction_<i>`` for several outputs), for classifiers one
    ``proba_<class>`` column per class, ``created_at`` (the run's start, UTC) and the
    query ``columns`` you ask to copy (e.g. the label, to score later). Rows are keyed by
    (key, model, version): running again updates them in place.

    Which model: ``version`` and/or ``handle`` as in ``store.models.load``; with neither,
    the version ``production`` points at when promoted, else the latest. ``concurrency``
    actors (default: one per cluster CPU, and no more than the query has batches of
    ``batch_size`` rows) each load the model once and take ``batch_size`` rows per call;
    the reads feeding them hold no CPU, so runs side by side never wait on each other
    forever.
    ``allow_pickle=True`` lets them load models stored in formats that can run code
    (pickle, joblib, ``torch.save``), as in ``store.models.load``. ``trusted_modules``
    (module names, classes or modules; also ``PINNACLE_RAY_TRUSTED_MODULES``) are those a
    torch model's own class may be imported from, as in ``store.models.load``.

    ``num_gpus`` (e.g. 1, or 0.5 to share a GPU between two actors) puts each actor on that
    many GPUs and loads the model there (torch and Hugging Face models on ``cuda``, XGBoost
    boosters with ``device="cuda"``); with no ``concurrency``, there is one actor per
    ``num_gpus`` GPUs in the cluster. scikit-learn models predict on CPU only and are
    refused with ``num_gpus`` > 0. A request no node can ever meet raises ResourceError.

    ``progress`` shows a live line (rows written of the query's rows, rows/s, ETA) on
    stderr; None (default): only when stderr is a terminal.

    Example::

        q = store.table("houses", columns=["id", "rooms", "area"], where={"split": "new"})
        pr.predict("house-price", q, output="price_predictions").rows
    """
    started = time.perf_counter()
    # Names first, before Ray or the database is asked anything.
    validate_name(model)
    if handle is not None:
        validate_name(handle, "checkpoint handle", MAX_HANDLE_CHARS)
    store = _query_store(query)
    output = validate_identifier(
        output, "output table name", getattr(store, "identifier_dialect", None), table=True
    )
    # The actors load the model on every node, from the artifact root: refused first when
    # it is this machine's disk and the cluster has others.
    check_reachable(store, what=f"pr.predict of {model!r}")
    batch_size = _positive_int(batch_size, "batch_size")
    if concurrency is not None:
        concurrency = _positive_int(concurrency, "concurrency")
    num_gpus = _num_gpus(num_gpus)
    # Imported here, not at the top: the actors import this module for BatchWriter, and
    # the progress bar's module imports Ray Train (0.1 s per actor start, for nothing).
    from .trainers.progress import progress_on

    shown = progress_on(progress)
    # Resolved here, where the user's environment is, and handed to every actor.
    trusted = trusted_module_names(trusted_modules)
    files = store.models.files(model, version, handle)  # which version, and its files
    if num_gpus and files.framework in CPU_ONLY_FRAMEWORKS:
        raise ConfigError(
            f"{files.name} version {files.version} is a {files.framework} model, which predicts "
            f"on CPU only, but num_gpus={num_gpus:g}; pass num_gpus=0"
        )
    if num_gpus:
        from .trainers.cluster_shape import read_shape

        check_gpus(num_gpus, read_shape())
    key = _query_key(query)
    passthrough = _passthrough(columns, query, key)
    features = _features(store, files, query, key, passthrough)
    if files.framework == "torch":  # refused here, before any actor imports anything
        check_architecture(_meta(store, files).get("architecture"), trusted)
    _check_output(store, output, key, passthrough)

    sized = concurrency is None  # the pool is fitted to the query's rows (see _pool_size)
    if num_gpus and concurrency is None:
        concurrency = max(1, int(cluster_gpus() // num_gpus))  # one actor per GPU share
    actors, actor_cpus = _plan(concurrency)
    created_at = dt.datetime.now(dt.timezone.utc)
    writer = store.bulk_writer(
        output,
        key=[key, MODEL_COLUMN, VERSION_COLUMN],
        shared=_constant_row(files.name, files.version, created_at),
    )
    # Committed once every batch is written; aborted (nothing staged stays) when one fails.
    with writer:
        spec = _Spec(
            writer=writer,
            model=files.name,
            version=files.version,
            files=files,
            allow_pickle=bool(allow_pickle),
            trusted_modules=trusted,
            features=features,
            key=key,
            passthrough=passthrough,
            output=output,
            created_at=created_at,
            batch_size=batch_size,
            num_gpus=num_gpus,
            raw_rows=bool(_meta(store, files).get("preprocess")),
        )
        with _progress(shown, files, query) as bar:
            written, counts = _run(query, spec, actors, actor_cpus, bar, sized)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("Ray Data's stages:\n%s", counts.stats())
    seconds = round(time.perf_counter() - started, 3)
    logger.info("wrote %d prediction(s) into %r in %.1f s", written, output, seconds)
    return PredictResult(files.name, files.version, output, written, seconds)


def _progress(shown: bool, files: ModelFiles, query: Any) -> LiveBar:
    """The run's progress line (off: a bar that shows nothing), out of the query's row
    count when the store can count it."""
    from .trainers.progress import LiveBar

    total = None
    if shown:
        try:
            total = int(query.count())
        except Exception:  # a count is a nicety: the bar then shows rows and rows/s only
            logger.debug("no row count for the progress line", exc_info=True)
    return LiveBar(f"predict {files.name} v{files.version}", total=total, unit="row", enabled=shown)


def _run(
    query: Any,
    spec: _Spec,
    actors: int,
    actor_cpus: float,
    bar: LiveBar | None = None,
    sized: bool = False,
) -> tuple[int, ray.data.Dataset]:
    """Run the actors over the query: the rows they wrote (or staged) and the dataset;
    ``bar`` shows the rows written so far.
    ``sized``: no more ``actors`` than the query's planned rows give batches to."""
    # No select_columns here: Ray Data runs a projection as a separate 1-CPU task that
    # cannot fit beside the actors on a small cluster (measured: a silent hang on 2 CPUs);
    # each actor picks its columns from the batch instead.
    rows = query.to_dataset(num_cpus=READ_CPUS)
    if sized:
        actors = _pool_size(actors, query.lineage().get("rows"), spec.batch_size)
    logger.info(
        "predicting with %s version %d into %r: %d actor(s) x %g CPU, reads %g CPU each",
        spec.model,
        spec.version,
        spec.output,
        actors,
        actor_cpus,
        READ_CPUS,
    )
    # Read tasks hand on blocks of a few batches, not a whole shard each: the actors start
    # on the first rows while the rest are read.
    rows.context.target_max_block_size = READ_BLOCK_BYTES
    counts = rows.map_batches(
        BatchWriter,
        fn_constructor_args=(spec,),
        batch_size=spec.batch_size,
        batch_format="pyarrow",
        # All actors start at once (each pays its imports and model load in parallel
        # with the reads); a small query read in one block may scale the pool down.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors, initial_size=actors),
        **actor_resources(actor_cpus, spec.num_gpus),
    )
    # The actor's own exception reaches the driver (Ray's wrapper keeps only its text).
    counts.context.raise_original_map_exception = True
    written = 0
    failure: BaseException | None = None
    try:
        with planned_execution():
            for batch in counts.iter_batches(batch_size=None, batch_format="pyarrow"):
                written += int(np.asarray(batch.column("rows")).sum())
                if bar is not None:
                    bar.show(written)
    except Exception as exc:  # the actor's own error, not Ray's wrapper around it
        failure = _original(exc, spec.model)
    if failure is not None:
        # The failed run's frames, reachable from the tracebacks, hold the actor pool's
        # handles, and a live handle keeps its actor and its CPUs: while the caller holds
        # the exception, the next run on a small cluster waits for CPUs that never come
        # back (seen on 2 CPUs). Drop those frames and the dataset before raising.
        del counts, rows
        _drop_frames(failure)
        gc.collect()
        raise failure
    return written, counts


def _pool_size(actors: int, rows: Any, batch_size: int) -> int:
    """How many of ``actors`` to start for ``rows`` planned rows (None: unknown): at most
    one per batch. An actor that would never get a batch pays its start-up (a process,
    the framework's import, the model load) on CPUs the busy ones and the reads need."""
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        return actors
    return max(1, min(actors, -(-rows // batch_size)))


@dataclass(frozen=True)
class _Spec:
    """What each actor needs: where to write, which model, and which columns."""

    writer: BulkWriter  # the datastore's: each actor writes through a part of its own
    model: str
    version: int
    files: ModelFiles  # loaded with no database connection
    allow_pickle: bool
    trusted_modules: tuple[str, ...]  # modules a torch class may be imported from
    features: list[str] | None
    key: str
    passthrough: list[str]
    output: str
    created_at: dt.datetime
    batch_size: int = DEFAULT_BATCH_SIZE
    num_gpus: float = 0.0  # GPUs per actor; the model is loaded on "cuda" when > 0
    raw_rows: bool = False  # the model has a preprocess: it gets every column of the rows


class BatchWriter:
    """The actor ``pr.predict`` runs: loads the model once, then predicts and upserts each
    batch, returning only how many rows it wrote."""

    def __init__(self, spec: _Spec) -> None:
        self.spec = spec
        # With GPUs, Ray shows the actor only its own (CUDA_VISIBLE_DEVICES): "cuda" is it.
        device = {"device": "cuda"} if spec.num_gpus else {}
        self.model = spec.files.load(
            allow_pickle=spec.allow_pickle, trusted_modules=spec.trusted_modules, **device
        )
        self.proba: bool | None = None  # whether the model gives probabilities: first batch
        self.part = spec.writer.part()  # opened by its first write, in this actor

    def __call__(self, batch: pa.Table) -> pa.Table:
        if batch.num_rows == 0:
            return _counted(0)
        return _counted(self.part.write(self.predictions(batch)))

    def predictions(self, batch: pa.Table) -> pa.Table:
        """The output rows for ``batch``: key, model, version, predictions, created_at."""
        spec, n = self.spec, batch.num_rows
        if spec.raw_rows:  # the model's own preprocess makes its inputs from every column
            inputs: Any = batch
        elif spec.features is None:  # registered without feature names: columns in order
            inputs = _matrix(batch, [c for c in batch.column_names if c != spec.key])
        else:
            inputs = batch.select(spec.features).to_pandas()
        shared = _constant_row(spec.model, spec.version, spec.created_at)
        out: dict[str, pa.Array] = {
            spec.key: batch.column(spec.key).combine_chunks(),
            MODEL_COLUMN: pa.repeat(shared.column(MODEL_COLUMN)[0], n),
            VERSION_COLUMN: pa.repeat(shared.column(VERSION_COLUMN)[0], n),
        }
        out.update(_named("prediction", _joined(np.asarray(self.model.predict(inputs)))))
        probabilities = self._probabilities(inputs)
        if probabilities is not None:
            classes = getattr(self.model, "classes", None)  # a list, or an array (HF)
            if classes is None:
                classes = range(probabilities.shape[1])
            out.update(_proba_columns(probabilities, list(classes)))
        out[CREATED_COLUMN] = pa.repeat(shared.column(CREATED_COLUMN)[0], n)
        for column in spec.passthrough:
            if column not in out:
                out[column] = batch.column(column).combine_chunks()
        return pa.table(out)

    def _probabilities(self, inputs: Any) -> np.ndarray | None:
        if self.proba is False or not hasattr(self.model, "predict_proba"):
            return None
        try:
            values = np.asarray(self.model.predict_proba(inputs))
        except ConfigError:  # a regressor (or a classifier without probabilities)
            self.proba = False
            return None
        self.proba = True
        return values.reshape(len(values), -1)


def _constant_row(model: str, version: int, created_at: dt.datetime) -> pa.Table:
    """The output columns every row of a run shares (model, version, created_at), as one
    row: repeated into each batch's rows, and the bulk writer's shared columns."""
    return pa.table(
        {
            MODEL_COLUMN: pa.array([model], pa.string()),
            VERSION_COLUMN: pa.array([version], pa.int64()),
            CREATED_COLUMN: pa.array([created_at], pa.timestamp("us", "UTC")),
        }
    )


def _counted(rows: int) -> pa.Table:
    """What an actor hands back: how many rows it wrote (or staged)."""
    return pa.table({"rows": pa.array([rows], pa.int64())})


def _named(prefix: str, values: np.ndarray) -> dict[str, pa.Array]:
    """One column for a 1-D result (or one output), else ``<prefix>_<i>`` per output."""
    if values.ndim > 1 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 1:
        return {prefix: _arrow(values)}
    flat = values.reshape(len(values), -1)
    return {f"{prefix}_{i}": _arrow(flat[:, i]) for i in range(flat.shape[1])}


def _joined(values: np.ndarray) -> np.ndarray:
    """Per-row sequences (a token-classification model's tags per word) as one
    space-separated string per row, which every backend can store."""
    if values.dtype != object or not any(isinstance(v, (list, tuple, np.ndarray)) for v in values):
        return values
    return np.array([" ".join(str(t) for t in v) for v in values], dtype=object)


def _proba_columns(probabilities: np.ndarray, classes: list[Any]) -> dict[str, pa.Array]:
    names = [f"proba_{_safe(c)}" for c in classes]
    if len(classes) != probabilities.shape[1] or len(set(names)) != len(names):
        names = [f"proba_{i}" for i in range(probabilities.shape[1])]
    return {n: _arrow(probabilities[:, i]) for i, n in enumerate(names)}


def _safe(value: Any) -> str:
    """A class label as part of a column name: letters, digits and ``_`` only."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", str(value.item() if hasattr(value, "item") else value))
    return text[:48] or "_"


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype.kind == "f":
        values = values.astype(np.float64, copy=False)  # one SQL type for every flavor
    elif values.dtype.kind in "iu":
        values = values.astype(np.int64, copy=False)
    return pa.array(values)


def _matrix(batch: pa.Table, names: list[str]) -> np.ndarray:
    return np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in names])


# -- checks before anything is read --------------------------------------------------------
def _query_store(query: Any) -> Any:
    """The datastore ``query`` reads from, where the predictions are written back."""
    store = store_of(query)
    if store is None or not hasattr(query, "to_dataset"):
        raise ConfigError(
            f"pr.predict needs a datastore query (store.table / store.sql), got "
            f"{type(query).__name__}; predictions are written back into its datastore"
        )
    return store


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def _num_gpus(value: Any) -> float:
    """``num_gpus`` as Ray takes it: a number >= 0, a whole number above 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(
            f"num_gpus must be a number >= 0 (GPUs per prediction actor), got {value!r}"
        )
    if value > 1 and not float(value).is_integer():
        raise ConfigError(
            f"num_gpus={value!r}: Ray gives an actor a fraction of one GPU or whole GPUs; "
            f"use a value up to 1 or a whole number such as {int(value)}"
        )
    return float(value)


def check_gpus(num_gpus: float, shape: ClusterShape) -> None:
    """Refuse ``num_gpus`` per actor when no node of the cluster ``shape`` has, or can be
    given by its autoscaler, that many GPUs: no actor could ever start."""
    from .trainers.devices import largest_node_gpus

    largest = largest_node_gpus(shape)
    if num_gpus > largest:
        fix = f"use num_gpus <= {largest:g}" if largest else "use num_gpus=0 (CPU)"
        raise ResourceError(
            f"num_gpus={num_gpus:g} per prediction actor, but the largest node has {largest:g} "
            f"GPU(s), counting node types the autoscaler can add ({shape.describe()}): no "
            f"actor could ever start; {fix}"
        )


def actor_resources(actor_cpus: float, num_gpus: float) -> dict[str, float]:
    """The resources each prediction actor asks for, as ``map_batches`` takes them; without
    GPUs exactly what it asked before GPUs existed here (``num_cpus`` only)."""
    resources = {"num_cpus": actor_cpus}
    if num_gpus:
        resources["num_gpus"] = num_gpus
    return resources


def _query_key(query: Any) -> str:
    key = getattr(query, "key", None)
    if not key:
        raise InvalidKey(
            f"pr.predict writes one row per key, but {query!r} has no key; pass key=<unique "
            "column> to store.table / store.sql (or select the table's primary key)"
        )
    reserved = {MODEL_COLUMN, VERSION_COLUMN, CREATED_COLUMN}
    if key in reserved or _PREDICTION.fullmatch(key):
        raise ConfigError(
            f"the query's key {key!r} clashes with an output column ({sorted(reserved)}, "
            "prediction*, proba_*); alias it in the query, e.g. SELECT model AS model_id"
        )
    return key


def _passthrough(columns: Sequence[str] | None, query: Any, key: str) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise ConfigError(f"columns must be a list of column names, got {columns!r}")
    available = list(query.columns)
    missing = [c for c in columns if c not in available]
    if missing:
        raise ColumnNotFound(f"columns={missing} are not in the query; its columns are {available}")
    clashes = [
        c
        for c in columns
        if c in (MODEL_COLUMN, VERSION_COLUMN, CREATED_COLUMN) or _PREDICTION.fullmatch(c)
    ]
    if clashes:
        raise ConfigError(
            f"columns={clashes} would overwrite output columns of the same name; alias them "
            "in the query"
        )
    return [c for c in dict.fromkeys(columns) if c != key]


def _meta(store: Any, record: ModelFiles) -> dict[str, Any]:
    """The version's ``pinnacle.json`` (empty when it has none)."""
    meta_path = Path(store.models.checkpoint_dir(record.name, record.version)) / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return meta if isinstance(meta, dict) else {}


def _features(
    store: Any, record: ModelFiles, query: Any, key: str, passthrough: list[str]
) -> list[str] | None:
    """The model's features, all present in the query; None when it has no names (the
    query's other columns are then its inputs, in order)."""
    meta = _meta(store, record)
    # A text model (Hugging Face) reads its text columns; its actor gets them as raw text.
    features = (
        (meta.get("features") or meta.get("text_columns")) if isinstance(meta, dict) else None
    )
    available = list(query.columns)
    if not features:
        inputs = [c for c in available if c != key and c not in passthrough]
        logger.info(
            "%s version %d was registered without feature names; its inputs are the query's "
            "columns %s, in that order",
            record.name,
            record.version,
            inputs,
        )
        return None
    missing = [f for f in features if f not in available]
    if missing and not meta.get("preprocess"):  # a preprocess makes them from the rows
        raise ColumnNotFound(
            f"{record.name} version {record.version} needs feature(s) {missing}, which the "
            f"query does not select; its columns are {available}. The model was trained on "
            f"{list(features)}"
        )
    return list(features)


def _check_output(store: Any, output: str, key: str, passthrough: list[str]) -> None:
    """An existing output table must be one these rows fit (created by a previous run)."""
    if output not in store.tables():
        return
    existing = list(store.table(output).columns)
    needed = [key, MODEL_COLUMN, VERSION_COLUMN, CREATED_COLUMN, *passthrough]
    missing = [c for c in needed if c not in existing]
    if missing:
        raise ConfigError(
            f"output table {output!r} exists without column(s) {missing} (its columns are "
            f"{existing}); write to a new table, or one an earlier pr.predict made"
        )


def _plan(concurrency: int | None) -> tuple[int, float]:
    """(actors, CPUs per actor). The actors hold their CPUs for the whole run; the reads
    hold none (``READ_CPUS``), so they always start, also beside other runs' actors
    (runs that each kept CPUs for their own reads took every CPU between them on 2 CPUs
    and waited forever). The reads mostly wait on the database; their CPU time is shared
    with the actors they feed, which wait for them anyway."""
    from ray.train import ScalingConfig

    from .trainers.resources import ClusterResources, plan_resources

    cpus = cluster_cpus()
    actors = concurrency or max(1, int(cpus))
    scaling = ScalingConfig(num_workers=actors)
    plan = plan_resources(scaling, ClusterResources(cpus, cluster_gpus()), reads=False)
    actor_cpus = float((plan.scaling_config.resources_per_worker or {}).get("CPU", 1.0))
    return actors, actor_cpus


def _drop_frames(exc: BaseException) -> None:
    """Remove the local tracebacks from ``exc`` and the exceptions it chains to (the
    actor's own traceback travels in its message, not in these frames)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _original(exc: BaseException, model: str) -> BaseException:
    """The exception an actor raised (its own type), found inside Ray's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PinnacleError):
            found = current
            break
        if not type(current).__module__.startswith("ray."):
            found = current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    if found is not exc:
        found.add_note(f"(raised while predicting with {model!r} in a Ray Data actor)")
    return found
