"""A ``pyarrow.fs`` filesystem over a datastore's blob store (files kept in the database).

The registry stores model artifacts through it and Ray Train writes run checkpoints through
it (``RunConfig(storage_filesystem=...)``), so both reach every node that reaches the
database. Directories are the prefixes of stored paths plus explicit markers (what
``create_dir`` records), as on object stores. Paths are ``/``-separated, relative to the
store (a leading ``/`` is ignored). It pickles as its blob store, which pickles as its
datastore: a Ray worker that unpickles it reconnects to the same database.

Example::

    fs = database_filesystem(store.blob_store())
    pyarrow.fs.copy_files("ckpt/", "ray-train/run-1/ckpt", destination_filesystem=fs)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ..datastore.blobs import BlobInfo, BlobStore, below

__all__ = ["DatabaseFileSystemHandler", "database_filesystem"]

TYPE_NAME = "pinnacle-db"


def database_filesystem(blobs: BlobStore) -> pafs.PyFileSystem:
    """A ``pyarrow.fs.PyFileSystem`` over ``blobs`` (picklable, for Ray Train's storage)."""
    return pafs.PyFileSystem(DatabaseFileSystemHandler(blobs))


class DatabaseFileSystemHandler(pafs.FileSystemHandler):
    """The ``pyarrow.fs.FileSystemHandler`` behind :func:`database_filesystem`."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def __reduce__(self) -> tuple[Any, tuple[BlobStore]]:
        return DatabaseFileSystemHandler, (self.blobs,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseFileSystemHandler) and repr(other.blobs) == repr(
            self.blobs
        )

    def __hash__(self) -> int:
        return hash(repr(self.blobs))

    def get_type_name(self) -> str:
        return TYPE_NAME

    def normalize_path(self, path: str) -> str:
        return _norm(path)

    # -- metadata --------------------------------------------------------------------------
    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return [self._info(_norm(p)) for p in paths]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        base = _norm(selector.base_dir)
        found = self.blobs.stat(base) if base else None
        if found is not None and not found.is_dir:
            raise NotADirectoryError(f"{base!r} is a file, not a folder")
        entries = self.blobs.list(base)
        if base and not entries and found is None:
            if selector.allow_not_found:
                return []
            raise FileNotFoundError(f"no folder {base!r} in the database's blob store")
        return _listing(base, entries, selector.recursive)

    # -- directories -----------------------------------------------------------------------
    def create_dir(self, path: str, recursive: bool) -> None:
        path = _norm(path)
        if not path:
            return
        found = self.blobs.stat(path)
        if found is not None:
            if not found.is_dir:
                raise FileExistsError(f"{path!r} is a file; cannot make a folder there")
            return
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if not recursive and parent and self._info(parent).type != pafs.FileType.Directory:
            raise FileNotFoundError(f"parent folder {parent!r} of {path!r} does not exist")
        self.blobs.make_dir(path)

    def delete_dir(self, path: str) -> None:
        path = _norm(path)
        entries = self.blobs.list(path)
        if not self._is_dir(path, entries):
            raise FileNotFoundError(f"no folder {path!r} in the database's blob store")
        self.blobs.delete([e.path for e in entries] + [path])

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        path = _norm(path)
        entries = self.blobs.list(path)
        if not self._is_dir(path, entries):
            if missing_dir_ok:
                return
            raise FileNotFoundError(f"no folder {path!r} in the database's blob store")
        self.blobs.delete([e.path for e in entries])

    def delete_root_dir_contents(self) -> None:
        self.blobs.delete([e.path for e in self.blobs.list("")])

    # -- files -----------------------------------------------------------------------------
    def delete_file(self, path: str) -> None:
        path = _norm(path)
        found = self.blobs.stat(path)
        if found is None or found.is_dir:
            raise FileNotFoundError(f"no file {path!r} in the database's blob store")
        self.blobs.delete([path])

    def move(self, src: str, dest: str) -> None:
        src, dest = _norm(src), _norm(dest)
        found = self.blobs.stat(src)
        if found is not None and not found.is_dir:
            self._parent_exists(dest)
            self.blobs.rename(src, dest)
            return
        entries = self.blobs.list(src)
        if found is None and not entries:
            raise FileNotFoundError(f"nothing at {src!r} in the database's blob store to move")
        for entry in entries:  # a folder: each entry under its new prefix
            self.blobs.rename(entry.path, dest + entry.path[len(src) :])
        if found is not None:
            self.blobs.rename(src, dest)
        else:
            self.blobs.make_dir(dest)

    def copy_file(self, src: str, dest: str) -> None:
        src, dest = _norm(src), _norm(dest)
        chunk = self.blobs.chunk_bytes
        with self.blobs.open_read(src) as reader:
            writer = self.blobs.open_write(dest)
            try:
                while data := reader.read(chunk):
                    writer.write(data)
            except BaseException:
                writer.abort()
                raise
            writer.close()

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        path = _norm(path)
        return pa.PythonFile(self.blobs.open_read(path), mode="r")

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        path = _norm(path)
        self._parent_exists(path)
        return pa.PythonFile(self.blobs.open_write(path), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        raise NotImplementedError(
            "appending to a file in the database's blob store is not supported; write the "
            "whole file with open_output_stream"
        )

    # -- internals -------------------------------------------------------------------------
    def _info(self, path: str) -> pafs.FileInfo:
        if not path:
            return pafs.FileInfo("", pafs.FileType.Directory)
        found = self.blobs.stat(path)
        if found is not None:
            return _file_info(found)
        if self.blobs.list(path):  # an implicit folder: something is stored below it
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def _is_dir(self, path: str, entries: list[BlobInfo]) -> bool:
        if not path or entries:
            return True
        found = self.blobs.stat(path)
        return found is not None and found.is_dir

    def _parent_exists(self, path: str) -> None:
        # Object-store semantics: a file may be written under any prefix, but not under a file.
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            found = self.blobs.stat(parent)
            if found is not None and not found.is_dir:
                raise NotADirectoryError(f"cannot write {path!r}: {parent!r} is a file")


def _norm(path: str) -> str:
    return path.strip("/")


def _file_info(entry: BlobInfo) -> pafs.FileInfo:
    if entry.is_dir:
        return pafs.FileInfo(entry.path, pafs.FileType.Directory, mtime_ns=entry.mtime_ns)
    return pafs.FileInfo(entry.path, pafs.FileType.File, size=entry.size, mtime_ns=entry.mtime_ns)


def _listing(base: str, entries: Iterable[BlobInfo], recursive: bool) -> list[pafs.FileInfo]:
    """Entries below ``base`` plus the implicit folders between them, as a selector lists."""
    start = len(base) + 1 if base else 0
    out: dict[str, pafs.FileInfo] = {}
    for entry in entries:
        if not below(base, entry.path):
            continue
        parts = entry.path[start:].split("/")
        # Every folder between base and the entry is listed (implicitly or by marker).
        for depth in range(1, len(parts)):
            if not recursive and depth > 1:
                break
            folder = entry.path[:start] + "/".join(parts[:depth])
            out.setdefault(folder, pafs.FileInfo(folder, pafs.FileType.Directory))
        depth = len(parts)
        if not recursive and depth > 1:
            continue
        out[entry.path] = _file_info(entry)
    return [out[p] for p in sorted(out)]
