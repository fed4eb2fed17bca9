"""Artifact folders under the artifact root: copy in, checksum, verify, download, delete.

Everything goes through ``pyarrow.fs``, so the root can be a local folder or a URI
(``s3://``, ``gs://``, ``file:///shared``). A folder's checksum is the sha256 of its
manifest, one ``<sha256>  <relative path>`` line per file sorted by path (what
``sha256sum`` prints), so it can be checked by hand. A sidecar ``<folder>.manifest.json``
keeps the per-file hashes so a mismatch can name the changed file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from ..errors import ChecksumMismatch, RegistryError

__all__ = [
    "Manifest",
    "delete_tree",
    "download",
    "is_local",
    "open_uri",
    "upload",
    "verify",
]

logger = logging.getLogger("pinnacle_ray.registry")

CHUNK_BYTES = 1 << 20
MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class Manifest:
    """The files of an artifact folder: relative path -> (sha256, size in bytes)."""

    files: dict[str, tuple[str, int]]

    @property
    def sha256(self) -> str:
        lines = "".join(f"{digest}  {rel}\n" for rel, (digest, _) in sorted(self.files.items()))
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files.values())

    def to_json(self) -> str:
        return json.dumps({rel: list(v) for rel, v in sorted(self.files.items())})

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls({rel: (str(v[0]), int(v[1])) for rel, v in json.loads(text).items()})


def open_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path for a local folder or a ``pyarrow.fs`` URI."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise RegistryError(f"cannot open artifact location {uri!r}: {exc}") from None
    return fs, path


def is_local(fs: pafs.FileSystem) -> bool:
    """Whether paths on ``fs`` can be opened directly by this process."""
    return isinstance(fs, pafs.LocalFileSystem)


def upload(source: Path, fs: pafs.FileSystem, dest: str) -> Manifest:
    """Copy local folder ``source`` to ``dest`` on ``fs``, hashing what is written."""
    files: dict[str, tuple[str, int]] = {}
    made: set[str] = set()
    for rel, path in _local_files(source):
        target = f"{dest}/{rel}"
        parent = target.rsplit("/", 1)[0]
        if parent not in made:
            fs.create_dir(parent, recursive=True)
            made.add(parent)
        files[rel] = _copy_file(path, fs, target)
    if not files:
        raise RegistryError(f"{source} holds no files; write the model's files into it first")
    manifest = Manifest(files)
    with fs.open_output_stream(f"{dest}{MANIFEST_SUFFIX}") as out:
        out.write(manifest.to_json().encode("utf-8"))
    return manifest


def verify(fs: pafs.FileSystem, path: str, expected: str, uri: str) -> Manifest:
    """Re-hash the folder at ``path``; ``ChecksumMismatch`` naming the files if it changed."""
    actual = Manifest(dict(_hash_remote(fs, path, uri)))
    if actual.sha256 != expected:
        raise ChecksumMismatch(_difference(fs, path, actual, expected, uri))
    return actual


def download(fs: pafs.FileSystem, path: str, dest: Path, expected: str, uri: str) -> Path:
    """Copy the folder at ``path`` to local ``dest`` (verified, then moved into place)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".incoming-{uuid.uuid4().hex}"
    try:
        files: dict[str, tuple[str, int]] = {}
        for rel, source in _remote_files(fs, path, uri):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            with fs.open_input_stream(source) as stream, open(target, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            files[rel] = (digest.hexdigest(), size)
        manifest = Manifest(files)
        if manifest.sha256 != expected:
            raise ChecksumMismatch(_difference(fs, path, manifest, expected, uri))
        try:
            os.replace(staging, dest)
        except OSError:
            if not dest.exists():  # a concurrent download won the race: use its copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def delete_tree(fs: pafs.FileSystem, path: str) -> None:
    """Remove the folder at ``path`` (best effort: a failure is logged, not raised)."""
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not delete %s after a failed registration: %s", path, exc)


def _local_files(source: Path) -> list[tuple[str, Path]]:
    out = []
    for folder, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                out.append((path.relative_to(source).as_posix(), path))
    return sorted(out)


def _copy_file(source: Path, fs: pafs.FileSystem, target: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as f, fs.open_output_stream(target) as out:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _remote_files(fs: pafs.FileSystem, path: str, uri: str) -> Iterator[tuple[str, str]]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except FileNotFoundError:
        raise ChecksumMismatch(
            f"the artifact folder {uri} is missing; its files were deleted or moved after "
            "registration. Restore them or register the model again"
        ) from None
    base = path.rstrip("/") + "/"
    for info in sorted(infos, key=lambda i: i.path):
        if info.type == pafs.FileType.File:
            yield info.path[len(base) :], info.path


def _hash_remote(fs: pafs.FileSystem, path: str, uri: str) -> Iterator[tuple[str, tuple[str, int]]]:
    for rel, source in _remote_files(fs, path, uri):
        digest, size = hashlib.sha256(), 0
        with fs.open_input_stream(source) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        yield rel, (digest.hexdigest(), size)


def _difference(fs: pafs.FileSystem, path: str, actual: Manifest, expected: str, uri: str) -> str:
    head = f"the artifact at {uri} does not match the checksum recorded at registration"
    tail = "; its files were changed after registration. Restore them or register again"
    try:
        with fs.open_input_stream(f"{path}{MANIFEST_SUFFIX}") as stream:
            recorded = Manifest.from_json(stream.read().decode("utf-8"))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        recorded = None
    if recorded is None or recorded.sha256 != expected:
        return f"{head} (sha256 {actual.sha256[:16]}..., recorded {expected[:16]}...){tail}"
    changed = sorted(
        rel
        for rel in actual.files
        if rel in recorded.files and actual.files[rel] != recorded.files[rel]
    )
    missing = sorted(set(recorded.files) - set(actual.files))
    extra = sorted(set(actual.files) - set(recorded.files))
    parts = [
        f"{label} {names[:5]}"
        for label, names in (("changed:", changed), ("missing:", missing), ("unexpected:", extra))
        if names
    ]
    return f"{head} ({'; '.join(parts)}){tail}"
