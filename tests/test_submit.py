"""``trainer.submit(...)``: a fit started as a Ray job from Python on a real local cluster
(``ray start --head`` with token authentication, one for this module), recorded in a
PostgreSQL jobs table, found and waited on by another process after the submitting one has
exited; failures reported as FAILED with their error, stops as STOPPED; what cannot travel
to the cluster refused before anything is submitted or recorded.

Every Ray client runs in a subprocess given the cluster's environment (``RAY_AUTH_MODE=token``
makes Ray's SDK send the token from ``~/.ray/auth_token``, the supported way).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray.data
import torch
from conftest import PG_URL as SERVER_URL
from conftest import Tables
from ray.train import ScalingConfig
from ray_cluster import BIN, LocalCluster
from sklearn.linear_model import Ridge
from sqlalchemy.engine import make_url
from tabular_data import diabetes
from text_data import sentiment_rows, tiny_bert

import pinnacle_ray as pr
from pinnacle_ray.jobs import JobRecord, JobRecords

pytestmark = pytest.mark.timeout(600)

SCRIPTS = Path(__file__).parent / "submit_scripts"
# The test server trusts local connections, so a made-up password works; it must never show.
_URL = make_url(SERVER_URL)
PASSWORD = _URL.password or "s3cret-pw"
PG_URL = _URL.set(password=PASSWORD).render_as_string(hide_password=False)
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("submit")


@pytest.fixture(scope="module")
def store(folder: Path) -> Iterator[pr.SqlDatastore]:
    """The PostgreSQL test database, its URL with a password: a diabetes and a reviews table."""
    store = pr.connect(PG_URL, artifact_root=folder / "artifacts")
    names = Tables(store)
    store.test_tables = [names("diabetes"), names("reviews")]  # type: ignore[attr-defined]
    diabetes(store, store.test_tables[0])
    store.write(store.test_tables[1], sentiment_rows(200), key="id")
    yield store
    names.drop_all()
    store.close()


def _run(cluster: LocalCluster, script: str, *args: str, timeout: float = 500) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        env=cluster.env,
        cwd=SCRIPTS,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def submit(
    cluster: LocalCluster, store: pr.SqlDatastore, kind: str, folder: Path, table: int = 0
) -> tuple[str, str, float]:
    """Submit from a client process that exits at once; (job id, model name, seconds the
    ``submit`` call took)."""
    name = f"submit-{kind}-{uuid.uuid4().hex[:6]}"
    args = {
        "url": PG_URL,
        "artifact_root": str(folder / "artifacts"),
        "table": store.test_tables[table],
        "kind": kind,
        "name": name,
        "model_dir": str(folder / "tiny-bert"),
    }
    out = _run(cluster, "submit_fit.py", json.dumps(args), timeout=200)
    assert out["status"] in ("PENDING", "RUNNING")  # returned before the fit ended
    return out["id"], name, out["seconds"]


def job_client(cluster: LocalCluster, action: str, folder: Path, job_id: str) -> dict:
    """``store.jobs.get(job_id)`` in a new process: wait / record / stop."""
    return _run(cluster, "job_client.py", action, PG_URL, str(folder / "artifacts"), job_id)


def ray_job(cluster: LocalCluster, job_id: str) -> str:
    """What Ray's dashboard shows of the job (``ray list jobs --detail``), as text."""
    proc = subprocess.run(
        [str(BIN / "ray"), "list", "jobs", "--detail", "--format", "json",
         "--address", cluster.gcs_address],
        env=cluster.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = [j for j in json.loads(proc.stdout) if j.get("submission_id") == job_id]
    assert len(jobs) == 1, proc.stdout[-2000:]
    return json.dumps(jobs[0])


def test_submitted_fit_is_registered_without_showing_its_password_when_the_client_exited(
    cluster, store, folder
):
    # One job for two facets: registered once the client is gone, and the password of the
    # store's URL never shown (Ray's job view) nor recorded.
    job_id, name, seconds = submit(cluster, store, "sklearn", folder)
    assert job_id.startswith(f"pr-{name}-")
    record = JobRecords(store).get(job_id)  # recorded before the client exited
    assert (record.name, record.source, record.address) == (name, "trainer.submit", cluster.address)

    out = job_client(cluster, "wait", folder, job_id)

    assert (out["status"], out["name"], out["version"]) == ("SUCCEEDED", name, 1)
    assert out["metrics"]["valid/r2"] > 0.3
    assert out["record"]["status"] == "SUCCEEDED"
    assert out["record"]["model_version"] == 1
    model = store.models.load(name)
    valid = store.table(store.test_tables[0], where={"split": "valid"}, key="id").to_arrow()
    predictions = model.predict(valid.select(FEATURES).to_pandas())
    assert len(predictions) == valid.num_rows
    assert Path(out["checkpoint"]).is_dir()
    assert job_id in [job.id for job in store.jobs.list(name)]
    assert seconds < 30, f"trainer.submit took {seconds:.1f} s to return"
    shown = ray_job(cluster, job_id)  # entrypoint, metadata, runtime_env, message
    assert "python -m pinnacle_ray.jobs.remote pinnacle_fit.pkl" in shown
    assert PASSWORD not in shown
    assert PASSWORD not in json.dumps(out["record"])


@pytest.mark.parametrize("kind", ["torch", "xgboost", "huggingface"])
def test_every_trainer_submits_and_registers_when_its_code_is_in_the_users_script(
    cluster, store, folder, kind
):
    if kind == "huggingface" and not (folder / "tiny-bert").exists():
        tiny_bert(folder / "tiny-bert")
    job_id, name, _ = submit(cluster, store, kind, folder, table=1 if kind == "huggingface" else 0)

    out = job_client(cluster, "wait", folder, job_id)

    assert (out["status"], out.get("name"), out.get("version")) == ("SUCCEEDED", name, 1), out
    version = store.models.get(name)
    assert version.framework == kind
    # a custom loop records no architecture: its module is given to load()
    given = {"model": torch.nn.Linear(len(FEATURES), 1)} if kind == "torch" else {}
    assert store.models.load(name, **given) is not None


def test_failing_job_reports_failed_with_its_error_when_the_loop_raises(cluster, store, folder):
    job_id, _, _ = submit(cluster, store, "failing", folder)

    out = job_client(cluster, "wait", folder, job_id)

    assert out["status"] == "FAILED"
    assert "ValueError: bad feature scaling in worker code" in out["error"]
    assert f"job {job_id} ended FAILED: ValueError" in out["message"]
    assert "Traceback" in out["logs"]
    record = JobRecords(store).get(job_id)
    assert (record.status, record.model_version) == ("FAILED", None)
    assert record.ended_at is not None


def test_stop_ends_the_job_and_records_it_stopped_when_it_is_running(cluster, store, folder):
    job_id, _, _ = submit(cluster, store, "slow", folder)

    out = job_client(cluster, "stop", folder, job_id)

    assert (out["before"], out["after"]) == ("RUNNING", "STOPPED")
    assert out["record"]["status"] == "STOPPED"
    assert "STOPPED" in ray_job(cluster, job_id)


# -- refused before anything is submitted or recorded (no cluster needed) ----------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> pr.SqlDatastore:
    store = pr.connect(tmp_path / "shop.db")
    diabetes(store, "diabetes")
    return store


def _ridge() -> pr.SklearnTrainer:
    return pr.SklearnTrainer(Ridge(), features=FEATURES, label="target", name="ridge")


def test_submit_is_refused_naming_the_argument_when_a_loop_holds_a_live_connection(
    sqlite_store, tmp_path
):
    connection = sqlite3.connect(tmp_path / "side.db")

    def loop(config: dict) -> None:
        connection.execute("SELECT 1")

    trainer = pr.TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=1), name="conn")
    with pytest.raises(pr.NotShippable) as refused:
        trainer.submit(train=sqlite_store.table("diabetes"), address="http://127.0.0.1:9")
    assert str(refused.value).startswith(
        "cannot send the fit to the cluster: TorchTrainer(train_loop_per_worker=...) does not "
        "pickle (TypeError: cannot pickle 'sqlite3.Connection' object)"
    )
    assert "pinnacle_jobs" not in sqlite_store.tables()


