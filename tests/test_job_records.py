"""Job records live in the run's own datastore (SQLite, PostgreSQL, MariaDB alike): created
once per submission id, updated in place, listed newest first, found again by id."""

from __future__ import annotations

import datetime as dt

import pytest

import pinnacle_ray as pr
from pinnacle_ray.jobs import JobRecord, JobRecords

pytestmark = pytest.mark.with_mongo  # every test also runs on MongoDB


@pytest.fixture
def jobs(store, tables) -> JobRecords:
    name = tables("jobs")  # dropped after the test
    return JobRecords(store, prefix=name.removesuffix("_jobs"))


def record(sid: str, **fields) -> JobRecord:
    return JobRecord(submission_id=sid, name="house-xgb", status="PENDING", **fields)


def test_record_round_trips_with_spec_times_and_model_version(jobs):
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    jobs.create(record("pr-a", spec={"store": "${DB_URL}"}, address="http://h:8265"))
    jobs.update("pr-a", status="SUCCEEDED", started_at=started, model_name="house-xgb",
                model_version=3, metrics={"valid/rmse": 1.5})  # fmt: skip
    got = jobs.get("pr-a")
    assert (got.status, got.model_version, got.started_at) == ("SUCCEEDED", 3, started)
    assert got.spec == {"store": "${DB_URL}"} and got.metrics == {"valid/rmse": 1.5}
    assert got.created_at is not None and got.address == "http://h:8265"


def test_second_record_with_the_same_submission_id_is_refused(jobs):
    jobs.create(record("pr-a"))
    with pytest.raises(pr.DuplicateKey):
        jobs.create(record("pr-a"))


def test_list_is_newest_first_and_filters_by_name_and_digest(jobs):
    for i in range(3):
        created = dt.datetime(2026, 1, 1, 0, 0, i, tzinfo=dt.timezone.utc)
        jobs.create(record(f"pr-{i}", spec_digest="abc" if i else "def", created_at=created))
    assert [r.submission_id for r in jobs.list()] == ["pr-2", "pr-1", "pr-0"]
    assert [r.submission_id for r in jobs.list(digest="abc")] == ["pr-2", "pr-1"]
    assert jobs.list(name="other") == []


def test_unknown_id_is_job_not_found_naming_recent_jobs(jobs):
    assert jobs.find("pr-x") is None  # before the table exists
    jobs.create(record("pr-a"))
    with pytest.raises(pr.JobNotFound, match=r"no job 'pr-x' .*recent jobs: \['pr-a'\]"):
        jobs.get("pr-x")
