"""Job records: one row per Ray job in the datastore's ``pinnacle_jobs`` table.

A record holds the submission id, the spec as written (secrets masked), the status, when it
started and ended, the model version it produced and the error if any. It is written
through the ``Datastore`` protocol only, so it lives wherever the run's data lives.

Example::

    jobs = JobRecords(store)
    jobs.get("pr-house-price-1a2b3c4d5e6f")     # a JobRecord
    jobs.list()                                # newest first
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any

import pyarrow as pa

from .._internal.clock import as_utc, utc_now
from .._internal.json_text import from_json, to_json
from .._internal.secrets import mask
from ..datastore.base import Datastore
from ..errors import JobNotFound

__all__ = ["ACTIVE", "TERMINAL", "JobRecord", "JobRecords"]

# Ray's own job statuses (ray.job_submission.JobStatus), kept as they are.
ACTIVE = ("PENDING", "RUNNING")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

JOBS = pa.schema(
    [
        ("submission_id", pa.string()),
        ("name", pa.string()),  # the spec's model name
        ("spec_digest", pa.string()),
        ("spec", pa.string()),  # JSON, as written, secrets masked
        ("source", pa.string()),  # the spec file's path
        ("entrypoint", pa.string()),
        ("address", pa.string()),  # the Ray job server it was submitted to
        ("status", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("ended_at", pa.timestamp("us", tz="UTC")),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("metrics", pa.string()),  # JSON
        ("error", pa.string()),
    ]
)
KEY = ["submission_id"]


@dataclass(frozen=True)
class JobRecord:
    """One job as recorded: what ran, where, its status and what it produced."""

    submission_id: str
    name: str
    status: str
    spec_digest: str = ""
    spec: dict[str, Any] | None = None
    source: str = ""
    entrypoint: str = ""
    address: str | None = None
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    model_name: str | None = None
    model_version: int | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json`` output (times as ISO text)."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, dt.datetime):
                out[k] = v.isoformat()
        return out


class JobRecords:
    """The ``<prefix>_jobs`` table of a datastore."""

    def __init__(self, store: Datastore, prefix: str = "pinnacle") -> None:
        self.store = store
        self.table = f"{prefix}_jobs"
        self._ready = False

    def _ensure(self, *, create: bool) -> bool:
        if self._ready:
            return True
        if self.table in self.store.tables():
            self._ready = True
        elif create:
            self.store.insert(self.table, JOBS.empty_table(), KEY)
            self._ready = True
        return self._ready

    def create(self, record: JobRecord) -> JobRecord:
        """Insert ``record``; refused (``DuplicateKey``) if its submission id exists."""
        self._ensure(create=True)
        record = record if record.created_at else replace(record, created_at=utc_now())
        self.store.insert(self.table, _arrow(record), KEY)
        return record

    def save(self, record: JobRecord) -> JobRecord:
        """Insert or replace ``record`` by submission id."""
        self._ensure(create=True)
        record = record if record.created_at else replace(record, created_at=utc_now())
        self.store.write(self.table, _arrow(record), KEY)
        return record

    def update(self, submission_id: str, **changes: Any) -> JobRecord:
        """Change fields of an existing record; returns the new record."""
        record = replace(self.get(submission_id), **changes)
        self.store.write(self.table, _arrow(record), KEY)
        return record

    def delete(self, submission_id: str) -> None:
        """Remove a record (a submission Ray refused)."""
        if self._ensure(create=False):
            self.store.delete(self.table, {"submission_id": submission_id})

    def find(self, submission_id: str) -> JobRecord | None:
        """The record of ``submission_id``, or None."""
        if not self._ensure(create=False):
            return None
        rows = self._rows({"submission_id": submission_id})
        return _record(rows[0]) if rows else None

    def get(self, submission_id: str) -> JobRecord:
        """The record of ``submission_id``; ``JobNotFound`` when there is none."""
        record = self.find(submission_id)
        if record is None:
            known = [r.submission_id for r in self.list()[:5]]
            raise JobNotFound(
                f"no job {submission_id!r} in {self.store.url}"
                + (f"; recent jobs: {known}" if known else "; no job has been recorded there")
            )
        return record

    def list(self, name: str | None = None, digest: str | None = None) -> list[JobRecord]:
        """Records (of model ``name`` / spec ``digest``), newest first."""
        if not self._ensure(create=False):
            return []
        where: dict[str, Any] = {}
        if name is not None:
            where["name"] = name
        if digest is not None:
            where["spec_digest"] = digest
        records = [_record(r) for r in self._rows(where)]
        return sorted(records, key=lambda r: as_utc(r.created_at) or _NEVER, reverse=True)

    def _rows(self, where: dict[str, Any]) -> list[dict[str, Any]]:
        return self.store.table(self.table, where=where or None).to_arrow().to_pylist()


# Sorts a record without a creation time (none is written so) after every other.
_NEVER = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _arrow(record: JobRecord) -> pa.Table:
    # Every text a record keeps is masked here too, whoever built the record: a URL's
    # password, a "password=..." setting, a secret-named field.
    row = {k: mask(v) if isinstance(v, str) else v for k, v in asdict(record).items()}
    row["spec"] = to_json(mask(record.spec or {}))
    row["metrics"] = to_json(mask(record.metrics or {}))
    return pa.Table.from_pylist([row], schema=JOBS)


def _record(row: dict[str, Any]) -> JobRecord:
    row = dict(row)
    row["spec"] = from_json(row.get("spec"))
    row["metrics"] = from_json(row.get("metrics"))
    for k in ("created_at", "started_at", "ended_at"):
        if row.get(k) is not None:
            row[k] = as_utc(row[k])
    if row.get("model_version") is not None:
        row["model_version"] = int(row["model_version"])
    return JobRecord(**{k: row.get(k) for k in JobRecord.__dataclass_fields__})
