"""Multi-node scenarios on a simulated two-node Ray cluster (issue 19): a head and a worker
node, one CPU each (one training worker per node), each in its own mount namespace with a
private home and /tmp, so nothing one node writes to its disk is visible to the other; only
the database (PostgreSQL, the Mongo stand-in) and the local S3 server are shared.

One cluster serves the whole module. Each scenario's driver runs in its own process
(``multinode_driver.py``) joined to the cluster, as a user's script would; the test process
keeps its session-wide local Ray untouched.

``./dev test`` runs this module in a pytest process of its own, after the rest of the suite.
Run in one process after all the other modules (2026-12-05, 911 others passed), the cluster's
first job was refused by its runtime-env agent ("403 Forbidden: Invalid authentication
token") and every scenario errored at set-up; run on its own, right after, all passed. The
cause (some state the earlier modules leave in the test process and pass on to the nodes'
environment) is not found yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from multinode_loops import FEATURES, points
from multinode_s3 import LocalS3
from ray_cluster import (
    FAST_NODE_DEATH,
    LocalCluster,
    WorkerNode,
    code_image_env,
    files_holding,
    start_head,
    start_worker_node,
)
from tabular_data import diabetes
from text_data import sentiment_rows

import pinnacle_ray as pr

PG_URL = os.environ.get("PINNACLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DRIVER = Path(__file__).with_name("multinode_driver.py")
CACHE = "/root/.cache/pinnacle_ray/artifacts"  # a node's model-file cache (HOME=/root)
LABELS = ["node_a", "node_b"]  # the head's and the worker node's custom resource


@dataclass
class TwoNodes:
    """The module's cluster: ``head`` (1 CPU, ``node_a``) and ``worker`` (1 CPU,
    ``node_b``); ``isolation`` is what the start-up check saw."""

    head: LocalCluster
    worker: WorkerNode
    isolation: dict[str, Any]


def _driver_cmd(scenario: str, args: dict[str, Any]) -> list[str]:
    return [sys.executable, str(DRIVER), scenario, json.dumps(args)]


def _driver_env(cluster: TwoNodes, **extra: str) -> dict[str, str]:
    return {**cluster.head.env, "PRT_GCS": cluster.head.gcs_address, **extra}


def _result(scenario: str, rc: int, stdout: str, stderr: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if rc != 0 or not lines:
        pytest.fail(
            f"driver {scenario} exited with {rc}\n--- stdout\n{stdout[-6000:]}"
            f"\n--- stderr\n{stderr[-10000:]}",
            pytrace=False,
        )
    return json.loads(lines[-1][len("RESULT ") :])


def drive(
    cluster: TwoNodes, scenario: str, cwd: Path, timeout: float = 540, env=None, **args: Any
) -> dict:
    """Run one driver scenario against the cluster in a fresh process; its ``RESULT``."""
    try:
        proc = subprocess.run(
            _driver_cmd(scenario, args),
            env=env or _driver_env(cluster),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out, err = (_text(exc.stdout), _text(exc.stderr))
        return _result(f"{scenario} (killed after {timeout} s)", -9, out, err)
    return _result(scenario, proc.returncode, proc.stdout, proc.stderr)


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


_LOAD_AND_PREDICT = """\
import json, sys
import numpy as np, pandas as pd
import pinnacle_ray as pr
args = json.loads(sys.argv[1])
values = pr.connect(args["url"], **args["connect"]).models.load(args["name"]).predict(
    pd.DataFrame(args["rows"]))
