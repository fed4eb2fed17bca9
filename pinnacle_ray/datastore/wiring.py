"""What both datastores share: where their artifacts go, the model registry and job catalog
they are handed at connect time, and how they travel to a Ray worker.

``datastore/`` sits below the registry and the jobs rooms and never imports them. The one
who connects (``pinnacle_ray.connect``, a floor above) hands the store two factories,
``models=`` and ``jobs=``: each builds ``store.models`` / ``store.jobs`` on first use. They
are module-level functions that import their room only when called, and a pickled store
(sent to a Ray task or actor) carries them, so a read task that never touches
``store.models`` never imports the registry, and one that does finds it as the driver did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import ConfigError
from .artifact_root import legacy_artifact_root, resolve_artifact_root

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from .base import Datastore, ModelVersions

__all__ = ["JobsFactory", "JobsT", "ModelsFactory", "ModelsT", "Wired"]

#: What ``store.models`` is: whatever the connecting floor's factory builds (a
#: ``ModelRegistry`` for ``pinnacle_ray.connect``, which says so in its return type, so an
#: IDE completes ``store.models.load``); this room only relies on :class:`~.base.ModelVersions`.
ModelsT = TypeVar("ModelsT", bound="ModelVersions")
#: What ``store.jobs`` is (a ``JobCatalog`` for ``pinnacle_ray.connect``).
JobsT = TypeVar("JobsT")

#: Builds ``store.models`` from the store (``pinnacle_ray.connect`` hands the registry's).
ModelsFactory = Callable[["Datastore"], "ModelVersions"]
#: Builds ``store.jobs`` from the store (``pinnacle_ray.connect`` hands the jobs room's).
JobsFactory = Callable[["Datastore"], Any]


class Wired(Generic[ModelsT, JobsT]):
    """The part of a datastore that is not about its backend. A store calls :meth:`_wire`
    in its constructor and names, in :meth:`_reopen_args`, the constructor arguments that
    reconnect it elsewhere (its URL and artifact root; never a live connection)."""

    artifact_root: str
    legacy_artifact_root: str | None

    def _wire(
        self,
        place: URL,
        artifact_root: str | os.PathLike[str] | None,
        models: ModelsFactory | None,
        jobs: JobsFactory | None,
    ) -> None:
        """Resolve where artifacts go for the database at ``place`` and keep the factories."""
        self.artifact_root = resolve_artifact_root(place, artifact_root)
        # Read-only: where versions registered before the in-database default live.
        self.legacy_artifact_root = legacy_artifact_root(place)
        self._models_factory = models
        self._jobs_factory = jobs
        self._models: ModelsT | None = None
        self._jobs: JobsT | None = None

    def _reopen_args(self) -> tuple[Any, ...]:
        """The positional constructor arguments that reconnect this store in another process."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to a Ray worker (e.g. pr.predict's actors), a store reconnects there from its
        # URL, as the read shards do, with the factories it was handed; the engine or client
        # and its pool stay in this process.
        return _reopen, (type(self), self._reopen_args(), self._models_factory, self._jobs_factory)

    @property
    def models(self) -> ModelsT:
        """The model registry in this datastore (a ``pinnacle_ray.registry.ModelRegistry``
        when opened with ``pinnacle_ray.connect``), made on first use. Typed by what this
        room reads of it (:class:`~.base.ModelVersions`): the registry is a floor above."""
        if self._models is None:
            self._models = _made(self._models_factory, self, "models", "model registry")
        return self._models

    @property
    def jobs(self) -> JobsT:
        """The Ray jobs recorded in this datastore (``store.jobs.get(id).wait()``; a
        ``pinnacle_ray.jobs.JobCatalog`` when opened with ``pinnacle_ray.connect``), made on
        first use. This room reads nothing of it, so it names no type for it."""
        if self._jobs is None:
            self._jobs = _made(self._jobs_factory, self, "jobs", "job catalog")
        return self._jobs


def _made(factory: Callable[[Any], Any] | None, store: Wired, attribute: str, what: str) -> Any:
    if factory is None:
        raise ConfigError(
            f"store.{attribute} needs a {what}, which pinnacle_ray.connect hands the store; "
            f"{store!r} was opened without one (pinnacle_ray.datastore.connect or its class "
            f"directly). Open it with pinnacle_ray.connect(url), or pass {attribute}= to "
            "pinnacle_ray.datastore.connect"
        )
    return factory(store)


def _reopen(
    cls: Callable[..., Any],
    args: tuple[Any, ...],
    models: ModelsFactory | None,
    jobs: JobsFactory | None,
) -> Any:
    """A pickled store, reconnected in this process with the factories it was handed."""
    return cls(*args, models=models, jobs=jobs)
