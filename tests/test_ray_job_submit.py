"""A user's own script that calls ``fit``, run with the real ``ray job submit`` command (no
pinnacle CLI) against a local head with token authentication: the fit records the job in
the store's jobs table (Ray's submission id, status, the registered version), and reading
the record reconciles it with Ray: SUCCEEDED after the script ends, FAILED when the fit
raised or when the driver died after registering.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_URL, Tables
from ray_cluster import BIN, LocalCluster
from tabular_data import diabetes

import pinnacle_ray as pr
from pinnacle_ray.jobs import JobRecord, JobRecords

pytestmark = pytest.mark.timeout(600)

SCRIPTS = Path(__file__).parent / "submit_scripts"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def store(artifacts: Path) -> Iterator[pr.SqlDatastore]:
    store = pr.connect(PG_URL, artifact_root=artifacts)
    names = Tables(store)
    store.test_table = names("diabetes")  # type: ignore[attr-defined]
    diabetes(store, store.test_table)
    yield store
    names.drop_all()
    store.close()


def ray_job_submit(
    cluster: LocalCluster, store: pr.SqlDatastore, artifacts: Path, mode: str
) -> tuple[subprocess.CompletedProcess, str]:
    """``ray job submit --address ... --working-dir submit_scripts -- python
    train_in_ray_job.py ...`` (it waits for the job); the process and the model name."""
    name = f"plain-{mode}-{uuid.uuid4().hex[:6]}"
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cluster.address,
         "--working-dir", str(SCRIPTS), "--",
         "python", "train_in_ray_job.py", PG_URL, str(artifacts), store.test_table, name, mode],
        env=cluster.env, capture_output=True, text=True, timeout=500,
    )  # fmt: skip
    return proc, name


def only_record(store: pr.SqlDatastore, name: str) -> JobRecord:
    records = JobRecords(store).list(name)
    assert len(records) == 1, records
    return records[0]


def reconciled(cluster: LocalCluster, artifacts: Path, job_id: str) -> dict:
    """``store.jobs.get(job_id).record`` in a new process with the cluster's environment."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "job_client.py"), "record", PG_URL, str(artifacts), job_id],
        env=cluster.env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["record"]


def test_fit_in_a_plain_ray_job_records_its_submission_id_and_version_when_it_succeeds(
    cluster, store, artifacts
):
    proc, name = ray_job_submit(cluster, store, artifacts, "ok")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"registered {name} version 1" in proc.stdout

    written = only_record(store, name)  # as the driver left it: the script may go on
    assert written.submission_id.startswith("raysubmit_")
    assert written.submission_id in proc.stdout + proc.stderr
    assert (written.status, written.model_name, written.model_version) == ("RUNNING", name, 1)
    assert written.address == cluster.address
    assert written.metrics["valid/r2"] > 0.3

    record = reconciled(cluster, artifacts, written.submission_id)

    assert (record["status"], record["model_version"]) == ("SUCCEEDED", 1)
    assert only_record(store, name).status == "SUCCEEDED"  # reconciling wrote it back
    assert store.models.get(name, version=1).name == name


def test_fit_in_a_plain_ray_job_is_recorded_failed_with_its_error_when_it_raises(
    cluster, store, artifacts
):
    proc, name = ray_job_submit(cluster, store, artifacts, "fail")
    assert proc.returncode != 0

    written = only_record(store, name)
    assert written.status == "FAILED"
    assert "no_such_column" in written.error
    assert written.model_version is None
    assert reconciled(cluster, artifacts, written.submission_id)["status"] == "FAILED"


def test_plain_ray_job_record_is_reconciled_failed_when_its_driver_dies_after_the_fit(
    cluster, store, artifacts
):
    proc, name = ray_job_submit(cluster, store, artifacts, "die")
    assert proc.returncode != 0

    written = only_record(store, name)
    assert (written.status, written.model_version) == ("RUNNING", 1)  # the driver never ended it

    record = reconciled(cluster, artifacts, written.submission_id)

    assert (record["status"], record["model_version"]) == ("FAILED", 1)
    assert record["error"]
    assert only_record(store, name).status == "FAILED"