print("RESULT " + json.dumps(np.asarray(values).reshape(len(values), -1).tolist()))
"""


def predict_on_head(cluster: TwoNodes, url: str, name: str, rows: dict, connect=None) -> list:
    """A fresh process on the head node: ``pr.connect(url).models.load(name)`` predicts."""
    args = {"url": url, "name": name, "rows": rows, "connect": connect or {}}
    proc = cluster.head.run([sys.executable, "-c", _LOAD_AND_PREDICT, json.dumps(args)], cwd="/")
    return _result("load on the head", proc.returncode, proc.stdout, proc.stderr)


def _isolation_failures(seen: dict[str, Any]) -> list[str]:
    """What the isolation probe saw that separate machines would not."""
    problems = []
    if set(seen.get("nodes", {})) != set(LABELS) or "error" in seen:
        return [f"nodes did not join: {seen}"]
    head_first, head_second = seen["head"]
    if {head_first["node_id"], head_second["node_id"]} != {seen["nodes"]["node_a"]}:
        problems.append(f"head tasks ran elsewhere: {seen['head']}")
    if seen["worker"]["node_id"] != seen["nodes"]["node_b"]:
        problems.append(f"the worker-node task ran elsewhere: {seen['worker']}")
    for who, report in (("head", head_first), ("head", head_second), ("worker", seen["worker"])):
        if report["seen_foreign"]:
            problems.append(f"{who} sees files of other nodes: {report['seen_foreign']}")
    if seen["driver_seen_foreign"]:
        problems.append(f"the driver sees files of the nodes: {seen['driver_seen_foreign']}")
    if head_second["own_before"] != [True, True]:
        problems.append("the head lost its own files between two tasks (the probe is broken)")
    return problems


@pytest.fixture(scope="module")
def cluster(s3_server: LocalS3) -> Iterator[TwoNodes]:
    """Head + one worker node, isolated, with the S3 server's variables and the code image
    (tests/ on PYTHONPATH) in every node's environment; refuses to run the module (an
    error, not a skip) when it cannot isolate."""
    env = {**s3_server.env, **code_image_env(), **FAST_NODE_DEATH}  # a test kills node_b
    head = start_head(num_cpus=1, isolated=True, resources={"node_a": 1}, env=env)
    try:
        worker = start_worker_node(head, num_cpus=1, isolated=True, label="node_b")
        seen = drive(
            TwoNodes(head, worker, {}), "isolation", Path(head.temp_dir), timeout=120, labels=LABELS
        )
        problems = _isolation_failures(seen)
        if problems:
            raise RuntimeError("the simulated nodes are not isolated:\n" + "\n".join(problems))
        yield TwoNodes(head, worker, seen)
    finally:
        head.stop()


@pytest.mark.timeout(300)
def test_a_file_written_on_one_node_is_invisible_to_the_others_when_nodes_are_isolated(cluster):
    seen = cluster.isolation
    assert seen["nodes"]["node_a"] != seen["nodes"]["node_b"]
    assert [r["own_before"] for r in seen["head"]] == [[False, False], [True, True]]
    assert seen["head"][0]["seen_foreign"] == []  # the driver's files, from the head
    assert seen["worker"]["seen_foreign"] == []  # the driver's and the head's files
    assert seen["head"][1]["seen_foreign"] == []  # the worker node's files, from the head
    assert seen["driver_seen_foreign"] == []
    assert {seen["worker"]["home"], seen["worker"]["tmp"]} == {"/root", "/tmp"}
    # The same check, this time from a process started on each node outside Ray.
    marker = Path.home() / f".prt_iso_{cluster.head.temp_dir.name}"
    marker.write_text("host")
    try:
        on_head = cluster.head.run(["ls", "-a", str(Path.home())])
        on_worker = cluster.worker.run(["ls", "-a", str(Path.home())])
    finally:
        marker.unlink()
    assert on_head.returncode == 0 and on_worker.returncode == 0
    assert marker.name not in on_head.stdout and marker.name not in on_worker.stdout
    assert ".pyenv" in on_head.stdout  # the Python installation, bound back


# -- the scenarios ------------------------------------------------------------------------


@dataclass
class Data:
    """The module's tables in PostgreSQL (unique names: the server is shared) and the rows
    each kind of model predicts in the checks."""

    url: str
    prefix: str
    diabetes_features: list[str]
    rows: dict[str, dict[str, list]]

    def table(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def model(self, name: str) -> str:
        return f"{self.prefix}-{name}"


@pytest.fixture(scope="module")
def pg() -> Iterator[Data]:
    store = pr.connect(PG_URL)
    prefix = f"mn{uuid.uuid4().hex[:8]}"
    data = Data(PG_URL, prefix, [], {})
    store.write(data.table("points"), pa.table(points(2_000)), key="id")
    data.diabetes_features = diabetes(store, data.table("diabetes"))
    store.write(data.table("reviews"), sentiment_rows(200), key="id")
    probe = points(20, seed=7)
    frame = store.table(data.table("diabetes")).to_arrow().to_pandas().sort_values("id")
    data.rows = {
        "torch": {f: probe[f].tolist() for f in FEATURES},
        "tabular": {f: frame[f].head(20).tolist() for f in data.diabetes_features},
        "text": {"text": ["the product was great and lovely", "it was awful and broken"]},
    }
    yield data
    with store._engine.begin() as conn:
        for name in ("points", "diabetes", "reviews", "predictions"):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{data.table(name)}"')
    store.close()


def _same(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    if isinstance(a[0][0], str):
        assert a == b
    else:
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6)


FITS = {
    # kind: (table, where, rows, trains on Ray Train workers)
    "torch": ("points", None, "torch", True),
    "xgboost": ("diabetes", {"split": "train"}, "tabular", True),
    "huggingface": ("reviews", {"split": "train"}, "text", True),
    "sklearn": ("diabetes", {"split": "train"}, "tabular", False),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", list(FITS))
def test_a_model_trained_on_two_nodes_loads_on_the_head_when_only_postgres_is_shared(
    cluster, pg, kind, tmp_path
):
    table, where, rows, workers = FITS[kind]
    name = pg.model(kind)
    seen = drive(
        cluster,
        "fit",
        tmp_path,
        kind=kind,
        url=pg.url,
        name=name,
        train=pg.table(table),
        where=where,
        features=pg.diabetes_features,
        rows=pg.rows[rows],
        labels=LABELS,
    )
    assert seen["version"] == 1
    if workers:  # one training worker per node
        assert seen["actors"]["RayTrainWorker"] == LABELS
    assert seen["predicted_on"] == seen["node_b"]
    # A fresh process on the head, whose disk never held the model, predicts the same.
    _same(predict_on_head(cluster, pg.url, name, pg.rows[rows]), seen["worker_node_predictions"])
    if kind == "torch":
        truth = np.asarray(pd.DataFrame(pg.rows["torch"]) @ np.array([1.5, -2.0, 0.5, 3.0]))
        # Learned, not just loaded: the label's spread is ~4, two short epochs get within 1.
        assert np.abs(np.asarray(seen["worker_node_predictions"])[:, 0] - truth).mean() < 1.0


@pytest.fixture(scope="module")
def mongo_points(mongo_uri: str) -> Iterator[str]:
    """The points table in the Mongo stand-in (every node reaches it over the network)."""
    store = pr.connect(mongo_uri)
    name = f"mn{uuid.uuid4().hex[:8]}_points"
    store.write(name, pa.table(points(2_000)), key="id")
    yield name
    store.drop(name)
    store.close()


@pytest.mark.timeout(600)
def test_a_torch_model_trained_on_two_nodes_loads_on_the_head_when_only_mongodb_is_shared(
    cluster, pg, mongo_uri, mongo_points, tmp_path
):
    name = f"{mongo_points}-torch"
    seen = drive(
        cluster,
        "fit",
        tmp_path,
        kind="torch",
        url=mongo_uri,
        name=name,
        train=mongo_points,
        rows=pg.rows["torch"],
        labels=LABELS,
    )
    assert seen["version"] == 1
    assert seen["actors"]["RayTrainWorker"] == LABELS
    _same(
        predict_on_head(cluster, mongo_uri, name, pg.rows["torch"]), seen["worker_node_predictions"]
    )


@pytest.mark.timeout(600)
def test_a_sweep_runs_trials_on_both_nodes_and_registers_a_loadable_best_when_on_postgres(
    cluster, pg, tmp_path
):
    name = pg.model("swept")
    seen = drive(
        cluster,
        "sweep",
        tmp_path,
        url=pg.url,
        name=name,
        train=pg.table("points"),
        rows=pg.rows["torch"],
        labels=LABELS,
    )
    assert seen["version"] == 1
    assert seen["actors"]["RayTrainWorker"] == LABELS  # one trial's worker on each node
    version = pr.connect(pg.url).models.get(name)
    assert version.version == 1
    _same(predict_on_head(cluster, pg.url, name, pg.rows["torch"]), seen["worker_node_predictions"])


@pytest.fixture(scope="module")
def ridge(pg: Data) -> str:
    """A scikit-learn model registered in PostgreSQL from this process (its local Ray): a
    model the cluster's nodes have never seen on their disks."""
    from sklearn.linear_model import Ridge

    store = pr.connect(pg.url)
    name = pg.model("ridge")
    trainer = pr.SklearnTrainer(Ridge(), features=pg.diabetes_features, label="target", name=name)
    assert trainer.fit(train=store.table(pg.table("diabetes"))).version == 1
    return name


