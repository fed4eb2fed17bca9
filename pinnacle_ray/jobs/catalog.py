"""``store.jobs``: the Ray jobs recorded in a datastore, as :class:`Job` handles.

``pinnacle_ray.connect`` hands the datastore the factory that makes it (``datastore/``
cannot import this room; it gets ``store.models`` the same way).
The trainers reach it only through the store they train on:

- ``trainer.submit(train=q, ...)`` calls ``q.store.jobs.submit(trainer, ...)``;
- every ``trainer.fit`` runs through ``store.jobs.record_fit(name, fit)``, which records the
  fit when the process is a Ray job's driver (plain ``ray job submit -- python train.py``)
  and does nothing otherwise.

Example::

    job = store.jobs.get("pr-house-price-1a2b3c4d5e6f")   # in any process, later
    job.status(); job.wait().version
    [j.id for j in store.jobs.list("house-price")]        # newest first
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._internal.names import validate_name
from .._internal.secrets import mask
from .handle import Job
from .recording import current_submission_id, mark_finished, recorded
from .records import JobRecord, JobRecords

if TYPE_CHECKING:
    from ..trainers.protocol import Trainer

__all__ = ["JobCatalog"]

logger = logging.getLogger("pinnacle_ray.jobs")

_T = TypeVar("_T")


class JobCatalog:
    """The jobs table of ``store`` (``store.jobs``): get, list, submit, and the recording of
    fits that run inside a Ray job."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.records = JobRecords(store)

    def __repr__(self) -> str:
        return f"JobCatalog({self.store.url!r})"

    def get(self, submission_id: str, address: str | None = None) -> Job:
        """The job ``submission_id`` (``JobNotFound`` naming recent ones when there is none);
        ``address`` overrides where its Ray cluster is (default: ``RAY_ADDRESS``, else the
        address recorded at submission)."""
        # The id reaches Ray's job REST API as a path segment: the names rule, checked here.
        validate_name(submission_id, "job id", ascii_only=True)
        self.records.get(submission_id)
        return Job(self.records, submission_id, address)

    def list(self, name: str | None = None) -> list[Job]:
        """The recorded jobs (of model ``name``), newest first."""
        if name is not None:
            validate_name(name)
        return [Job(self.records, r.submission_id) for r in self.records.list(name)]

    def submit(
        self,
        trainer: Trainer,
        *,
        train: Any,
        valid: Any = None,
        register: bool | str = True,
        address: str | None = None,
        **kwargs: Any,
    ) -> Job:
        """``trainer``'s fit on ``train``/``valid`` started as a Ray job (see
        :func:`.remote.submit_fit`); its :class:`Job`, at once."""
        from .remote import submit_fit

        return submit_fit(
            self.store,
            trainer,
            train=train,
            valid=valid,
            register=register,
            address=address,
            **kwargs,
        )

    def record_fit(self, name: str, fit: Callable[[], _T]) -> _T:
        """Run ``fit()``; inside a Ray job's driver, record it in this store's jobs table:
        RUNNING (a new record for a plain ``ray job submit``), FAILED with the error, or the
        model version it registered. Whether the job then succeeds is Ray's to say (the
        script may go on after its fit); reading the record reconciles it with Ray.

        Recording is best effort: a jobs table that cannot be written never stops a fit."""
        submission_id = current_submission_id()
        if submission_id is None:
            return fit()

        def new_record(now: dt.datetime) -> JobRecord:
            return JobRecord(
                submission_id=submission_id,
                name=name,
                status="RUNNING",
                source="ray job submit",
                entrypoint="(ray job submit)",
                address=_job_server(),
                started_at=now,
            )

        stack = contextlib.ExitStack()
        try:
            stack.enter_context(recorded(self.records, submission_id, new_record, catch_stop=False))
        except Exception as exc:
            logger.warning("job %s: its fit is not recorded (%s)", submission_id, exc)
            return fit()
        with stack:
            result = fit()
        try:
            mark_finished(
                self.records,
                submission_id,
                name=getattr(result, "name", name),
                version=getattr(result, "version", None),
                metrics=dict(getattr(result, "metrics", None) or {}),
                status=None,
            )
        except Exception as exc:
            logger.warning("job %s: could not record its model version (%s)", submission_id, exc)
        return result


def _job_server() -> str | None:
    """The Ray job server (dashboard) of the cluster this driver runs on, for reconciling
    its record later; None when it cannot be found."""
    try:
        from ray.dashboard.utils import get_address_for_submission_client

        return mask(get_address_for_submission_client(None))
    except Exception as exc:  # a record without an address is reconciled via RAY_ADDRESS
        logger.debug("no job server address for the record: %s", exc)
        return None
