"""Ray's side of a job: reach the job server, read status and logs, stop, wait, and bring a
job record in line with what Ray says (a job that failed or was stopped never stays
``RUNNING`` in the record, whatever happened to its driver).

Everything goes through Ray's own ``JobSubmissionClient``; a job id here is Ray's
submission id, so ``ray job status/logs/stop ID`` work on the same jobs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

from .._internal.constants import ray_address
from .._internal.secrets import mask
from ..errors import ClusterUnreachable, JobError, JobNotFound
from .records import ACTIVE, TERMINAL, JobRecord, JobRecords

__all__ = [
    "EXIT_CODES",
    "connect_client",
    "follow_logs",
    "job_logs",
    "ray_record",
    "reconcile",
    "reconcile_unreachable",
    "resolve_address",
    "stop_job",
    "wait_for",
]

# What `pinnacle-ray submit --wait`, `jobs status` and `jobs logs --follow` exit with.
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 3, "STOPPED": 4}
_PROBE_TIMEOUT_S = 5.0


def resolve_address(address: str | None, record: JobRecord | None = None) -> str:
    """The job server to talk to: ``address``, else ``RAY_ADDRESS``, else the record's."""
    chosen = address or ray_address() or (record.address if record else None)
    if not chosen:
        raise JobError(
            "no Ray cluster address: pass --address http://<head>:8265 or set RAY_ADDRESS"
        )
    return chosen


def connect_client(address: str) -> Any:
    """Ray's ``JobSubmissionClient`` for ``address``; ``ClusterUnreachable`` within seconds
    when nothing answers there."""
    from ray.job_submission import JobSubmissionClient

    parsed = urlparse(address if "://" in address else f"http://{address}")
    # "auto": Ray finds the cluster started on this machine (`ray start`) itself
    if address != "auto" and parsed.scheme in ("http", "https") and parsed.hostname:
        port = parsed.port or (443 if parsed.scheme == "https" else 8265)
        try:
            socket.create_connection((parsed.hostname, port), timeout=_PROBE_TIMEOUT_S).close()
        except OSError as exc:
            raise ClusterUnreachable(
                f"no Ray cluster answers at {mask(address)} ({exc.strerror or exc}); start one "
                "(`ray start --head`, `ray up cluster.yaml`) or pass the head's dashboard "
                "address, e.g. --address http://127.0.0.1:8265",
                refused=isinstance(exc, ConnectionRefusedError),
            ) from None
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray
        raise ClusterUnreachable(
            f"cannot use the Ray job server at {mask(address)}: {mask(_first_line(exc))}"
        ) from None


def ray_record(client: Any, submission_id: str) -> JobRecord | None:
    """The job as Ray knows it (None when Ray has no such job)."""
    try:
        info = client.get_job_info(submission_id)
    except Exception as exc:
        if _missing(exc):
            return None
        raise JobError(f"cannot read job {submission_id!r} from Ray: {_first_line(exc)}") from None
    metadata = dict(info.metadata or {})
    status = str(getattr(info.status, "value", info.status))
    return JobRecord(
        submission_id=submission_id,
        name=metadata.get("pinnacle_name", ""),
        status=status,
        spec_digest=metadata.get("pinnacle_spec_digest", ""),
        entrypoint=info.entrypoint or "",
        address=mask(getattr(client, "_address", None) or "") or None,
        started_at=_from_ms(info.start_time),
        ended_at=_from_ms(info.end_time),
        error=info.message if status == "FAILED" else None,
    )


