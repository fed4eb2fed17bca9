"""No secret in Ray's job API, dashboard or logs: a store URL with a password reaches a job
started by ``pinnacle-ray submit`` (a spec's ``${PINNACLE_RAY_STORE}``) and by
``trainer.submit`` only through a file Ray does not display, which the job's driver deletes
once read (jobs/secrets.py, jobs/remote.py).

The PostgreSQL test server trusts local connections, so the made-up password in the URL is
ignored by the server and only serves as a marker to search for: in
``JobSubmissionClient.get_job_info()``, in the dashboard's ``/api/jobs/`` listing (both
through the token-auth cluster of this module) and in every file of the cluster's session
folder (logs, the job's unpacked packages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PG_URL, Tables
from ray_cluster import BIN, LocalCluster, files_holding
from sqlalchemy.engine import make_url
from tabular_data import diabetes

import pinnacle_ray as pr
from pinnacle_ray.jobs import JobRecords
from pinnacle_ray.jobs.submit import build_runtime_env, secret_env
from pinnacle_ray.jobs.tracking import connect_client, wait_for

pytestmark = pytest.mark.timeout(600)

MARKER = "s3cr3t-marker"
URL = make_url(PG_URL).set(password=MARKER).render_as_string(hide_password=False)
SCRIPTS = Path(__file__).parent / "submit_scripts"
SPEC = """\
name: {name}
store: ${{PINNACLE_RAY_STORE}}
train:
  table: {table}
trainer:
  kind: sklearn
  estimator: sklearn.linear_model:Ridge
  estimator_args: {{alpha: 0.1}}
  features: {features}
  label: target
  num_cpus: 1
"""


@pytest.fixture(scope="module")
def store() -> pr.SqlDatastore:
    store = pr.connect(URL)
    names = Tables(store)
    store.test_table = names("diabetes")  # type: ignore[attr-defined]
    store.features = diabetes(store, store.test_table)  # type: ignore[attr-defined]
    yield store
    names.drop_all()
    store.close()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, store) -> Path:
    folder = tmp_path_factory.mktemp("secret-spec")
    (folder / "ridge.yaml").write_text(
        SPEC.format(
            name=f"{store.test_table}-ridge",
            table=store.test_table,
            features="[" + ", ".join(store.features) + "]",
        )
    )
    return folder


def _shown(cluster: LocalCluster, job_id: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "job_view.py"), cluster.address, job_id],
        env=cluster.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_spec_secrets_never_go_into_env_vars(monkeypatch, work):
    from pinnacle_ray.jobs import load_spec

    monkeypatch.setenv("PINNACLE_RAY_STORE", URL)
    monkeypatch.setenv("MY_API_TOKEN", "tok-123")
    monkeypatch.setenv("PLAIN", "1")
    spec = load_spec(work / "ridge.yaml")
    runtime_env = build_runtime_env(spec, env_names=["MY_API_TOKEN", "PLAIN"], working_dir=work)
    assert runtime_env["env_vars"] == {"PLAIN": "1"}
    assert MARKER not in json.dumps(runtime_env) and "tok-123" not in json.dumps(runtime_env)
    assert secret_env(spec, ["MY_API_TOKEN", "PLAIN"]) == {
        "PINNACLE_RAY_STORE": URL,
        "MY_API_TOKEN": "tok-123",
    }


def test_the_jobs_driver_reads_the_secrets_once_and_keeps_the_clusters_own_values(
    monkeypatch,
):
    from pinnacle_ray.jobs.secrets import (
        SECRETS_ENV,
        load_job_secrets,
        package_name,
        secrets_package,
    )

    monkeypatch.setenv("ALREADY_ON_THE_NODE", "cluster-value")
    monkeypatch.delenv("PINNACLE_RAY_STORE", raising=False)
    values = {"PINNACLE_RAY_STORE": URL, "ALREADY_ON_THE_NODE": "submitted"}
    with secrets_package(values) as folder:
        assert oct(Path(folder, "env.json").stat().st_mode & 0o777) == "0o600"
        monkeypatch.syspath_prepend(str(Path(folder).parent))
        monkeypatch.setenv(SECRETS_ENV, package_name(folder))
        assert load_job_secrets() == ["PINNACLE_RAY_STORE"]
        assert not Path(folder, "env.json").exists()  # read once, deleted
        assert load_job_secrets() == []  # nothing left to read
    assert os.environ["PINNACLE_RAY_STORE"] == URL
    assert os.environ["ALREADY_ON_THE_NODE"] == "cluster-value"
    monkeypatch.setenv(SECRETS_ENV, "os")  # names something that is not our package
    assert load_job_secrets() == []


HOOK_RAN: list[bool] = []


def note_hook() -> None:
    """A job's own worker setup hook."""
    HOOK_RAN.append(True)


