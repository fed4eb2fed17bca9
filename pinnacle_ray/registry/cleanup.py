"""Clear what a registration killed half-way leaves behind: stale ``pending`` version rows
and artifact folders that no registry row references.

A registrar that dies (SIGKILL, power loss) between uploading its files and marking its
version ``ready`` leaves a hidden ``pending`` row and a folder. Readers never see them; this
removes them so the version number is reused and no disk is wasted. Only what is older than
an age threshold is touched, so an in-flight registration of a live process is never
removed, and every step is safe to run twice or concurrently (deleting what is already
gone removes nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from .._internal.clock import as_utc
from ..datastore.base import Datastore
from ..errors import ColumnNotFound, ConfigError, TableNotFound
from .schema import RegistryTables
from .storage import ArtifactRoot

__all__ = ["DEFAULT_OLDER_THAN", "CleanupReport", "remove_leftovers", "remove_old_runs"]

logger = logging.getLogger("pinnacle_ray.registry")

DEFAULT_OLDER_THAN = dt.timedelta(hours=1)
PENDING = "pending"
_FOLDER = re.compile(r"[0-9a-f]{32}")  # registration folders are uuid4().hex
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_META_SUFFIX = "_registry_meta"


@dataclass(frozen=True)
class CleanupReport:
    """What :meth:`ModelRegistry.cleanup` removed: stale pending versions and orphan folders."""

    pending: list[tuple[str, int]] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pending or self.folders or self.runs)

    def __str__(self) -> str:
        if not self:
            return "nothing to clean up"
        parts = []
        if self.pending:
            shown = ", ".join(f"{n} v{v}" for n, v in self.pending)
            parts.append(f"{len(self.pending)} unfinished version(s) ({shown})")
        if self.folders:
            parts.append(f"{len(self.folders)} orphan artifact folder(s)")
        if self.runs:
            parts.append(f"{len(self.runs)} old Ray Train run folder(s)")
        return "removed " + " and ".join(parts)


def older_than_delta(value: Any) -> dt.timedelta:
    """``value`` (a timedelta or seconds) as a timedelta >= 0, else ``ConfigError``."""
    if isinstance(value, dt.timedelta):
        delta = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        delta = dt.timedelta(seconds=value)
    else:
        raise ConfigError(
            f"older_than must be a datetime.timedelta or a number of seconds, got {value!r}"
        )
    if delta < dt.timedelta(0):
        raise ConfigError(f"older_than must not be negative, got {value!r}")
    return delta


def remove_leftovers(
    store: Datastore, tables: RegistryTables, files: ArtifactRoot, older_than: dt.timedelta
) -> CleanupReport:
    """Delete pending rows older than ``older_than`` (their checkpoint rows first), then the
    folders under the artifact root that are older than that and referenced by no row."""
    cutoff = dt.datetime.now(dt.timezone.utc) - older_than
    pending = []
    existing = set(store.tables())
    if tables.models in existing:
        rows = _rows(store, tables.models, {"status": PENDING}, ["name", "version", "created_at"])
        for row in rows:
            if as_utc(row["created_at"]) > cutoff:
                continue  # possibly a live registration: leave it
            where = {"name": row["name"], "version": int(row["version"])}
            store.delete(tables.checkpoints, where)
            # Only while still pending: a row that became ready meanwhile is kept.
            if store.delete(tables.models, {**where, "status": PENDING}):
                pending.append((row["name"], int(row["version"])))
                for extra in (tables.history, tables.cards):  # written before "ready"
                    if extra in existing:
                        store.delete(extra, where)
    folders = _remove_orphans(store, files, cutoff)
    report = CleanupReport(sorted(pending), folders)
    logger.info("registry cleanup in %s: %s", store.url, report)
    return report


def remove_old_runs(fs: pafs.FileSystem, storage_path: str, older_than: dt.timedelta) -> list[str]:
    """Delete the Ray Train run folders under ``storage_path`` (the shared run storage:
    in the database, or ``_ray_train`` under an ``s3://``/``gs://``/``file://`` root) whose
    last write is older than ``older_than``; their paths.

    Ray Train keeps every run's checkpoints until someone deletes them. A registered version
    has its own copy under the artifact root, so an old run folder is only needed to resume
    that Ray Train run by name or to read ``TrainResult.checkpoint`` in the process that
    trained it; in a database it would otherwise grow without bound."""
    cutoff = dt.datetime.now(dt.timezone.utc) - older_than
    base = storage_path.rstrip("/") or "/"
    removed = []
    for run in _children(fs, base):
        if _newest(fs, run.path) > cutoff:
            continue  # a live run keeps writing: leave it
        try:
            fs.delete_dir(run.path)
        except FileNotFoundError:
            continue  # a concurrent cleanup removed it
        removed.append(run.path)
    return sorted(removed)


def _remove_orphans(store: Datastore, files: ArtifactRoot, cutoff: dt.datetime) -> list[str]:
    fs, base = files.open()
    base = base.rstrip("/") or "/"
    candidates = []
    for name in _children(fs, base):
        if not _NAME.fullmatch(name.base_name):
            continue
        for folder in _children(fs, name.path):
            if _FOLDER.fullmatch(folder.base_name):
                candidates.append(f"{name.base_name}/{folder.base_name}")
    if not candidates:
        return []
    # Read references only now: a folder registered after this read is younger than cutoff.
    used = _referenced(store, files.root + "/")
    removed = []
    for rel in sorted(candidates):
        if rel in used or _newest(fs, f"{base}/{rel}") > cutoff:
            continue
        try:
            fs.delete_dir(f"{base}/{rel}")
        except FileNotFoundError:
            continue  # a concurrent cleanup removed it
        removed.append(files.uri(rel))
    return removed


def _referenced(store: Datastore, prefix: str) -> set[str]:
    """``<name>/<folder>`` of every artifact any registry in ``store`` points at: registries
    with another table prefix may share the artifact root."""
    existing = set(store.tables())
    used = set()
    for meta in existing:
        if not meta.endswith(_META_SUFFIX):
            continue
        reg = RegistryTables(meta[: -len(_META_SUFFIX)])
        for table in (reg.models, reg.checkpoints):
            if table in existing:
                try:
                    uris = _rows(store, table, {}, ["name", "version", "artifact_uri"])
                except (TableNotFound, ColumnNotFound):
                    continue  # dropped meanwhile, or not a registry: it references nothing
                used.update(_folder_of(r["artifact_uri"], prefix) for r in uris)
    used.discard(None)
    return used  # type: ignore[return-value]


def _folder_of(uri: str | None, prefix: str) -> str | None:
    if not uri or not uri.startswith(prefix):
        return None
    parts = uri[len(prefix) :].split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 else None


def _children(fs: pafs.FileSystem, path: str) -> Iterable[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [i for i in infos if i.type == pafs.FileType.Directory]


def _newest(fs: pafs.FileSystem, path: str) -> dt.datetime:
    """The latest modification time in the folder: a slow upload keeps it fresh."""
    infos = [fs.get_file_info(path)]
    infos += fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    stamps = [i.mtime_ns for i in infos if i.mtime_ns is not None]
    if not stamps:  # a store without times (some object stores list folders without one)
        return dt.datetime.now(dt.timezone.utc)
    return dt.datetime.fromtimestamp(max(stamps) / 1e9, tz=dt.timezone.utc)


def _rows(store: Datastore, table: str, where: dict[str, Any], columns: list[str]) -> list:
    return store.table(table, columns=columns, where=where or None).to_arrow().to_pylist()
