"""End to end on a real local Ray cluster (``ray start --head``, one for this module): specs
submitted with the user's own ``ray job submit`` and with ``pinnacle-ray submit``, job
records in the datastore, logs from Ray, failures and stops that never stay "running"."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ray_cluster import BIN, LocalCluster

import pinnacle_ray as pr
from pinnacle_ray.jobs import JobRecord, JobRecords
from pinnacle_ray.jobs.quickstart import write_quickstart
from pinnacle_ray.jobs.tracking import connect_client, wait_for

pytestmark = pytest.mark.timeout(420)

FEATURES = "[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]"
SPEC = """\
name: {name}
store: ${{PINNACLE_RAY_STORE}}
train:
  table: patients
  where: {{split: train}}
trainer:
  kind: sklearn
  estimator: sklearn.ensemble:RandomForestRegressor
  estimator_args: {{n_estimators: {trees}, max_depth: 4, random_state: 0}}
  features: {features}
  label: progression
  num_cpus: 1
predict:
  query: {{table: patients, key: id}}
  output: forest_predictions
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Specs in a working dir; the data (diabetes table) in a SQLite file beside it."""
    data = tmp_path_factory.mktemp("data")
    write_quickstart(data, epochs=1)
    work = tmp_path_factory.mktemp("work")
    specs = {
        "good": SPEC.format(name="forest", trees=20, features=FEATURES),
        "slow": SPEC.format(name="slow-forest", trees=200_000, features=FEATURES),
        "bad": SPEC.format(name="broken", trees=5, features="[age, no_such_column]"),
    }
    for name, text in specs.items():
        (work / f"{name}.yaml").write_text(text)
    return {"work": work, "db": data / "quickstart.db"}


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, workspace: dict[str, Path]) -> dict[str, str]:
    return {**cluster.env, "PINNACLE_RAY_STORE": f"sqlite:///{workspace['db']}"}


@pytest.fixture(scope="module")
def store(workspace: dict[str, Path]) -> pr.SqlDatastore:
    return pr.connect(workspace["db"])


def cli(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pinnacle-ray"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def failed_job(
    env: dict[str, str], workspace: dict[str, Path]
) -> tuple[str, subprocess.CompletedProcess]:
    # --follow streams the driver's logs (to stderr with --json) until the job ends
    proc = cli(env, workspace["work"], "submit", "bad.yaml", "--follow", "--json")
    return json.loads(proc.stdout.strip().splitlines()[-1])["submission_id"], proc


def test_ray_job_submit_runs_a_spec_and_records_the_model_it_produced(env, workspace, store):
    runtime_env = json.dumps({"env_vars": {"PINNACLE_RAY_STORE": env["PINNACLE_RAY_STORE"]}})
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--working-dir", ".", "--runtime-env-json",
         runtime_env, "--", "pinnacle-ray", "train", "good.yaml"],
        env=env, cwd=workspace["work"], capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ray_ids = [
        r for r in JobRecords(store).list("forest") if r.submission_id.startswith("raysubmit_")
    ]
    assert len(ray_ids) == 1
    record = ray_ids[0]
    assert record.status == "SUCCEEDED"
    assert store.models.get("forest", version=record.model_version).name == "forest"


def test_submitted_job_outlives_the_client_and_registers_its_model(env, workspace, store, cluster):
    proc = cli(env, workspace["work"], "submit", "good.yaml", "--json")  # no --wait: exits now
    assert proc.returncode == 0, proc.stderr[-3000:]
    sid = json.loads(proc.stdout)["submission_id"]
    assert sid.startswith("pr-forest-")
    assert wait_for(connect_client(cluster.address), sid, timeout_s=240) == "SUCCEEDED"
    record = JobRecords(store).get(sid)
    assert (record.status, record.model_name) == ("SUCCEEDED", "forest")
    assert store.models.get("forest", version=record.model_version).version == record.model_version
    logs = cli(env, workspace["work"], "jobs", "logs", sid)
    assert f"registered as forest version {record.model_version}" in logs.stdout


def test_submit_run_predict_writes_the_predictions_and_records_the_version_used(
    env, workspace, store
):
    if not store.models.list("forest"):  # run alone: the tests above registered it
        trained = cli(env, workspace["work"], "submit", "good.yaml", "--wait")
        assert trained.returncode == 0, trained.stderr[-3000:]
    latest = store.models.get("forest").version
    proc = cli(env, workspace["work"], "submit", "good.yaml", "--run", "predict", "--wait",
               "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = JobRecords(store).get(json.loads(proc.stdout)["submission_id"])
    assert (record.status, record.model_name, record.model_version) == (
        "SUCCEEDED",
        "forest",
        latest,
    )
    written = store.sql("SELECT COUNT(*) AS n FROM forest_predictions").to_arrow()["n"][0].as_py()
    assert written == 442


def test_same_spec_is_refused_while_it_runs_forced_under_the_next_id_and_stop_records_stopped(
    env, workspace, store
):
    # One running job for three facets: a second submit is refused, --force submits it
    # again under a new id, and stopping it records STOPPED.
    first = cli(env, workspace["work"], "submit", "slow.yaml", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    sid = json.loads(first.stdout)["submission_id"]
    running = [sid]  # stopped at the end whatever fails
    try:
        again = cli(env, workspace["work"], "submit", "slow.yaml")
        assert again.returncode == 1
        assert f"already running as job {sid}" in again.stderr
        forced = cli(env, workspace["work"], "submit", "slow.yaml", "--force", "--json")
        assert forced.returncode == 0, forced.stderr[-3000:]
        running.append(json.loads(forced.stdout)["submission_id"])
        assert running[-1] != sid
        stopped = cli(env, workspace["work"], "jobs", "stop", sid, "--spec", "slow.yaml", "--json")
        running.remove(sid)
        assert stopped.returncode == 0, stopped.stderr[-3000:]
        assert json.loads(stopped.stdout)["status"] == "STOPPED"
        assert JobRecords(store).get(sid).status == "STOPPED"
    finally:
        for job in running:
            cli(env, workspace["work"], "jobs", "stop", job)


def test_failing_spec_is_failed_with_its_error_recorded_and_traceback_in_logs(
    failed_job, env, workspace, store
):
    sid, proc = failed_job
    assert proc.returncode == 3  # the job FAILED
    assert "Traceback (most recent call last)" in proc.stderr  # streamed while it ran
    record = JobRecords(store).get(sid)
    assert record.status == "FAILED"
    assert record.error.startswith("ColumnNotFound") and "no_such_column" in record.error
    logs = cli(env, workspace["work"], "jobs", "logs", sid)
    assert "Traceback (most recent call last)" in logs.stdout
    assert "ColumnNotFound" in logs.stdout


def test_follow_on_a_finished_job_prints_its_logs_and_exits_with_its_status(
    failed_job, env, workspace
):
    sid, _ = failed_job
    proc = cli(env, workspace["work"], "jobs", "logs", sid, "--follow", timeout=60)
    assert proc.returncode == 3
    assert "ColumnNotFound" in proc.stdout


def test_record_left_running_is_corrected_from_rays_status(failed_job, env, workspace, store):
    sid, _ = failed_job
    jobs = JobRecords(store)
    jobs.save(
        JobRecord(submission_id=sid, name="broken", status="RUNNING", address=env["RAY_ADDRESS"])
    )
    proc = cli(
        env, workspace["work"], "jobs", "list", "--store", env["PINNACLE_RAY_STORE"], "--json"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = {r["submission_id"]: r["status"] for r in json.loads(proc.stdout)}
    assert listed[sid] == "FAILED"
    assert jobs.get(sid).status == "FAILED"


def test_unknown_job_id_is_a_clear_error(env, workspace):
    proc = cli(env, workspace["work"], "jobs", "status", "pr-nothing-000", "--spec", "good.yaml")
    assert proc.returncode == 1
    assert "no job 'pr-nothing-000'" in proc.stderr


def test_record_of_a_job_its_cluster_does_not_know_becomes_failed_but_not_for_other_clusters(
    cluster, store
):
    from pinnacle_ray.jobs.tracking import reconcile

    jobs = JobRecords(store)
    client = connect_client(cluster.address)
    ours = jobs.save(JobRecord(submission_id="pr-lost-1", name="lost", status="RUNNING",
                               address=cluster.address))  # fmt: skip
    elsewhere = jobs.save(JobRecord(submission_id="pr-lost-2", name="lost", status="RUNNING",
                                    address="http://10.0.0.9:8265"))  # fmt: skip
    fixed = reconcile(jobs, ours, client)
    assert fixed.status == "FAILED" and "has no job 'pr-lost-1'" in fixed.error
    assert reconcile(jobs, elsewhere, client).status == "RUNNING"
    assert jobs.get("pr-lost-2").status == "RUNNING"