def reconcile(records: JobRecords | None, record: JobRecord, client: Any) -> JobRecord:
    """``record`` corrected from Ray's status when the record still says it is active:
    Ray's FAILED/STOPPED/SUCCEEDED wins, and a job that the cluster it was submitted to no
    longer knows becomes FAILED (another cluster's silence proves nothing)."""
    if record.status not in ACTIVE:
        return record
    ray_side = ray_record(client, record.submission_id)
    if ray_side is None:
        if not _same_cluster(record.address, client._address):
            return record  # it may run on the cluster it was submitted to; not ours to judge
        changes: dict[str, Any] = {
            "status": "FAILED",
            "error": f"the Ray cluster at {mask(client._address)} has no job "
            f"{record.submission_id!r} (was the cluster restarted?); its driver is gone",
        }
    elif ray_side.status in TERMINAL:
        changes = {"status": ray_side.status, "ended_at": ray_side.ended_at or _now()}
        if ray_side.status != "SUCCEEDED":
            changes["error"] = record.error or ray_side.error or f"{ray_side.status} in Ray"
    elif ray_side.status != record.status and record.status == "PENDING":
        changes = {"status": ray_side.status, "started_at": ray_side.started_at}
    else:
        return record
    fixed = replace(record, **changes)
    if records is not None:
        records.save(fixed)
    return fixed


def reconcile_unreachable(
    records: JobRecords | None, record: JobRecord, address: str, error: ClusterUnreachable
) -> JobRecord:
    """``record`` marked FAILED ("cluster unreachable") when it is still active and the
    cluster it was submitted to refuses connections: that cluster was stopped, so its job
    cannot be running. A timeout or an unknown host (maybe our network, not the cluster)
    and another cluster's silence change nothing."""
    if record.status not in ACTIVE or not error.refused:
        return record
    if not _same_cluster(record.address, address):
        return record
    fixed = replace(
        record,
        status="FAILED",
        ended_at=_now(),
        error=f"cluster unreachable: the Ray cluster at {address} that ran this job refuses "
        f"connections (it was stopped or restarted), so its driver is gone; marked FAILED "
        f"at {_now().isoformat(timespec='seconds')}",
    )
    if records is not None:
        records.save(fixed)
    return fixed


def wait_for(
    client: Any,
    submission_id: str,
    on_status: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
) -> str:
    """Poll Ray until the job ends; its final status (``on_status`` sees each change)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = None
    while True:
        status = str(getattr(s := client.get_job_status(submission_id), "value", s))
        if status != seen and on_status is not None:
            on_status(status)
        seen = status
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise JobError(f"job {submission_id} still {status} after {timeout_s:.0f} s")
        time.sleep(1.0)


def job_logs(client: Any, submission_id: str) -> str:
    """The driver's stdout/stderr so far, from Ray."""
    try:
        return client.get_job_logs(submission_id)
    except Exception as exc:
        if _missing(exc):
            raise JobNotFound(
                f"the Ray cluster at {mask(client._address)} has no job {submission_id!r}"
            ) from None
        raise JobError(f"cannot read the logs of {submission_id!r}: {_first_line(exc)}") from None


def follow_logs(client: Any, submission_id: str) -> Iterator[str]:
    """The driver's logs as they are written, until the job ends (Ray's ``tail_job_logs``)."""
    loop = asyncio.new_event_loop()
    stream = client.tail_job_logs(submission_id).__aiter__()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(_close(stream))
        loop.close()


async def _close(stream: Any) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()


def stop_job(client: Any, submission_id: str, timeout_s: float = 60.0) -> str:
    """Ask Ray to stop the job and wait until it has ended; its final status."""
    try:
        client.stop_job(submission_id)
    except Exception as exc:
        if _missing(exc):
            raise JobNotFound(
                f"the Ray cluster at {mask(client._address)} has no job {submission_id!r}"
            ) from None
        raise JobError(f"cannot stop {submission_id!r}: {_first_line(exc)}") from None
    return wait_for(client, submission_id, timeout_s=timeout_s)


def _same_cluster(recorded: str | None, address: str) -> bool:
    def norm(a: str) -> str:  # records keep the address with its password masked
        return mask(a if "://" in a else f"http://{a}").rstrip("/").lower()

    return bool(recorded) and norm(recorded) == norm(address)


def _missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "does not exist" in text or "not found" in text or "404" in text


def _from_ms(value: int | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
