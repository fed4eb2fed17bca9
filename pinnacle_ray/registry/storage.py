"""A registry's artifact root: store folders under it and hand out verified local copies.

Folders are addressed by URIs under the root (``<root>/<name>/<uuid>/model``). A local
root (or ``file://``) is read in place after its checksum is verified; a remote root
(``s3://``, ``gs://``, ``pinnacle-db://`` inside the datastore, ...) is downloaded once into
a cache keyed by checksum. The same root decides where Ray Train keeps run checkpoints
(:class:`RunStorage`), so every node that can read the models can read the checkpoints.
"""

from __future__ import annotations

import errno
import inspect
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from .._internal.constants import CACHE_DIR_ENV as CACHE_ENV
from .._internal.constants import cache_dir
from ..errors import ArtifactStoreFull, ChecksumMismatch, RegistryError, UnsafeArtifact
from .artifacts import Manifest, delete_tree, download, is_local, open_uri, upload, verify
from .flavors import Predictor, get_flavor

__all__ = ["CACHE_ENV", "DB_RUN_STORAGE_PATH", "ArtifactRoot", "ModelFiles", "RunStorage"]

logger = logging.getLogger("pinnacle_ray.registry")

DB_SCHEME = "pinnacle-db"  # artifacts inside the datastore (see datastore/artifact_root.py)
# Ray Train's runs in the database sit beside the registry's artifacts, not among them.
DB_RUN_STORAGE_PATH = "ray-train"
# Under a URI root, runs go to a folder no model name can take (names start alphanumeric).
URI_RUN_FOLDER = "_ray_train"
# Roots only this process can see, however they are spelled.
_PROCESS_LOCAL_SCHEMES = ("mock",)


@dataclass(frozen=True)
class RunStorage:
    """Where Ray Train keeps a run's checkpoints: ``RunConfig(storage_path=...,
    storage_filesystem=...)``; ``shared`` when every node of a cluster can reach it.

    ``(None, None, shared=False)`` keeps Ray's default local storage (SQLite stores, plain
    local-folder artifact roots). The filesystem pickles, so it travels to Ray workers.

    Example::

        storage = store.models.run_storage()
        run_config = ray.train.RunConfig(
            storage_path=storage.storage_path, storage_filesystem=storage.storage_filesystem
        )
    """

    storage_path: str | None
    storage_filesystem: pafs.FileSystem | None
    shared: bool


