"""Keep a Ray job's record in step with its driver: ``RUNNING`` when work starts, the model
version it produced, ``FAILED`` with the error, ``STOPPED`` when Ray stops it.

One context manager serves every driver that records itself: ``pinnacle-ray train`` (a spec),
the entry that runs a ``trainer.submit(...)`` on the cluster, and a user's own script run
with plain ``ray job submit`` whose ``fit`` finds it runs inside a Ray job. What a killed
driver could not write is corrected later from Ray's own status (:mod:`.tracking`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._internal.constants import RAY_JOB_CONFIG_ENV, env_text
from .._internal.secrets import is_secret_variable, mask
from .records import JobRecord, JobRecords

__all__ = [
    "STOPPED_TEXT",
    "current_submission_id",
    "error_text",
    "mark_finished",
    "recorded",
    "secret_values",
]

logger = logging.getLogger("pinnacle_ray.jobs")


STOPPED_TEXT = "stopped by Ray (ray job stop / pinnacle-ray jobs stop / job.stop())"


def current_submission_id() -> str | None:
    """The Ray job submission id when this process is a Ray job's driver, else None."""
    text = env_text(RAY_JOB_CONFIG_ENV)
    if not text:
        return None
    try:
        metadata = json.loads(text).get("metadata") or {}
    except (ValueError, AttributeError):
        return None
    return metadata.get("job_submission_id") or None


def secret_values(names: Sequence[str]) -> list[str]:
    """The values of the secret-named environment variables among ``names``."""
    return [os.environ.get(n, "") for n in names if is_secret_variable(n)]


def error_text(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """The error for a record: passwords in URLs masked, the given secret values replaced by
    ``***``, at most 4000 characters."""
    return mask(f"{type(exc).__name__}: {exc}", secrets)[:4000]


class _Stopped(BaseException):
    """Ray stopped the job (SIGTERM); recorded as STOPPED, not as a failure."""


@contextlib.contextmanager
def recorded(
    records: JobRecords,
    submission_id: str,
    new_record: Callable[[dt.datetime], JobRecord],
    *,
    secrets: Sequence[str] = (),
    catch_stop: bool = True,
) -> Iterator[None]:
    """Mark ``submission_id`` RUNNING for the block (creating it with ``new_record(now)`` when
    nothing submitted it through us, e.g. plain ``ray job submit``), FAILED with the error
    when the block raises.

    ``catch_stop`` turns Ray's SIGTERM (``ray job stop``) into a STOPPED record and exit
    status 143; only for a driver that is ours (a user's script keeps its own signal
    handling: Ray's status says STOPPED and reconciling writes it).
    """
    now = dt.datetime.now(dt.timezone.utc)
    if records.find(submission_id) is None:
        records.save(new_record(now))
    else:
        records.update(submission_id, status="RUNNING", started_at=now, error=None)
    catching = catch_stop and threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if catching else None
    stopped: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopped.append(signum)
        raise _Stopped()

    if catching:
        signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except BaseException as exc:
        if stopped:
            # Raised inside a blocking Ray call, _Stopped comes back as another exception
            # (Ray 2.60 runs the handler when ray.get returns, inside its own code, and
            # raises a SystemError): the flag decides, not the exception's type.
            _end(records, submission_id, "STOPPED", STOPPED_TEXT)
            raise SystemExit(143) from None
        # the driver prints the traceback into the job's logs; the record keeps one line
        _end(records, submission_id, "FAILED", error_text(exc, secrets))
        raise
    finally:
        if catching:
            signal.signal(signal.SIGTERM, previous)


def mark_finished(
    records: JobRecords,
    submission_id: str,
    *,
    name: str,
    version: int | None,
    metrics: dict[str, Any],
    status: str | None = "SUCCEEDED",
) -> None:
    """Write what the run produced (model, version, metrics); with ``status`` the job is
    over (``None``: the driver goes on, e.g. a user's script after its ``fit``)."""
    changes: dict[str, Any] = {
        "model_name": name,
        "model_version": version,
        "metrics": mask(metrics),
    }
    if status is not None:
        changes.update(status=status, ended_at=dt.datetime.now(dt.timezone.utc))
    records.update(submission_id, **changes)


def _end(records: JobRecords, submission_id: str, status: str, error: str) -> None:
    try:
        records.update(
            submission_id, status=status, ended_at=dt.datetime.now(dt.timezone.utc), error=error
        )
    except Exception as exc:  # the run's own failure matters more; Ray's status still tells
        logger.warning("could not record job %s as %s: %s", submission_id, status, exc)
