"""What makes every trainer's fit a Ray job when asked (``trainer.submit``) and recorded
when it already is one (a ``fit`` inside a script run with plain ``ray job submit``).

Both go through the datastore the fit trains on: ``store.jobs`` is handed its implementation
by ``pinnacle_ray.jobs`` (as ``store.models`` is by the registry), so the trainers never
import the jobs room above them, and one mixin plus one decorator give the four trainers
the same behaviour instead of four copies of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import NotShippable
from .base import in_tune_trial, store_of
from .naming import checked_fit

__all__ = ["Submittable", "records_job"]

_F = TypeVar("_F", bound=Callable[..., Any])


class Submittable:
    """Adds ``submit``: the trainer's ``fit``, started as a Ray job that outlives this
    process.

    Example::

        job = trainer.submit(train=q, valid=v)    # returns at once
        job.status(); print(job.logs())
        result = job.wait()                       # TrainResult, registered in q's store
    """

    name: str

    def submit(
        self,
        train: Any,
        valid: Any = None,
        *,
        register: bool | str = True,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        **fit_kwargs: Any,
    ) -> Any:
        """Start ``fit(train, valid, ...)`` as a Ray job on the cluster at ``address`` (else
        ``RAY_ADDRESS``, else the local Ray) and return its ``pinnacle_ray.Job`` at once.

        ``register`` is True/False as for ``fit``, or a model name to register under.
        ``runtime_env`` is Ray's (``pip``, ``env_vars``, ``py_modules``); the trainer and
        the code of your own script travel pickled by value. The job is recorded in
        ``train``'s datastore: ``store.jobs.get(job.id)`` finds it from any process.
        Refused before anything is submitted: what cannot travel to the cluster
        (``NotShippable`` names it), a query the cluster cannot read.
        """
        store = store_of(train)
        if store is None or not hasattr(store, "jobs"):
            raise NotShippable(
                f"train= must be a datastore query (store.table / store.sql / store.find) to "
                f"submit a fit, got {type(train).__name__}: the job re-reads it on the "
                "cluster and records itself in its datastore. Pass the query, or call "
                "trainer.fit(...) here"
            )
        return store.jobs.submit(
            self,
            train=train,
            valid=valid,
            register=register,
            address=address,
            runtime_env=runtime_env,
            **fit_kwargs,
        )


def records_job(fit: _F) -> _F:
    """Decorator for a trainer's ``fit(self, train, valid=None, **kwargs)``: when the process
    is a Ray job's driver the fit is recorded in ``train``'s datastore
    (``store.jobs.record_fit``); a fit on a plain Dataset or inside a Tune trial runs as is.
    The trainer's names (and ``register="<name>"``) are checked before anything starts."""

    @functools.wraps(fit)
    def recorded_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Names first: they become folders and Ray run names as soon as the run starts.
        self, kwargs["register"] = checked_fit(
            self, kwargs.get("register", True), kwargs.get("resume_from"), kwargs.get("handle")
        )
        if in_tune_trial():  # a sweep's trial: the sweep is what its driver's job runs
            return fit(self, *args, **kwargs)
        store = store_of(args[0] if args else kwargs.get("train"))
        jobs = getattr(store, "jobs", None) if store is not None else None
        if jobs is None:  # a plain Dataset: no datastore to record in
            return fit(self, *args, **kwargs)
        return jobs.record_fit(self.name, lambda: fit(self, *args, **kwargs))

    return recorded_fit  # type: ignore[return-value]