class ArtifactRoot:
    """Folders under ``root`` (a local folder or a ``pyarrow.fs`` URI), opened once.

    A ``pinnacle-db://`` root is served by ``filesystem`` (the datastore's blob store, handed
    in by the registry: this class knows nothing of SQL or MongoDB). ``legacy`` is a local
    folder whose artifacts are still read (never written): where server stores kept them
    before they moved into the database.
    """

    def __init__(
        self, root: str, filesystem: pafs.FileSystem | None = None, legacy: str | None = None
    ) -> None:
        self.root = root.rstrip("/") or root
        self.filesystem = filesystem
        self.legacy = legacy.rstrip("/") if legacy and legacy.rstrip("/") != self.root else None
        self._fs: tuple[pafs.FileSystem, str] | None = None

    def __reduce__(self) -> tuple[Any, tuple[str, pafs.FileSystem | None, str | None]]:
        # An opened URI filesystem stays in this process; the datastore's one pickles as its
        # store (which reconnects from its URL where it is unpickled).
        return ArtifactRoot, (self.root, self.filesystem, self.legacy)

    def run_storage(self) -> RunStorage:
        """Where Ray Train should keep run checkpoints so that every node reaches them."""
        scheme = self.root.split("://", 1)[0] if "://" in self.root else ""
        if not scheme or scheme in _PROCESS_LOCAL_SCHEMES:
            return RunStorage(None, None, shared=False)
        fs, base = self.open()
        if scheme == DB_SCHEME:
            return RunStorage(DB_RUN_STORAGE_PATH, fs, shared=True)
        return RunStorage(f"{base.rstrip('/')}/{URI_RUN_FOLDER}", fs, shared=True)

    def open(self) -> tuple[pafs.FileSystem, str]:
        """The root's filesystem and its path on it."""
        return self._open_root()

    def uri(self, rel: str) -> str:
        """The URI of ``rel`` under the root, as stored in the registry's rows."""
        return f"{self.root}/{_inside(rel, self.root)}"

    def upload(self, source: Path, rel: str) -> tuple[str, Manifest]:
        """Copy local folder ``source`` to ``rel`` under the root; its URI and manifest."""
        fs, base = self._open_root()
        try:
            return self.uri(rel), upload(source, fs, f"{base}/{_inside(rel, self.root)}")
        except OSError as exc:
            if exc.errno not in _NO_SPACE and "No space left" not in str(exc):
                raise
            raise ArtifactStoreFull(
                f"artifact root {self.root!r} ran out of space while storing {source} as "
                f"{self.uri(rel)!r} ({exc}); the registration is undone. Free space there, or "
                "connect with artifact_root= a store with room (or the default: in the "
                "database for server stores)"
            ) from None

    def delete(self, rel: str) -> None:
        """Remove folder ``rel`` under the root (best effort)."""
        fs, base = self._open_root()
        delete_tree(fs, f"{base}/{_inside(rel, self.root)}")

    def relative(self, uri: str) -> str:
        """The path of ``uri`` under the root; ``UnsafeArtifact`` when a (tampered) row
        points anywhere else."""
        if not isinstance(uri, str) or not uri.startswith(self.root + "/"):
            raise UnsafeArtifact(
                f"the registry row points at {uri!r}, outside the artifact root {self.root!r}; "
                "refusing to read it (the row may have been tampered with). If the model was "
                "registered under another root, load it with pr.connect(url, artifact_root=...)"
                " naming that root"
            )
        return _inside(uri[len(self.root) + 1 :], self.root)

    def local_copy(self, uri: str, digest: str) -> str:
        """A local folder with the files at ``uri`` (which must lie under the root), checked
        against ``digest`` first."""
        fs, path = self._open(uri)
        if is_local(fs):
            verify(fs, path, digest, uri)
            return path
        dest = _cache_root() / digest
        if dest.exists():
            try:
                verify(pafs.LocalFileSystem(), str(dest), digest, str(dest))
                return str(dest)
            except ChecksumMismatch:
                logger.warning("cached copy %s of %s is damaged; downloading again", dest, uri)
                shutil.rmtree(dest, ignore_errors=True)
        return str(download(fs, path, dest, digest, uri))

    def _open_root(self) -> tuple[pafs.FileSystem, str]:
        if self._fs is None:
            if self.root.startswith(f"{DB_SCHEME}://"):
                if self.filesystem is None:
                    raise RegistryError(
                        f"artifact root {self.root!r} keeps the files inside the datastore, "
                        "but no datastore filesystem was handed in; open it through "
                        "store.models (pr.connect(url).models)"
                    )
                path = self.root[len(DB_SCHEME) + 3 :]
                self._fs = (self.filesystem, path.strip("/"))
            else:
                fs, path = open_uri(self.root)
                self._fs = (fs, path.rstrip("/") or "/")
        return self._fs

    def _open(self, uri: str) -> tuple[pafs.FileSystem, str]:
        # Under our root only, through its filesystem (and an in-process one, e.g. mock://);
        # or, read-only, under the legacy local folder.
        if self.legacy is not None and isinstance(uri, str) and uri.startswith(self.legacy + "/"):
            rel = _inside(uri[len(self.legacy) + 1 :], self.legacy)
            return pafs.LocalFileSystem(), f"{self.legacy}/{rel}"
        rel = self.relative(uri)
        fs, base = self._open_root()
        return fs, f"{base}/{rel}"


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _inside(rel: str, root: str) -> str:
    """``rel`` if it names a path strictly below the root: no ``..``, ``.`` or empty parts,
    no backslash, NUL or drive letter, not absolute; else ``UnsafeArtifact``."""
    parts = rel.split("/") if isinstance(rel, str) else [""]
    if (
        not parts
        or any(p in ("", ".", "..") for p in parts)
        or any(c in rel for c in ("\\", "\x00", ":"))
    ):
        raise UnsafeArtifact(
            f"artifact path {rel!r} would leave the artifact root {root!r} (it must be "
            "relative, with no '..', '.', empty parts, backslashes, colons or NUL); refusing it"
        )
    return rel


def _cache_root() -> Path:
    return Path(cache_dir() or Path.home() / ".cache" / "pinnacle_ray" / "artifacts")


@dataclass(frozen=True)
class ModelFiles:
    """A registered model version's files (and a checkpoint's weights) with their checksums."""

    name: str
    version: int
    root: ArtifactRoot
    framework: str
    model: tuple[str, str]  # (URI, sha256)
    weights: tuple[str, str] | None = None  # a checkpoint's (URI, sha256)

    def load(
        self, *, allow_pickle: bool = False, trusted_modules: Any = None, **kwargs: Any
    ) -> Predictor:
        """The model, checksums verified, loaded by its framework's flavor.

        ``trusted_modules`` goes to flavors that import code named in the artifact (torch:
        see ``registry/trust.py``); the others import none and ignore it."""
        flavor = get_flavor(self.framework)
        if trusted_modules is not None and _accepts(flavor.load_model, "trusted_modules"):
            kwargs["trusted_modules"] = trusted_modules
        model_dir = self.root.local_copy(*self.model)
        weights_dir = None if self.weights is None else self.root.local_copy(*self.weights)
        if allow_pickle:  # custom flavors that know nothing of pickles are called as before
            kwargs["allow_pickle"] = True
        return flavor.load_model(model_dir, weights_dir=weights_dir, **kwargs)


def _accepts(function: Any, name: str) -> bool:
    """Whether ``function`` takes a keyword argument ``name``."""
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
