"""A registry's artifact root: store folders under it and hand out verified local copies.

Folders are addressed by URIs under the root (``<root>/<name>/<uuid>/model``). A local
root (or ``file://``) is read in place after its checksum is verified; a remote root
(``s3://``, ``gs://``, ...) is downloaded once into a cache keyed by checksum.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from ..errors import ChecksumMismatch, UnsafeArtifact
from .artifacts import Manifest, delete_tree, download, is_local, open_uri, upload, verify
from .flavors import Predictor, get_flavor

__all__ = ["CACHE_ENV", "ArtifactRoot", "ModelFiles"]

logger = logging.getLogger("pinnacle_ray.registry")

CACHE_ENV = "PINNACLE_CACHE_DIR"


class ArtifactRoot:
    """Folders under ``root`` (a local folder or a ``pyarrow.fs`` URI), opened once."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or root
        self._fs: tuple[pafs.FileSystem, str] | None = None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return ArtifactRoot, (self.root,)  # the opened filesystem stays in this process

    def uri(self, rel: str) -> str:
        """The URI of ``rel`` under the root, as stored in the registry's rows."""
        return f"{self.root}/{_inside(rel, self.root)}"

    def upload(self, source: Path, rel: str) -> tuple[str, Manifest]:
        """Copy local folder ``source`` to ``rel`` under the root; its URI and manifest."""
        fs, base = self._open_root()
        return self.uri(rel), upload(source, fs, f"{base}/{_inside(rel, self.root)}")

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
            fs, path = open_uri(self.root)
            self._fs = (fs, path.rstrip("/") or "/")
        return self._fs

    def _open(self, uri: str) -> tuple[pafs.FileSystem, str]:
        # Under our root only, through its filesystem (and an in-process one, e.g. mock://).
        rel = self.relative(uri)
        fs, base = self._open_root()
        return fs, f"{base}/{rel}"


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
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pinnacle_ray" / "artifacts")


@dataclass(frozen=True)
class ModelFiles:
    """A registered model version's files (and a checkpoint's weights) with their checksums."""

    name: str
    version: int
    root: ArtifactRoot
    framework: str
    model: tuple[str, str]  # (URI, sha256)
    weights: tuple[str, str] | None = None  # a checkpoint's (URI, sha256)

    def load(self, *, allow_pickle: bool = False, **kwargs: Any) -> Predictor:
        """The model, checksums verified, loaded by its framework's flavor."""
        flavor = get_flavor(self.framework)
        model_dir = self.root.local_copy(*self.model)
        weights_dir = None if self.weights is None else self.root.local_copy(*self.weights)
        if allow_pickle:  # custom flavors that know nothing of pickles are called as before
            kwargs["allow_pickle"] = True
        return flavor.load_model(model_dir, weights_dir=weights_dir, **kwargs)
