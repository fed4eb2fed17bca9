"""What every datastore offers the rooms above it, and the hooks that give it ``.models``
and ``.jobs``.

The registry stores through :class:`Datastore` only, so it works on any backend that has
these methods. ``datastore/`` must not import ``registry/`` (imports flow one way), so the
registry package installs its factory here when it is imported, and ``store.models`` asks
this module for a registry (importing the registry package by name on first use, so a
process that never touches ``store.models``, such as a read task, never loads it).
``store.jobs`` (the jobs table, Ray jobs started from Python) is wired the same way by
``pinnacle_ray.jobs``: the trainers reach it through the store they train on, never by
importing the room above them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pyarrow as pa

from ..errors import ConfigError

__all__ = [
    "Datastore",
    "JobCatalog",
    "ModelCatalog",
    "Rows",
    "make_jobs",
    "make_models",
    "set_jobs_factory",
    "set_models_factory",
]


class Rows(Protocol):
    """A query whose (small) result can be read in the calling process."""

    def to_arrow(self) -> pa.Table:
        """All rows as one Arrow table."""
        ...


class Datastore(Protocol):
    """The public surface of a datastore that the registry (and other rooms) build on."""

    @property
    def url(self) -> str:
        """The connection URL with any password masked."""
        ...

    @property
    def artifact_root(self) -> str:
        """Where model artifacts are stored: a local folder or a ``pyarrow.fs`` URI."""
        ...

    def tables(self) -> list[str]:
        """Names of the tables (collections) that exist."""
        ...

    def table(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> Rows:
        """Rows of ``name`` matching equality/IN conditions ``where``."""
        ...

    def insert(self, name: str, data: Any, key: str | Sequence[str]) -> int:
        """Insert rows; raise ``DuplicateKey`` (writing nothing) if a key exists."""
        ...

    def write(self, name: str, data: Any, key: str | Sequence[str]) -> int:
        """Upsert rows by key."""
        ...

    def delete(self, name: str, where: Mapping[str, Any]) -> int:
        """Delete the rows matching ``where``; returns how many."""
        ...


class ModelCatalog(Protocol):
    """What ``store.models`` offers (implemented by ``pinnacle_ray.registry.ModelRegistry``)."""

    def register(self, name: str, framework: str, artifact_dir: Any, **kwargs: Any) -> Any: ...

    def list(self, name: str | None = None) -> list[Any]: ...

    def get(self, name: str, version: int | None = None, handle: str | None = None) -> Any: ...

    def load(
        self, name: str, version: int | None = None, handle: str | None = None, **kwargs: Any
    ) -> Any: ...

    def checkpoint_dir(
        self, name: str, version: int | None = None, handle: str | None = None
    ) -> str: ...

    def resolve(
        self, name: str, version: int | None = None, handle: str | None = None
    ) -> tuple[Any, str | None]: ...

    def promote(self, name: str, version: int | None = None, handle: str = ...) -> Any: ...

    def rollback(self, name: str, handle: str = ...) -> Any: ...

    def sweeps(self, name: str | None = None) -> list[Any]: ...

    def record_sweep(self, trials: list[Any]) -> None: ...

    def delete(self, name: str, version: int | None = None) -> list[int]: ...

    def cleanup(self, older_than: Any = ...) -> Any: ...


# What builds ``store.models`` and ``store.jobs``, installed by the package that implements
# each when it is imported: (attribute, package) -> factory.
_factories: dict[str, Callable[[Datastore], Any]] = {}


def _make(attribute: str, package: str, what: str, store: Datastore) -> Any:
    """``store.<attribute>`` from the factory ``package`` installs (imported on first use)."""
    if attribute not in _factories:
        importlib.import_module(package)  # installs its factory
    if attribute not in _factories:
        raise ConfigError(
            f"no {what} is installed; import pinnacle_ray (or {package}) before using "
            f"store.{attribute}"
        )
    return _factories[attribute](store)


def set_models_factory(factory: Callable[[Datastore], ModelCatalog]) -> None:
    """Install what builds ``store.models`` (called by ``pinnacle_ray.registry`` on import)."""
    _factories["models"] = factory


def make_models(store: Datastore) -> ModelCatalog:
    """A new model registry over ``store``, from the installed factory."""
    return _make("models", "pinnacle_ray.registry", "model registry", store)


class JobCatalog(Protocol):
    """What ``store.jobs`` offers (implemented by ``pinnacle_ray.jobs.JobCatalog``): the
    jobs recorded in this datastore, and the two ways a fit becomes one."""

    def get(self, submission_id: str, address: str | None = None) -> Any: ...

    def list(self, name: str | None = None) -> list[Any]: ...

    def submit(
        self,
        trainer: Any,
        *,
        train: Any,
        valid: Any = None,
        register: bool | str = True,
        address: str | None = None,
        **kwargs: Any,
    ) -> Any: ...

    def record_fit(self, name: str, fit: Callable[[], Any]) -> Any: ...


def set_jobs_factory(factory: Callable[[Datastore], JobCatalog]) -> None:
    """Install what builds ``store.jobs`` (called by ``pinnacle_ray.jobs`` on import)."""
    _factories["jobs"] = factory


def make_jobs(store: Datastore) -> JobCatalog:
    """The jobs of ``store``, from the installed factory (``pinnacle_ray.jobs``)."""
    return _make("jobs", "pinnacle_ray.jobs", "job catalog", store)