def test_the_worker_setup_hook_removes_the_nodes_copies_then_runs_the_jobs_own_hook(
    monkeypatch, tmp_path
):
    from pinnacle_ray._internal.secrets_hook import (
        HOOK,
        PAYLOAD_ENV,
        USER_HOOK_ENV,
        remove_job_secrets_file,
    )
    from pinnacle_ray.jobs.secrets import (
        SECRETS_ENV,
        package_name,
        secrets_package,
        with_removal_hook,
    )

    # What a job's runtime env says: our hook first, the job's own after it.
    shipped = with_removal_hook(
        {"worker_process_setup_hook": f"{__name__}.note_hook", "env_vars": {"A": "1"}},
        **{PAYLOAD_ENV: "pinnacle_fit.pkl"},
    )
    assert shipped["worker_process_setup_hook"] == HOOK
    assert shipped["env_vars"] == {
        "A": "1",
        PAYLOAD_ENV: "pinnacle_fit.pkl",
        USER_HOOK_ENV: f"{__name__}.note_hook",
    }
    with pytest.raises(pr.ConfigError, match="must be an import path"):
        with_removal_hook({"worker_process_setup_hook": print})
    # In a worker process on a node that unpacked the package and the working dir.
    monkeypatch.chdir(tmp_path)
    Path("pinnacle_fit.pkl").write_bytes(MARKER.encode())
    HOOK_RAN.clear()
    with secrets_package({"PINNACLE_RAY_STORE": URL}) as folder:
        monkeypatch.syspath_prepend(str(Path(folder).parent))
        for name, value in {**shipped["env_vars"], SECRETS_ENV: package_name(folder)}.items():
            monkeypatch.setenv(name, value)
        remove_job_secrets_file()
        assert not Path(folder, "env.json").exists()
    assert not Path("pinnacle_fit.pkl").exists()
    assert HOOK_RAN == [True]  # the job's own hook, after ours


def test_pinnacle_ray_submit_keeps_the_store_password_out_of_rays_job_view(cluster, store, work):
    env = {**cluster.env, "PINNACLE_RAY_STORE": URL}
    proc = subprocess.run(
        [str(BIN / "pinnacle-ray"), "submit", "ridge.yaml", "--json"],
        env=env, cwd=work, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job_id = json.loads(proc.stdout.strip().splitlines()[-1])["submission_id"]
    # The job used the URL (it could only read the table with it) and registered its model.
    assert wait_for(connect_client(cluster.address), job_id, timeout_s=400) == "SUCCEEDED"
    record = JobRecords(store).get(job_id)
    assert record.status == "SUCCEEDED" and record.model_version is not None
    shown = _shown(cluster, job_id)
    assert job_id in shown["listing"]
    assert shown["info"]["runtime_env"]["env_vars"].get("PINNACLE_RAY_STORE") is None
    assert MARKER not in json.dumps(shown["info"], default=str)
    assert MARKER not in shown["listing"]
    assert MARKER not in json.dumps(record.__dict__, default=str)
    assert files_holding(cluster.temp_dir, MARKER) == []  # logs, unpacked packages


def test_trainer_submit_keeps_the_store_password_out_of_rays_job_view(cluster, store, tmp_path):
    args = {
        "url": URL,
        "artifact_root": str(tmp_path / "artifacts"),
        "table": store.test_table,
        "kind": "sklearn",
        "name": f"{store.test_table}-submitted",
        "model_dir": "",
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "submit_fit.py"), json.dumps(args)],
        env=cluster.env, cwd=SCRIPTS, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job_id = json.loads(proc.stdout.strip().splitlines()[-1])["id"]
    assert wait_for(connect_client(cluster.address), job_id, timeout_s=400) == "SUCCEEDED"
    assert JobRecords(store).get(job_id).status == "SUCCEEDED"
    shown = _shown(cluster, job_id)
    assert job_id in shown["listing"]
    assert MARKER not in json.dumps(shown["info"], default=str)
    assert MARKER not in shown["listing"]
    # The pickled fit held the URL; the driver deleted it once read.
    assert files_holding(cluster.temp_dir, MARKER) == []