def test_submit_is_refused_when_train_is_a_plain_dataset():
    dataset = ray.data.from_items([{"x": 1.0, "target": 2.0}])
    with pytest.raises(
        pr.NotShippable, match=r"train= must be a datastore query .* got MaterializedDataset"
    ):
        _ridge().submit(train=dataset)


def test_submit_is_refused_when_the_sqlite_file_is_on_this_machine_and_the_cluster_is_not(
    sqlite_store,
):
    with pytest.raises(pr.NotShippable) as refused:
        _ridge().submit(train=sqlite_store.table("diabetes"), address="http://10.11.12.13:8265")
    assert "runs elsewhere and cannot read it" in str(refused.value)
    assert "http://10.11.12.13:8265" in str(refused.value)
    assert "pinnacle_jobs" not in sqlite_store.tables()


def test_submit_is_refused_when_the_store_is_in_memory_sqlite():
    store = pr.connect("sqlite://")
    store.write("t", {"id": np.arange(3), "x": np.ones(3), "target": np.ones(3)}, key="id")
    trainer = pr.SklearnTrainer(Ridge(), features=["x"], label="target", name="mem")
    with pytest.raises(pr.NotShippable, match="in-memory SQLite database"):
        trainer.submit(train=store.table("t"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"register": 3}, "register= must be True, False or a model name, got 3 (int)"),
        ({"register": "bad name!"}, "model name"),
        ({"runtime_env": {"working_dir": "."}}, "runtime_env= may not set working_dir"),
    ],
)
def test_submit_is_refused_when_an_argument_is_wrong(sqlite_store, kwargs, message):
    with pytest.raises(pr.ConfigError, match=re.escape(message)):
        _ridge().submit(train=sqlite_store.table("diabetes"), **kwargs)
    assert "pinnacle_jobs" not in sqlite_store.tables()


def test_jobs_get_names_recent_jobs_when_the_id_is_unknown(sqlite_store):
    with pytest.raises(pr.JobNotFound, match="no job 'pr-nope' in sqlite"):
        sqlite_store.jobs.get("pr-nope")


@pytest.mark.parametrize("kind", ["sqlite", "mongo"])
def test_store_jobs_gets_lists_and_waits_on_a_finished_job_when_the_store_is_sql_or_mongo(
    kind, tmp_path, request
):
    url = tmp_path / "jobs.db" if kind == "sqlite" else request.getfixturevalue("mongo_uri")
    store = pr.connect(url, artifact_root=tmp_path / "artifacts")
    job_id, name = f"pr-done-{uuid.uuid4().hex[:8]}", f"done-{uuid.uuid4().hex[:6]}"
    JobRecords(store).create(
        JobRecord(job_id, name, "SUCCEEDED", model_name=name, metrics={"valid/r2": 0.5})
    )

    job = store.jobs.get(job_id)  # an ended job needs no cluster to read

    assert (job.id, job.status()) == (job_id, "SUCCEEDED")
    assert [j.id for j in store.jobs.list(name)] == [job_id]
    result = job.wait()
    assert (result.name, result.version, result.metrics) == (name, None, {"valid/r2": 0.5})
