"""What the registry hands out (``ModelVersion``, ``CheckpointRecord``), what it takes
(``CheckpointSpec``), and the checks on model names, handles and versions."""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .._internal import names as _names
from ..errors import ConfigError

__all__ = [
    "CheckpointRecord",
    "CheckpointSpec",
    "ModelVersion",
    "validate_framework",
    "validate_handle",
    "validate_name",
    "validate_version",
]

MAX_NAME_CHARS = _names.MAX_NAME_CHARS
MAX_HANDLE_CHARS = _names.MAX_HANDLE_CHARS
_FRAMEWORK = re.compile(r"[a-z][a-z0-9_.-]*")


def validate_name(name: object) -> str:
    """``name`` if it can name a model (letters of any script, digits, ``-_.``; 1-128
    characters), else ``InvalidName``. Names become folder names under the artifact root."""
    return _names.validate_name(name, "model name", MAX_NAME_CHARS)


def validate_handle(handle: object) -> str:
    """``handle`` if it can name a checkpoint (``latest``, ``best``, ``epoch_3``, ...)."""
    return _names.validate_name(handle, "checkpoint handle", MAX_HANDLE_CHARS)


def validate_framework(framework: object) -> str:
    """``framework`` if it is a flavor-style name (``torch``, ``sklearn``, ...), else raise."""
    if not isinstance(framework, str) or not _FRAMEWORK.fullmatch(framework):
        raise ConfigError(f"framework must be a lower-case name such as 'torch', got {framework!r}")
    return framework


def validate_version(version: object) -> int | None:
    """``version`` if it is None or a positive integer, else raise."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"version must be a positive integer or None, got {version!r}")
    return version


@dataclass(frozen=True)
class CheckpointSpec:
    """A checkpoint to register under a handle: a local folder, its step and its metrics."""

    path: str | os.PathLike[str]
    step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 0:
            raise ConfigError(f"CheckpointSpec.step must be an integer >= 0, got {self.step!r}")
        if not isinstance(self.metrics, dict):
            raise ConfigError(
                f"CheckpointSpec.metrics must be a dict, got {type(self.metrics).__name__}"
            )


@dataclass(frozen=True, repr=False)
class ModelVersion:
    """One registered, ready version of a model: where its files are and how it was made."""

    name: str
    version: int
    framework: str
    created_at: dt.datetime
    status: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    lineage: dict[str, Any]
    artifact_uri: str
    sha256: str
    size_bytes: int
    parent_version: int | None = None
    handles: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parent = f", parent_version={self.parent_version}" if self.parent_version else ""
        return (
            f"ModelVersion({self.name!r}, version={self.version}, framework={self.framework!r}, "
            f"created_at={self.created_at.isoformat(timespec='seconds')}, "
            f"metrics={_short(self.metrics)}, handles={list(self.handles)}{parent}, "
            f"size={self.size_bytes} B, sha256={self.sha256[:12]}...)"
        )


@dataclass(frozen=True, repr=False)
class CheckpointRecord:
    """A checkpoint of a registered version, found by its handle."""

    name: str
    version: int
    handle: str
    step: int
    metrics: dict[str, Any]
    uri: str
    sha256: str

    def __repr__(self) -> str:
        return (
            f"CheckpointRecord({self.name!r}, version={self.version}, handle={self.handle!r}, "
            f"step={self.step}, metrics={_short(self.metrics)}, sha256={self.sha256[:12]}...)"
        )


def _short(metrics: dict[str, Any], limit: int = 6) -> str:
    items = [
        f"{k!r}: {round(v, 6) if isinstance(v, float) else v!r}"
        for k, v in list(metrics.items())[:limit]
    ]
    more = ", ..." if len(metrics) > limit else ""
    return "{" + ", ".join(items) + more + "}"