@pytest.mark.timeout(600)
def test_predict_with_actors_on_both_nodes_writes_every_row_once_when_run_twice(
    cluster, pg, ridge, tmp_path
):
    store = pr.connect(pg.url)
    output = pg.table("predictions")
    placed = []
    for _ in range(2):
        seen = drive(
            cluster,
            "predict",
            tmp_path,
            url=pg.url,
            name=ridge,
            train=pg.table("diabetes"),
            output=output,
            labels=LABELS,
        )
        assert (seen["rows"], seen["version"]) == (442, 1)
        actors = {k: v for k, v in seen["actors"].items() if k.startswith("MapWorker")}
        placed.append(sorted({label for labels in actors.values() for label in labels}))
    # An actor still starting when the last batch was written has no node yet ("?"): with
    # 7 batches of 64 rows one actor can finish a run alone, so placement is checked over
    # both runs (checked on the second run alone, 1 of 2 runs saw one actor still unplaced).
    assert sorted({label for run in placed for label in run if label != "?"}) == LABELS, placed
    out = store.table(output).to_arrow().to_pandas()
    assert len(out) == 442 and out["id"].is_unique
    assert set(out["id"]) == set(range(442))


@pytest.mark.timeout(600)
def test_resume_from_continues_on_the_head_a_version_trained_on_the_worker_node(
    cluster, pg, tmp_path
):
    name = pg.model("resumed")
    seen = drive(
        cluster, "resume", tmp_path, url=pg.url, name=name, train=pg.table("points"), labels=LABELS
    )
    assert seen["first"]["version"] == 1 and seen["second"]["version"] == 2
    assert seen["parent"] == 1
    # Epoch 0 on node_b, epoch 1 on the head, the step count going on from the first run.
    assert (seen["first"]["epoch"], seen["second"]["epoch"]) == (0, 1)
    assert seen["second"]["step"] == 2 * seen["first"]["step"]
    assert seen["actors"]["RayTrainWorker"] == LABELS


