"""``ModelRegistry``: model versions, checkpoint handles, metrics and lineage in the datastore.

Registering copies the artifact folders under ``<artifact root>/<name>/<uuid>/`` and hashes
them first; only then is a version number claimed (``max + 1``, an insert-only row that a
concurrent registrar cannot also get), the checkpoint rows inserted and the version marked
``ready``. A failure anywhere removes the rows and the copied files, so nothing half-written
is visible, no file is orphaned, and no version number is burnt. A registrar killed before it
can clean up leaves a hidden ``pending`` row and a folder; :meth:`ModelRegistry.cleanup`
removes them once they are older than a threshold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import pyarrow as pa
import pyarrow.fs as pafs

from .._internal.clock import as_utc
from .._internal.json_text import from_json, to_json
from .._internal.secrets import mask
from ..datastore.artifact_root import DB_SCHEME, normalize_root
from ..datastore.base import Datastore
from ..errors import ConfigError, DuplicateKey, ModelNotFound, RegistryError, TableNotFound
from .aliases import DEFAULT_ALIAS, AliasBook, HandleMove, is_checkpoint_handle, validate_alias
from .artifacts import Manifest
from .cards import CARD_FACTS, CARD_KEY, CARDS, build_card
from .cleanup import (
    DEFAULT_OLDER_THAN,
    CleanupReport,
    older_than_delta,
    remove_leftovers,
    remove_old_runs,
)
from .db_filesystem import database_filesystem
from .flavors import Predictor
from .history import (
    history_frame,
    history_rows,
    read_history,
    trial_history_schema,
    version_history_schema,
    write_history,
)
from .records import (
    CheckpointRecord,
    CheckpointSpec,
    ModelVersion,
    validate_framework,
    validate_handle,
    validate_name,
    validate_version,
)
from .schema import (
    CHECKPOINT_KEY,
    CHECKPOINTS,
    META,
    META_KEY,
    MODEL_KEY,
    MODELS,
    SCHEMA_VERSION,
    RegistryTables,
)
from .storage import ArtifactRoot, ModelFiles, RunStorage
from .sweeps import SweepTrial, read_trials, write_trials

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModelRegistry"]

logger = logging.getLogger("pinnacle_ray.registry")

MAX_CLAIM_ATTEMPTS = 50
PENDING, READY = "pending", "ready"


class ModelRegistry:
    """Versions of models trained on a datastore, stored in that datastore (``store.models``).

    Example::

        store = pr.connect("sqlite:///shop.db")
        v = store.models.register(
            "mlp", "torch", "out/model", metrics={"valid/loss": 0.12},
            checkpoints={"best": CheckpointSpec("out/ckpt_3", step=300)},
        )
        store.models.list("mlp")                      # newest first
        store.models.get("mlp", handle="best")        # a CheckpointRecord
        model = store.models.load("mlp", handle="best")
        model.predict(frame)
        store.models.promote("mlp", version=1, handle="production")
        store.models.load("mlp")                      # production when set, else the latest
        store.models.rollback("mlp")                  # production back where it was before

    ``prefix`` names the tables (``<prefix>_models``, ``<prefix>_checkpoints``,
    ``<prefix>_registry_meta``); ``artifact_root`` defaults to the store's.
    """

    def __init__(
        self,
        store: Datastore,
        *,
        artifact_root: str | os.PathLike[str] | None = None,
        prefix: str = "pinnacle",
    ) -> None:
        self.store = store
        self.artifact_root = (
            normalize_root(artifact_root) if artifact_root is not None else store.artifact_root
        )
        self.tables = RegistryTables(prefix)
        self._files = ArtifactRoot(
            self.artifact_root,
            _database_filesystem(store, self.artifact_root),
            getattr(store, "legacy_artifact_root", None),
        )
        self._aliases = AliasBook(store, self.tables.handle_moves)
        self._ready = False

    def __repr__(self) -> str:
        return f"ModelRegistry({self.store.url!r}, artifact_root={self.artifact_root!r})"

    # -- writing ---------------------------------------------------------------------------
    def register(
        self,
        name: str,
        framework: str,
        artifact_dir: str | os.PathLike[str],
        *,
        metrics: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        parent_version: int | None = None,
        checkpoints: Mapping[str, CheckpointSpec] | None = None,
        history: Sequence[Any] | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Store the model in local folder ``artifact_dir`` (and its ``checkpoints`` by handle)
        as the next version of ``name``; it is visible only once everything is stored.

        ``history`` is every report of the run (metric dicts or report-stream ``Report``s),
        read back by :meth:`metrics`; ``card`` adds what only the trainer knows to the
        version's model card (``features``, ``label``, ``listen``, ``mode``, ``description``;
        see :meth:`card`)."""
        name = validate_name(name)
        framework = validate_framework(framework)
        parent_version = validate_version(parent_version)
        source = _local_dir(artifact_dir, "artifact_dir")
        specs = _checkpoint_specs(checkpoints)
        reports = history_rows(history or [])
        facts = _card_facts(card)
        texts = {
            "metrics": to_json(dict(metrics or {})),
            "config": to_json(mask(dict(config or {}))),
            "lineage": to_json(mask(dict(lineage or {}))),
        }
        self._ensure(create=True)
        folder = f"{name}/{uuid.uuid4().hex}"  # never reused, so a failure can delete it all
        claimed: int | None = None
        try:
            # One upload per distinct folder: handles naming the same path share it.
            stored: dict[Path, tuple[str, Manifest]] = {}
            stored[source] = self._files.upload(source, f"{folder}/model")
            model_uri, model = stored[source]
            handles = {}
            for handle, (path, spec) in specs.items():
                if path not in stored:
                    stored[path] = self._files.upload(
                        path, f"{folder}/checkpoints/{len(stored) - 1}"
                    )
                uri, manifest = stored[path]
                handles[handle] = (spec, uri, manifest)
            row = {
                "name": name,
                "framework": framework,
                "created_at": dt.datetime.now(dt.timezone.utc),
                "status": PENDING,
                **texts,
                "artifact_uri": model_uri,
                "sha256": model.sha256,
                "size_bytes": model.size,
                "parent_version": parent_version,
            }
            claimed = self._claim(row)
            row.update(version=claimed)
            owner = {"name": name, "version": claimed}
            if reports:
                write_history(
                    self.store, self.tables.history, owner, version_history_schema(), reports
                )
            self._write_card(row, facts)
            if handles:
                rows = [
                    {
                        "name": name,
                        "version": claimed,
                        "handle": handle,
                        "step": spec.step,
                        "metrics": to_json(spec.metrics),
                        "artifact_uri": uri,
                        "sha256": manifest.sha256,
                    }
                    for handle, (spec, uri, manifest) in handles.items()
                ]
                self.store.insert(
                    self.tables.checkpoints, _arrow(rows, CHECKPOINTS), CHECKPOINT_KEY
                )
            row["status"] = READY
            self.store.write(self.tables.models, _arrow([row], MODELS), MODEL_KEY)
        except BaseException:
            if claimed is not None:
                self._release(name, claimed)
            self._files.delete(folder)
            raise
        logger.info("registered %s version %d (%s)", name, claimed, ", ".join(handles) or "-")
        return _version(row, sorted(handles))

    def delete(self, name: str, version: int | None = None) -> list[int]:
        """Remove version ``version`` of ``name`` (every version when None): its rows first,
        so it is gone for readers at once, then its files. The versions removed."""
        name = validate_name(name)
        version = validate_version(version)
        if version is not None:
            rows = [self._version_row(name, version)]
        else:
            self._version_row(name, None)  # ModelNotFound (with the known names) if none
            rows = self._read(self.tables.models, {"name": name})
        removed = []
        for row in rows:
            where = {"name": name, "version": int(row["version"])}
            self.store.delete(self.tables.checkpoints, where)
            self.store.delete(self.tables.models, where)
            self._delete_extras(where)
            removed.append(int(row["version"]))
            try:
                # Only a folder under the root: a tampered row must not delete anything else.
                rel = self._files.relative(row["artifact_uri"] or "")
                if rel.endswith("/model"):
                    self._files.delete(rel[: -len("/model")])
            except Exception as exc:  # the version is already gone; say what is left
                logger.warning(
                    "removed %s version %s, but not its files: %s", name, row["version"], exc
                )
        logger.info("removed %s version(s) %s", name, sorted(removed))
        return sorted(removed)

    def cleanup(
        self,
        older_than: dt.timedelta | float = DEFAULT_OLDER_THAN,
        *,
        runs_older_than: dt.timedelta | float | None = None,
    ) -> CleanupReport:
        """Remove what killed registrations left: ``pending`` versions and artifact folders
        no row references, older than ``older_than`` (a timedelta or seconds; default 1 h).

        Their version numbers are free again. Anything younger is left alone, so a live
        registration is never touched (keep the threshold above the longest upload); safe
        to run concurrently. With ``runs_older_than`` (e.g. ``timedelta(days=7)``), Ray Train
        run folders in the shared run storage (:meth:`run_storage`: the database, or the
        ``s3://``/``gs://``/``file://`` root) untouched for that long go too: registered
        versions keep their own copies, and Ray never deletes a run's checkpoints itself.
        Returns what was removed.
        """
        delta = older_than_delta(older_than)
        runs_delta = None if runs_older_than is None else older_than_delta(runs_older_than)
        runs: list[str] = []
        storage = self.run_storage()
        if runs_delta is not None and storage.shared and storage.storage_path is not None:
            runs = remove_old_runs(storage.storage_filesystem, storage.storage_path, runs_delta)
            if runs:
                logger.info("removed %d old Ray Train run folder(s)", len(runs))
        if self.artifact_root.startswith(f"{DB_SCHEME}://"):
            # Chunks of blobs whose writer died before committing (registrations and Ray
            # Train checkpoint uploads alike): invisible, but they take space.
            orphans = self.store.blob_store().remove_orphans(delta.total_seconds())  # type: ignore[attr-defined]
            if orphans:
                logger.info("removed the chunks of %d unfinished blob(s)", orphans)
        if not self._ensure(create=False):
            return CleanupReport(runs=runs)
        report = remove_leftovers(self.store, self.tables, self._files, delta)
        return dataclasses.replace(report, runs=runs)

    def run_storage(self) -> RunStorage:
        """Where Ray Train should keep run checkpoints so every node of a cluster reads them:
        the in-database store, or the ``s3://``/``gs://``/``file://`` artifact root; ``(None,
        None, shared=False)`` (Ray's local default) for SQLite and local-folder roots."""
        return self._files.run_storage()

    # -- reading ---------------------------------------------------------------------------
    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Ready versions (of ``name``, or of every model), newest first."""
        if not self._ensure(create=False):
            return []
        where: dict[str, Any] = {"status": READY}
        if name is not None:
            where["name"] = validate_name(name)
        rows = self._read(self.tables.models, where)
        handles = self._handles({"name": name} if name is not None else {})
        versions = [_version(r, handles.get((r["name"], r["version"]), [])) for r in rows]
        return sorted(versions, key=lambda v: (as_utc(v.created_at), v.version), reverse=True)

    @overload
    def get(self, name: str, version: int | None = None, handle: None = None) -> ModelVersion: ...

    @overload
    def get(self, name: str, version: int | None, handle: str) -> CheckpointRecord: ...

    @overload
    def get(self, name: str, version: int | None = None, *, handle: str) -> CheckpointRecord: ...

    def get(
        self, name: str, version: int | None = None, handle: str | None = None
    ) -> ModelVersion | CheckpointRecord:
        """A version (the latest ready one when ``version`` is None), or with ``handle`` the
        :class:`CheckpointRecord` of that version's checkpoint; a promoted handle
        (``production``, ...) gives the :class:`ModelVersion` it points at."""
        name = validate_name(name)
        version = validate_version(version)
        handle = validate_handle(handle) if handle is not None else None
        if handle is not None and not is_checkpoint_handle(handle):
            aliased = self._aliased_version(name, version, handle)
            if aliased is not None:
                return self.get(name, aliased)
        row = self._version_row(name, version)
        checkpoints = self._read(self.tables.checkpoints, {"name": name, "version": row["version"]})
        if handle is None:
            return _version(row, sorted(c["handle"] for c in checkpoints))
        found = [c for c in checkpoints if c["handle"] == handle]
        if not found:
            known = sorted(c["handle"] for c in checkpoints)
            aliases = sorted(self._aliases.current(name))
            raise ModelNotFound(
                f"model {name!r} version {row['version']} has no checkpoint handle {handle!r}; "
                + (f"its handles are {known}" if known else "it was registered without checkpoints")
                + (f"; promoted handles of {name!r}: {aliases}" if aliases else "")
            )
        c = found[0]
        return CheckpointRecord(
            name=name,
            version=int(c["version"]),
            handle=handle,
            step=int(c["step"] or 0),
            metrics=from_json(c["metrics"]),
            uri=c["artifact_uri"],
            sha256=c["sha256"],
        )

    def checkpoint_dir(
        self, name: str, version: int | None = None, handle: str | None = None
    ) -> str:
        """A local folder holding a checksum-verified copy of the version's artifact (or of its
        ``handle`` checkpoint), e.g. to resume training; remote files are downloaded first."""
        uri, digest = self._artifact(name, version, handle)
        return self._files.local_copy(uri, digest)

    def load(
        self,
        name: str,
        version: int | None = None,
        handle: str | None = None,
        *,
        allow_pickle: bool = False,
        trusted_modules: Any = None,
        **kwargs: Any,
    ) -> Predictor:
        """The model, checksums verified, loaded by its framework's flavor (``.predict(batch)``).

        Which one: :meth:`resolve` (with neither ``version`` nor ``handle``, the version
        ``production`` points at when it is set, else the latest); with a checkpoint
        ``handle``, that checkpoint's weights in the version's model. ``kwargs`` go to the
        flavor (torch: ``model=<instance>`` as a template). Only formats that run no code
        load unless ``allow_pickle=True`` (pickle, joblib, ``torch.save`` files, untrusted
        skops types): otherwise ``UnsafeArtifact``. A torch class that is not a standard
        layer is imported only from ``trusted_modules`` (module names, the class, or its
        module; also ``PINNACLE_RAY_TRUSTED_MODULES``), else ``UnsafeArtifact`` before the
        import."""
        files = self.files(name, version, handle)
        return files.load(allow_pickle=allow_pickle, trusted_modules=trusted_modules, **kwargs)

    def files(self, name: str, version: int | None = None, handle: str | None = None) -> ModelFiles:
        """The version :meth:`load` would load (``.name``, ``.version``), where its files
        live and their checksums: picklable, so a Ray worker loads it with no database
        connection (``files.load()``, as ``load``)."""
        record, checkpoint_handle = self.resolve(name, version, handle)
        weights = None
        if checkpoint_handle is not None:
            checkpoint = self.get(name, record.version, checkpoint_handle)
            assert isinstance(checkpoint, CheckpointRecord)
            weights = (checkpoint.uri, checkpoint.sha256)
        return ModelFiles(
            record.name,
            record.version,
            self._files,
            record.framework,
            (record.artifact_uri, record.sha256),
            weights,
        )

    def resolve(
        self, name: str, version: int | None = None, handle: str | None = None
    ) -> tuple[ModelVersion, str | None]:
        """The version :meth:`load` (and ``pr.predict``) uses, and the checkpoint handle whose
        weights it takes (None: the version's own artifact).

        With neither ``version`` nor ``handle``: the version ``production`` points at when
        it is set, else the latest. A promoted ``handle`` gives the version it points at; a
        checkpoint handle (``best``, ``latest``, ``epoch_<n>``) that checkpoint of ``version``
        (default: the latest version).
        """
        name = validate_name(name)
        version = validate_version(version)
        handle = validate_handle(handle) if handle is not None else None
        if version is None and handle is None:
            version = self._aliases.version_of(name, DEFAULT_ALIAS) if self._exists() else None
            if version is not None:
                logger.info("%s: using version %d (handle %r)", name, version, DEFAULT_ALIAS)
        elif handle is not None and not is_checkpoint_handle(handle):
            aliased = self._aliased_version(name, version, handle)
            if aliased is not None:
                version, handle = aliased, None
        if handle is None:
            record = self.get(name, version)
            assert isinstance(record, ModelVersion)
            return record, None
        checkpoint = self.get(name, version, handle)  # raises when the handle does not exist
        record = self.get(name, checkpoint.version)
        assert isinstance(record, ModelVersion)
        return record, handle

    # -- metric history and model cards ---------------------------------------------------
    def metrics(self, name: str, version: int | None = None) -> pd.DataFrame:
        """Every report of the run that made ``version`` of ``name`` (default: the latest),
        one row per report in order: ``step``, ``epoch``, ``time`` (UTC), ``checkpoint``, then
        a column per metric. Empty (same leading columns) for a version registered without
        a history.

        Example::

            frame = store.models.metrics("mlp")
            frame.plot(x="step", y=["train/loss", "valid/loss"])
        """
        name = validate_name(name)
        version = validate_version(version)
        row = self._version_row(name, version)
        owner = {"name": name, "version": int(row["version"])}
        return history_frame(read_history(self.store, self.tables.history, owner))

    def trial_metrics(self, sweep: str, trial_id: str | None = None) -> pd.DataFrame:
        """Every report of the trials of ``sweep`` (or of one ``trial_id``), as
        :meth:`metrics`, with a ``trial_id`` column first; trials in the order
        :meth:`sweeps` lists them."""
        import pandas as pd

        trials = [t for t in self.sweeps(sweep) if trial_id is None or t.trial_id == trial_id]
        if not trials:
            known = [t.trial_id for t in self.sweeps(sweep)]
            raise ModelNotFound(
                f"no sweep named {sweep!r} in {self.store.url}"
                if not known
                else f"sweep {sweep!r} has no trial {trial_id!r}; its trials are {known}"
            )
        frames = []
        for t in trials:
            owner = {"sweep": t.sweep, "trial_id": t.trial_id}
            frame = history_frame(read_history(self.store, self.tables.trial_history, owner))
            frame.insert(0, "trial_id", t.trial_id)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def record_trial_history(self, sweep: str, trial_id: str, reports: Sequence[Any]) -> int:
        """Store every report of one sweep trial (replacing what it had); the rows written."""
        owner = {"sweep": validate_name(sweep), "trial_id": str(trial_id)}
        return write_history(
            self.store,
            self.tables.trial_history,
            owner,
            trial_history_schema(),
            history_rows(reports),
        )

    def card(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The model card of ``version`` of ``name`` (default: the latest): framework,
        features and label, metrics (the listened one first), the data it was trained on
        (query, rows, key watermark, datastore URL with the password masked), created_at,
        and how to load and predict. ``card_text(card)`` renders it.

        A version registered before cards existed gets one built from its record."""
        name = validate_name(name)
        version = validate_version(version)
        row = self._version_row(name, version)
        where = {"name": name, "version": int(row["version"])}
        if self.tables.cards in self.store.tables():
            found = self._read(self.tables.cards, where)
            if found:
                return from_json(found[0]["card"])
        return _card_of(row, {})

    def _write_card(self, row: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
        card = _card_of(row, facts)
        data = {"name": row["name"], "version": row["version"], "card": to_json(card)}
        self.store.write(self.tables.cards, _arrow([data], CARDS), CARD_KEY)

    def _delete_extras(self, where: Mapping[str, Any]) -> None:
        """Remove a version's history and card rows (tables that exist only)."""
        existing = set(self.store.tables())
        for table in (self.tables.history, self.tables.cards):
            if table in existing:
                self.store.delete(table, dict(where))

    # -- promoted handles (aliases) --------------------------------------------------------
    def promote(
        self, name: str, version: int | None = None, handle: str = DEFAULT_ALIAS
    ) -> ModelVersion:
        """Point ``handle`` (default ``production``) at ``version`` (default: the latest); the
        move is kept in the handle's history, so :meth:`rollback` can undo it.

        ``latest``, ``best`` and ``epoch_<n>`` name checkpoints and cannot be promoted to.
        """
        name = validate_name(name)
        version = validate_version(version)
        handle = validate_alias(handle)
        record = self.get(name, version)  # ModelNotFound names the versions that exist
        assert isinstance(record, ModelVersion)
        self._aliases.promote(name, handle, record.version)
        return record

    def rollback(self, name: str, handle: str = DEFAULT_ALIAS) -> ModelVersion:
        """Point ``handle`` back at the version it pointed at before its last promote; each
        further rollback goes one promote further back."""
        name = validate_name(name)
        handle = validate_alias(handle)
        move = self._aliases.rollback(name, handle)
        record = self.get(name, move.version)
        assert isinstance(record, ModelVersion)
        return record

    def aliases(self, name: str) -> dict[str, int]:
        """The promoted handles of ``name`` that point at a version, e.g. ``{"production": 3}``."""
        return self._aliases.current(validate_name(name))

    def history(self, name: str, handle: str = DEFAULT_ALIAS) -> list[HandleMove]:
        """Every promote and rollback of ``handle``, oldest first."""
        return self._aliases.history(validate_name(name), validate_alias(handle))

    def _aliased_version(self, name: str, version: int | None, handle: str) -> int | None:
        aliased = self._aliases.version_of(name, handle) if self._exists() else None
        if aliased is not None and version is not None and version != aliased:
            raise ConfigError(
                f"version={version} and handle={handle!r} disagree: {handle!r} points at "
                f"version {aliased} of {name!r}. Pass one of them"
            )
        return aliased

    def _exists(self) -> bool:
        return self._ensure(create=False)

    # -- sweeps ----------------------------------------------------------------------------
    def sweeps(self, name: str | None = None) -> list[SweepTrial]:
        """The trials of sweep ``name`` (or of every sweep) as ``pr.sweep`` recorded them:
        parameters, final metrics, status; the best trial first, then by score."""
        return read_trials(self.store, self.tables.sweeps, name)

    def record_sweep(self, trials: list[SweepTrial]) -> None:
        """Store a sweep's trials (upsert by sweep name and trial id)."""
        write_trials(self.store, self.tables.sweeps, trials)

    # -- tables ----------------------------------------------------------------------------
    def _ensure(self, *, create: bool) -> bool:
        """Whether the registry tables exist (creating them when ``create``); checks the
        schema version so a newer registry is refused rather than misread."""
        if self._ready:
            return True
        t = self.tables
        existing = set(self.store.tables())
        version = self._concurrent_schema_version() if t.meta in existing else None
        if version is not None and {t.models, t.checkpoints} <= existing:
            self._ready = True
            return True
        if not create:
            return t.models in existing
        self.store.insert(t.models, MODELS.empty_table(), MODEL_KEY)
        self.store.insert(t.checkpoints, CHECKPOINTS.empty_table(), CHECKPOINT_KEY)
        if version is None:
            meta = _arrow([{"key": "schema_version", "value": str(SCHEMA_VERSION)}], META)
            try:
                self.store.insert(t.meta, meta, META_KEY)
            except DuplicateKey:
                self._concurrent_schema_version()  # another process made it first: check it
        self._ready = True
        return True

    def _concurrent_schema_version(self) -> int | None:
        """The schema version while another process may still be creating the table: on
        MariaDB its DDL can be visible to an insert before the catalog shows it (seen in
        the concurrency test), so look again for up to ~2 s."""
        for attempt in range(20):
            try:
                return self._schema_version()
            except TableNotFound:
                if attempt == 19:
                    raise
                time.sleep(0.1)
        return None

    def _schema_version(self) -> int | None:
        rows = self._read(self.tables.meta, {"key": "schema_version"})
        if not rows:
            return None
        version = int(rows[0]["value"])
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"the model registry in {self.store.url} has schema version {version}, written "
                f"by a newer pinnacle_ray; this one reads version {SCHEMA_VERSION}. Upgrade "
                "pinnacle_ray"
            )
        return version

    def _read(self, table: str, where: Mapping[str, Any], columns: list[str] | None = None) -> list:
        # columns must include the table's first key column (a query defaults its key to it)
        return self.store.table(table, columns=columns, where=where).to_arrow().to_pylist()

    def _handles(self, where: Mapping[str, Any]) -> dict[tuple[str, int], list[str]]:
        out: dict[tuple[str, int], list[str]] = {}
        for c in self._read(self.tables.checkpoints, where, ["name", "version", "handle"]):
            out.setdefault((c["name"], c["version"]), []).append(c["handle"])
        return {k: sorted(v) for k, v in out.items()}

    def _version_row(self, name: str, version: int | None) -> dict[str, Any]:
        if not self._ensure(create=False):
            raise ModelNotFound(
                f"no model named {name!r}: no model is registered in {self.store.url} yet"
            )
        rows = self._read(self.tables.models, {"name": name, "status": READY})
        if not rows:
            names = sorted(
                {r["name"] for r in self._read(self.tables.models, {"status": READY}, ["name"])}
            )
            shown = f"{names[:20]}{' ...' if len(names) > 20 else ''}"
            raise ModelNotFound(
                f"no model named {name!r} in {self.store.url}; "
                + (f"registered models: {shown}" if names else "no model is registered yet")
            )
        if version is None:
            return max(rows, key=lambda r: r["version"])
        for r in rows:
            if r["version"] == version:
                return r
        raise ModelNotFound(
            f"model {name!r} has no version {version}; its versions are "
            f"{sorted(r['version'] for r in rows)}"
        )

    def _claim(self, row: dict[str, Any]) -> int:
        """Insert ``row`` as version max+1 of its name; on a concurrent win, the next one."""
        name = row["name"]
        for attempt in range(MAX_CLAIM_ATTEMPTS):
            taken = self._read(self.tables.models, {"name": name}, ["name", "version"])
            version = max((r["version"] for r in taken), default=0) + 1
            try:
                self.store.insert(
                    self.tables.models, _arrow([{**row, "version": version}], MODELS), MODEL_KEY
                )
                return version
            except DuplicateKey:
                # Another registrar took this number first. A little jitter keeps racing
                # processes from colliding on the next number again and again.
                logger.debug(
                    "version %d of %r was taken concurrently; trying the next",
                    version,
                    name,
                    extra={"retry": True},
                )
                time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))
        raise RegistryError(
            f"could not allocate a version of {name!r} after {MAX_CLAIM_ATTEMPTS} attempts "
            "(other registrations kept taking the next number); try again"
        )

    def _release(self, name: str, version: int) -> None:
        where = {"name": name, "version": version}
        try:
            self._delete_extras(where)
            self.store.delete(self.tables.checkpoints, where)
            self.store.delete(self.tables.models, where)
        except Exception as exc:  # the original failure matters more; say what is left
            logger.warning(
                "could not remove the unfinished version %s of %r (%s); it stays hidden "
                "(status pending) until store.models.cleanup() removes it",
                version,
                name,
                exc,
            )

    def _artifact(self, name: str, version: int | None, handle: str | None) -> tuple[str, str]:
        record = self.get(name, version, handle)
        if isinstance(record, CheckpointRecord):
            return record.uri, record.sha256
        return record.artifact_uri, record.sha256


