"""``Job``: a handle on one Ray job whose record lives in a datastore's jobs table.

``trainer.submit(...)`` returns one, ``store.jobs.get(id)`` gives one back in any other
process, later (the record holds the cluster's address, Ray holds the job). Status and logs
come from Ray through its ``JobSubmissionClient``; the record is brought in line with Ray
whenever it is read (:func:`.tracking.reconcile`), so a driver that died never leaves it
``RUNNING``.

Example::

    job = trainer.submit(train=q, valid=v)        # returns at once
    job.id, job.status()                          # 'pr-house-price-1a2b3c4d5e6f', 'RUNNING'
    result = job.wait()                           # a TrainResult: name, version, metrics
    store.jobs.get(job.id).wait()                 # the same, from another process
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import ClusterUnreachable, JobError, JobFailed
from .records import TERMINAL, JobRecord, JobRecords
from .tracking import (
    connect_client,
    job_logs,
    reconcile,
    reconcile_unreachable,
    resolve_address,
    stop_job,
)

if TYPE_CHECKING:
    from ..trainers import TrainResult

__all__ = ["Job"]

_POLL_S = 1.0


class Job:
    """A Ray job started by ``trainer.submit`` (or recorded by a ``fit`` in a plain
    ``ray job submit`` script): ``id``, ``status()``, ``logs()``, ``wait()``, ``stop()``.

    ``address`` is the Ray job server to ask (``http://<head>:8265``); by default
    ``RAY_ADDRESS``, else the address recorded when the job was submitted.
    """

    def __init__(self, records: JobRecords, submission_id: str, address: str | None = None) -> None:
        self._records = records
        self.id = submission_id
        self._address = address
        self._client: Any = None

    def __repr__(self) -> str:
        return f"Job({self.id!r}, store={self._records.store.url!r})"

    @property
    def record(self) -> JobRecord:
        """The job's record, corrected from Ray's status when it still says it is active
        (as recorded when no cluster address is known, or the cluster cannot be reached for
        another reason than a refusal)."""
        record = self._records.get(self.id)
        if not record.active:
            return record
        try:
            address = resolve_address(self._address, record)
        except JobError:
            return record  # no cluster to ask: as recorded
        try:
            client = self._connect(record)
        except ClusterUnreachable as exc:
            return reconcile_unreachable(self._records, record, address, exc)
        return reconcile(self._records, record, client)

    def status(self) -> str:
        """Ray's status of the job: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        return self.record.status

    def logs(self) -> str:
        """The driver's output so far (the fit's progress, a failure's traceback), from Ray."""
        return job_logs(self._connect(self._records.get(self.id)), self.id)

    def wait(self, timeout: float | None = None) -> TrainResult:
        """Block until the job ends; its ``TrainResult`` (name, registered version, metrics,
        the registered checkpoint). ``JobFailed`` (with the recorded error) when it failed
        or was stopped; ``JobError`` when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.record
            if record.status in TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise JobError(
                    f"job {self.id} is still {record.status} after {timeout:g} s; call "
                    "wait() again, or job.stop() to end it"
                )
            time.sleep(_POLL_S)
        if record.status != "SUCCEEDED":
            raise JobFailed(
                f"job {self.id} ended {record.status}: {record.error or 'no error recorded'}. "
                "Its driver's output: job.logs()",
                status=record.status,
                error=record.error,
            )
        return self._result(record)

    def stop(self, timeout: float = 60.0) -> str:
        """Ask Ray to stop the job and wait until it has; the job's final status."""
        record = self._records.get(self.id)
        stop_job(self._connect(record), self.id, timeout_s=timeout)
        return self.record.status

    def _connect(self, record: JobRecord) -> Any:
        if self._client is None:
            self._client = connect_client(resolve_address(self._address, record))
        return self._client

    def _result(self, record: JobRecord) -> TrainResult:
        from ..trainers import TrainResult

        name = record.model_name or record.name
        checkpoint = None
        if record.model_version is not None:
            import ray.train

            store = self._records.store
            folder = store.models.checkpoint_dir(name, version=record.model_version)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        return TrainResult(
            name=name,
            metrics=dict(record.metrics or {}),
            checkpoint=checkpoint,
            version=record.model_version,
        )