@pytest.mark.timeout(900)
def test_a_fit_whose_worker_node_dies_resumes_from_its_checkpoint_and_registers_once(
    cluster, pg, tmp_path
):
    name = pg.model("node-loss")
    with (tmp_path / "driver.err").open("w+") as err:
        proc = subprocess.Popen(
            _driver_cmd(
                "node_loss",
                {"url": pg.url, "name": name, "train": pg.table("points"), "labels": LABELS},
            ),
            env=_driver_env(cluster),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        lines, lost = [], cluster.worker
        try:
            for line in proc.stdout:  # until the workers wait after epoch 1's checkpoint
                lines.append(line)
                if line.startswith("READY "):
                    break
            assert lines and lines[-1].startswith("READY "), "".join(lines)
            lost.kill_raylet()
            # A replacement node joins, as an autoscaler or a restarted machine would add it.
            cluster.worker = start_worker_node(cluster.head, num_cpus=1, label="node_b")
            rest, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            lost.stop()  # what outlived its raylet
        err.seek(0)
        seen = _result("node_loss", proc.returncode, "".join(lines) + rest, err.read())
    per_epoch = seen["metrics"]["epoch_steps"]
    assert seen["metrics"]["epoch"] == 2
    assert seen["metrics"]["start"] >= 1  # resumed from a checkpoint, not from scratch
    assert seen["metrics"]["step"] == 3 * per_epoch
    assert seen["metrics"]["world_size"] == 2
    assert seen["version"] == 1 and seen["versions"] == [1]


def _files(folder: Path) -> list[str]:
    """Files under ``folder``, except Ray's own empty lock files (``_ray_lockfiles``, which
    Ray creates in the temp folder of every process that starts workers and never removes)."""
    return sorted(
        str(p) for p in folder.rglob("*") if p.is_file() and "_ray_lockfiles" not in p.parts
    )


def _node_files(node: LocalCluster | WorkerNode) -> set[str]:
    """Files under the node's home and /tmp, its Ray temp dir left out."""
    found = node.run(
        [
            "find",
            "/root",
            "/tmp",
            "-path",
            str(node.temp_dir),
            "-prune",
            "-o",
            "-type",
            "f",
            "-print",
        ]
    )
    assert found.returncode == 0, found.stderr
    return {
        f
        for f in found.stdout.splitlines()
        if not f.startswith("/root/.pyenv/") and not f.startswith("/tmp/_ray_lockfiles/")
    }


@pytest.mark.timeout(600)
def test_a_fit_with_an_s3_artifact_root_keeps_nothing_on_local_disks(
    cluster, pg, s3_server, tmp_path
):
    name = pg.model("on-s3")
    root = {"artifact_root": f"s3://{s3_server.bucket}/{pg.prefix}"}
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    nodes = (cluster.head, cluster.worker)
    before = [_node_files(n) for n in nodes]
    seen = drive(
        cluster,
        "fit",
        tmp_path,
        env=_driver_env(cluster, HOME=str(home), TMPDIR=str(temp)),
        kind="torch",
        url=pg.url,
        connect=root,
        name=name,
        train=pg.table("points"),
        rows=pg.rows["torch"],
        labels=LABELS,
    )
    assert seen["version"] == 1
    assert seen["actors"]["RayTrainWorker"] == LABELS
    version = pr.connect(pg.url, **root).models.get(name)
    keys = s3_server.keys(pg.prefix)
    assert any(name in k for k in keys), keys  # the registered model is in the bucket
    assert version.artifact_uri.startswith(f"s3://{s3_server.bucket}/{pg.prefix}/")
    _same(
        predict_on_head(cluster, pg.url, name, pg.rows["torch"], connect=root),
        seen["worker_node_predictions"],
    )
    # Nothing stayed behind on any local disk: the driver's, the head's, the worker node's.
    assert _files(home) == []
    assert _files(temp) == []
    # The one exception: the model files a load copies into the node's artifact cache
    # (~/.cache/pinnacle_ray/artifacts, PINNACLE_RAY_CACHE_DIR), kept across loads by design.
    for node, files in zip(nodes, before, strict=True):
        new = _node_files(node) - files
        assert {f for f in new if not f.startswith(f"{CACHE}/")} == set()


@pytest.mark.timeout(300)
def test_a_sqlite_store_is_refused_within_seconds_naming_the_fix_when_the_cluster_has_two_nodes(
    cluster, tmp_path
):
    seen = drive(
        cluster, "refused", tmp_path, sqlite=str(tmp_path / "local.db"), name="local", labels=LABELS
    )
    assert seen["error"] == "StorageNotShared"
    assert seen["seconds"] < 20
    assert "postgresql" in seen["message"] and 'artifact_root="s3://' in seen["message"]


# -- secrets shipped with a job are removed on every node that unpacked them --------------
_SECRETS_PROBE = """\
import json, os
import ray
from pinnacle_ray.jobs.secrets import load_job_secrets

read = load_job_secrets()  # what pinnacle-ray's CLI does first in a job's driver
ray.init()

@ray.remote(num_cpus=0, resources={"node_b": 1})
def on_the_worker_node():
    from pinnacle_ray._internal.secrets_hook import package_locations
    here = package_locations()
    return len(here), [os.path.exists(os.path.join(p, "env.json")) for p in here]

print("RESULT " + json.dumps({"read": read, "worker": ray.get(on_the_worker_node.remote())}))
"""


# Runs with the cluster's environment (its auth token): submits the probe the way
# pinnacle-ray submit ships a spec's secret variable, waits, prints what the probe saw.
_SUBMIT_PROBE = """\
import json, sys
from pinnacle_ray.jobs.submit import _with_secrets
from pinnacle_ray.jobs.tracking import connect_client, wait_for

address, work, marker = sys.argv[1:4]
client = connect_client(address)
with _with_secrets({"working_dir": work}, {"PRT_JOB_TOKEN": marker}) as runtime_env:
    job = client.submit_job(entrypoint=f"{sys.executable} probe.py", runtime_env=runtime_env)
status = wait_for(client, job, timeout_s=240)
logs = client.get_job_logs(job)
seen = [json.loads(x[7:]) for x in logs.splitlines() if x.startswith("RESULT ")]
print("RESULT " + json.dumps({"status": status, "seen": seen, "logs": logs[-3000:]}))
"""


@pytest.mark.timeout(400)
def test_secrets_shipped_with_a_job_are_removed_on_every_node_that_unpacked_them(cluster, tmp_path):
    marker = f"prt-token-{uuid.uuid4().hex}"
    work = tmp_path / "work"
    work.mkdir()
    (work / "probe.py").write_text(_SECRETS_PROBE)
    proc = subprocess.run(
        [sys.executable, "-c", _SUBMIT_PROBE, cluster.head.address, str(work), marker],
        env=_driver_env(cluster), capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    outcome = _result("submit the secrets probe", proc.returncode, proc.stdout, proc.stderr)
    assert outcome["status"] == "SUCCEEDED", outcome["logs"]
    # The driver (head) read the secret; a worker on the other node found its copy of the
    # package with the file already gone, and neither node's disk holds the value.
    assert outcome["seen"] == [{"read": ["PRT_JOB_TOKEN"], "worker": [1, [False]]}]
    assert files_holding(cluster.worker.temp_dir, marker) == []
    assert files_holding(cluster.head.temp_dir, marker) == []