def _database_filesystem(store: Datastore, root: str) -> pafs.FileSystem | None:
    """The datastore's own filesystem for a ``pinnacle-db://`` root, else None."""
    if not root.startswith(f"{DB_SCHEME}://"):
        return None
    blob_store = getattr(store, "blob_store", None)
    if blob_store is None:
        raise ConfigError(
            f"artifact_root {root!r} keeps models inside the datastore, but {store.url} cannot "
            "store files; pass artifact_root='s3://bucket/models' or a shared folder"
        )
    return database_filesystem(blob_store())


def _local_dir(path: Any, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{what} must be a local folder path, got {type(path).__name__}")
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is not a folder; write the model's files first")
    return folder


def _checkpoint_specs(
    checkpoints: Mapping[str, CheckpointSpec] | None,
) -> dict[str, tuple[Path, CheckpointSpec]]:
    out = {}
    for handle, spec in (checkpoints or {}).items():
        handle = validate_handle(handle)
        if not isinstance(spec, CheckpointSpec):
            raise ConfigError(
                f"checkpoints[{handle!r}] must be a CheckpointSpec(path, step, metrics), got "
                f"{type(spec).__name__}"
            )
        out[handle] = (_local_dir(spec.path, f"checkpoints[{handle!r}].path"), spec)
    return out


def _arrow(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _version(row: Mapping[str, Any], handles: list[str]) -> ModelVersion:
    parent = row.get("parent_version")
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        framework=row["framework"],
        created_at=as_utc(row["created_at"]),
        status=row["status"],
        metrics=_json(row["metrics"]),
        config=_json(row["config"]),
        lineage=_json(row["lineage"]),
        artifact_uri=row["artifact_uri"],
        sha256=row["sha256"],
        size_bytes=int(row["size_bytes"]),
        parent_version=int(parent) if parent is not None else None,
        handles=tuple(handles),
    )


def _card_facts(card: Mapping[str, Any] | None) -> dict[str, Any]:
    if card is None:
        return {}
    if not isinstance(card, Mapping):
        raise ConfigError(f"card must be a dict of {list(CARD_FACTS)}, got {type(card).__name__}")
    unknown = sorted(set(card) - set(CARD_FACTS))
    if unknown:
        raise ConfigError(
            f"card has unknown entries {unknown}; a model card takes {list(CARD_FACTS)} (the "
            "rest comes from the version)"
        )
    return dict(card)


def _card_of(row: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    lineage = _json(row["lineage"])
    return build_card(
        name=row["name"],
        version=int(row["version"]),
        framework=row["framework"],
        created_at=as_utc(row["created_at"]),
        metrics=_json(row["metrics"]),
        lineage=lineage,
        facts=facts,
        tracking=lineage.get("tracking") if isinstance(lineage.get("tracking"), Mapping) else None,
    )


def _json(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else from_json(value)
