"""Faults survived, nothing lost: processes killed mid-way, workers killed mid-epoch, a
database connection dropped mid-read, a cluster stopped under its job.

Each test injects a real fault (SIGKILL, ``ray.kill``, ``pg_terminate_backend``, stopping a
``ray start --head`` cluster) and checks what is left through the public API.
"""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SERVERS

import pinnacle_ray as pr
from pinnacle_ray.registry import ModelRegistry

HERE = Path(__file__).parent
REGISTRY_TABLES = ("pinnacle_models", "pinnacle_checkpoints", "pinnacle_registry_meta")


def _url(backend: str, store, request: pytest.FixtureRequest) -> str:
    """The full URL of the test's store, for a child process to connect with."""
    if backend == "mongo":
        return request.getfixturevalue("mongo_uri")
    if backend == "sqlite":
        return store.url
    return SERVERS[backend]


def _model_dir(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "weights.bin").write_bytes(text.encode() * 1000)
    (path / "meta.json").write_text('{"kind": "test"}')
    return path


def _kill_after_claim(url: str, root: Path, prefix: str, name: str, src: Path) -> int:
    """Run a registration in a child and SIGKILL it once its version row is claimed."""
    child = subprocess.Popen(
        [sys.executable, str(HERE / "fault_child.py"), "register", url, str(root), prefix, name,
         str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = child.stdout.readline()
        assert line.startswith("claimed "), line + child.stderr.read()[-3000:]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        return int(line.split()[1])
    finally:
        if child.poll() is None:
            child.kill()


def _folders(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.is_dir())


# -- 1. a training worker dies mid-epoch ---------------------------------------------------
@pytest.fixture
def points(tmp_path):
    """A tiny regression table in a fresh SQLite file (its registry beside it)."""
    import numpy as np
    import pyarrow as pa

    store = pr.connect(tmp_path / "train.db")
    rng = np.random.default_rng(0)
    n = 1_000
    x = rng.normal(size=(n, 4))
    y = x @ np.array([1.5, -2.0, 0.5, 3.0])
    data = {"id": np.arange(n)} | {f"x{i}": x[:, i] for i in range(4)} | {"y": y}
    store.write("points", pa.table(data), key="id")
    yield store
    store.close()


def _killed_trainer(tmp_path: Path, how: str, max_failures: int) -> pr.TorchTrainer:
    from fault_loops import killed_loop
    from ray.train import FailureConfig, RunConfig, ScalingConfig

    return pr.TorchTrainer(
        killed_loop,
        train_loop_config={
            "marker": str(tmp_path / "killed-once"),
            "how": how,
            "die_at_once": max_failures == 0,
        },
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(
            storage_path=str(tmp_path / "runs"),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
        name="killed",
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_worker_actor_killed_by_ray_kill_resumes_from_the_latest_checkpoint(points, tmp_path):
    # A custom loop (prepare_model, pr.load_state) on two workers; os._exit with
    # max_failures=1 is covered by the managed loop's test in test_torch_managed.
    result = _killed_trainer(tmp_path, "ray.kill", max_failures=1).fit(train=points.table("points"))
    assert (tmp_path / "killed-once").exists()  # the kill happened
    # Resumed after epoch 1's checkpoint: epoch 2 ran again, its step count went on.
    per_epoch = result.metrics["epoch_steps"]  # equal shards: the same every epoch
    expected = {"epoch": 2, "step": 3 * per_epoch, "start": 2, "epoch_steps": per_epoch}
    assert result.metrics == expected
    assert [v.version for v in points.models.list()] == [1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_worker_that_dies_without_restarts_left_fails_clearly_and_registers_nothing(
    points, tmp_path
):
    trainer = _killed_trainer(tmp_path, "exit", max_failures=0)
    with pytest.raises(pr.TrainingFailed, match=r"worker 1 died.*max_failures") as info:
        trainer.fit(train=points.table("points"))
    assert (tmp_path / "killed-once").exists()
    assert info.value.__cause__ is not None  # Ray's own error, kept as the cause
    assert points.models.list() == []
    assert "pinnacle_models" not in points.tables()  # no version row, not even pending
    assert not Path(points.artifact_root).exists() or not any(Path(points.artifact_root).iterdir())


# -- 2. the driver is killed while registering ------------------------------------------
@pytest.mark.with_mongo
@pytest.mark.timeout(300)
def test_registration_killed_after_its_claim_is_invisible_and_cleaned_up(
    backend, store, tables, tmp_path, request
):
    for name in REGISTRY_TABLES:
        tables(name)  # dropped after the test
    prefix = f"{tables.prefix}_pinnacle"
    root = tmp_path / "artifacts"
    models = ModelRegistry(store, artifact_root=root, prefix=prefix)
    first = models.register("m", "torch", _model_dir(tmp_path / "v1", "one"))
    assert first.version == 1

    killed = _kill_after_claim(_url(backend, store, request), root, prefix, "m", tmp_path / "v1")
    assert killed == 2
    assert len(_folders(root)) == 2  # its files were written before it died

    # Nothing half-registered is visible.
    assert [v.version for v in models.list("m")] == [1]
    assert [v.version for v in models.list()] == [1]
    assert models.get("m").version == 1
    assert models.resolve("m")[0].version == 1  # what load() and pr.predict use
    with pytest.raises(pr.ModelNotFound, match="its versions are \\[1\\]"):
        models.get("m", version=2)
    with pytest.raises(pr.ModelNotFound):
        models.load("m", version=2)

    # Young leftovers may be a live registration: the default threshold keeps them.
    assert not models.cleanup()
    assert len(_folders(root)) == 2

    # Two cleanups at once remove each leftover once between them; v1 is untouched.
    orphan = _model_dir(root / "m" / ("f" * 32), "orphan")  # a folder no row references
    assert orphan.is_dir()
    others = ModelRegistry(store, artifact_root=root, prefix=prefix)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda r: r.cleanup(older_than=0), [models, others]))
    assert sorted(p for r in reports for p in r.pending) == [("m", 2)]
    removed = {f for r in reports for f in r.folders}
    assert len(removed) == 2 and any(f.endswith("f" * 32) for f in removed)
    assert _folders(root) == [first.artifact_uri.split("/artifacts/")[1].rsplit("/", 1)[0]]
    models.checkpoint_dir("m", 1)  # v1's files are intact (checksum verified)
    assert not models.cleanup(older_than=0)  # nothing left

    # The next registration takes the freed number: no gap.
    again = models.register("m", "torch", _model_dir(tmp_path / "v2", "two"))
    assert again.version == 2
    assert [v.version for v in models.list("m")] == [2, 1]


def test_models_cleanup_on_the_command_line_removes_only_old_leftovers(tmp_path, capsys):
    import json

    from pinnacle_ray.cli import main

    store = pr.connect(tmp_path / "shop.db")
    store.models.register("m", "torch", _model_dir(tmp_path / "v1", "one"))
    orphan = _model_dir(Path(store.artifact_root) / "m" / ("a" * 32), "orphan")
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    assert main(["models", "cleanup", "--store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pending": [], "folders": []}  # too young
    assert orphan.is_dir()
    assert main(["models", "cleanup", "--store", url, "--older-than", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pending": [], "folders": [str(orphan)]}
    assert not orphan.exists()
    store.models.checkpoint_dir("m", 1)  # the registered version's files are intact
    with pytest.raises(pr.ConfigError, match="older_than must not be negative"):
        store.models.cleanup(older_than=-1)


# -- 3. the database connection drops mid-read ---------------------------------------------
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.timeout(420)
def test_a_read_whose_connection_is_killed_mid_shard_is_exact_or_fails_clearly(
    store, tables, reader, monkeypatch
):
    import random
    import threading
    import time

    import numpy as np
    import pyarrow as pa
    import sqlalchemy as sa

    from pinnacle_ray.datastore.sql import query as sql_query

    monkeypatch.setattr(sql_query, "_TARGET_BLOCK_BYTES", 1)  # 1,024-row batches
    name, n = tables("points"), 6_000
    ids = np.arange(n, dtype=np.int64)
    store.write(name, pa.table({"id": ids, "x": ids * 0.5}), key="id")
    lock = random.randrange(1 << 30, 1 << 31)
    # Rows from id 3000 on wait for a lock the test holds: the read streams its first rows,
    # then stalls inside the shard until its connection is killed.
    marker = f"pg_advisory_xact_lock_shared({lock})"
    query = store.sql(
        f"SELECT id, x + CASE WHEN id >= 3000 THEN length({marker}::text) ELSE 0 END AS x "
        f"FROM {name}",
        key="id",
    )
    dataset = query.to_dataset(shards=1)  # planned before the lock is taken
    outcome: dict = {}

    def read() -> None:
        try:
            batches = dataset.iter_batches(batch_format="pyarrow", batch_size=None)
            outcome["table"] = pa.concat_tables(list(batches))
        except Exception as exc:
            outcome["error"] = exc

    engine = sa.create_engine(SERVERS["postgresql"])
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock})
        reading = threading.Thread(target=read)
        reading.start()
        killed = False
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline and reading.is_alive():
            killed = bool(
                holder.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
                        "locktype = 'advisory' AND NOT granted AND objid = :k AND objsubid = 1"
                    ),
                    {"k": lock},
                ).scalar()
            )
            time.sleep(0.2)
        holder.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
        holder.commit()
        reading.join(timeout=300)
    engine.dispose()
    assert killed, outcome  # the fault was injected into a shard that was streaming
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, pr.DatastoreConnectionError), repr(error)
        assert "incomplete dataset" in str(error) or "terminat" in str(error)
    else:
        table = outcome["table"]
        assert table.num_rows == n
        assert sorted(table["id"].to_pylist()) == list(range(n))
        assert sum(table["x"].to_pylist()) == pytest.approx(float(ids.sum()) * 0.5)


# -- 4. a prediction job killed halfway, then rerun ----------------------------------------
# On PostgreSQL each predict actor upserts its batches as it goes, so a killed run leaves part
# of its rows. On SQLite a run stages its rows beside the database and merges them at the
# end: a killed run leaves no row in the table, only its staging folder, which the next run
# removes.
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_predict_killed_halfway_then_rerun_leaves_one_row_per_key(store, backend, tables, tmp_path):
    import time

    import numpy as np
    import pandas as pd
    import ray
    from fault_loops import Sluggish

    from pinnacle_ray.registry.torch_flavor import save_model

    n, data, out, model = 1_000, tables("pts"), tables("preds"), f"{tables.prefix}-slow"
    url = SERVERS.get(backend) or str(tmp_path / "test.db")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    store.write(data, frame, key="id")
    folder = save_model(tmp_path / "slow", Sluggish(3, delay=0.2), features=["a", "b", "c"])
    version = store.models.register(model, "torch", folder).version

    def count() -> int:
        if out not in store.tables():
            return 0
        return store.sql(f"SELECT COUNT(*) AS n FROM {out}").to_arrow()["n"][0].as_py()

    def staged() -> list[Path]:  # SQLite: the staging folders beside the database
        return sorted(tmp_path.glob(".test.db.staging-*"))

    def started() -> bool:  # some batches written (PostgreSQL) or staged (SQLite)
        if backend == "sqlite":
            return any(f.stat().st_size > 0 for d in staged() for f in d.glob("*.db"))
        return count() > 0

    child = subprocess.Popen(
        [sys.executable, str(HERE / "fault_child.py"), "predict",
         ray.get_runtime_context().gcs_address, url, model, data, out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 400
        while not started() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.2)
        assert child.poll() is None, child.stderr.read()[-3000:]  # still running: kill it
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        partial = count()
        if backend == "sqlite":
            assert partial == 0 and len(staged()) == 1  # nothing merged; its folder stays
        else:
            assert 0 < partial < n  # killed halfway: some batches were written

        rerun = pr.predict(
            model,
            store.table(data, key="id"),
            output=out,
            batch_size=500,
            trusted_modules=[Sluggish],
        )
        assert (rerun.rows, rerun.version) == (n, version)
        rows = store.table(out).to_arrow().to_pandas()
        assert len(rows) == n and sorted(rows["id"]) == list(range(n))  # one row per key
        assert rows["created_at"].nunique() == 1  # every row now from the rerun
        assert staged() == []  # the killed run's staging folder went with the rerun
    finally:
        if child.poll() is None:
            child.kill()
        store.models.delete(model)  # the server's registry is shared


# -- 5. the cluster is stopped under a running job -----------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    from ray_cluster import BIN

    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [str(BIN / "pinnacle-ray"), *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_job_whose_cluster_is_stopped_under_it_is_recorded_failed_not_running(tmp_path):
    import json
    import time

    from ray_cluster import start_head

    from pinnacle_ray.jobs import JobRecord, JobRecords
    from pinnacle_ray.jobs.tracking import connect_client

    store = pr.connect(tmp_path / "jobs.db")
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    records = JobRecords(store)
    head = start_head(num_cpus=1)  # our own cluster: the session's Ray is never touched
    try:
        client = connect_client(head.address)
        ids = [client.submit_job(entrypoint="sleep 600", submission_id=f"pr-sleeper-{i}")
               for i in (1, 2)]  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any(
            str(client.get_job_status(sid)) not in ("RUNNING", "JobStatus.RUNNING") for sid in ids
        ):
            time.sleep(0.5)
        for sid in ids:
            assert str(getattr(s := client.get_job_status(sid), "value", s)) == "RUNNING"
            records.save(JobRecord(sid, name="sleeper", status="RUNNING", address=head.address))
    finally:
        head.stop()

    status = _cli("jobs", "status", ids[0], "--store", url, "--json")
    assert status.returncode == 0, status.stderr[-3000:]
    shown = json.loads(status.stdout)
    assert shown["status"] == "FAILED" and "cluster unreachable" in shown["error"]
    assert records.get(ids[0]).status == "FAILED"

    listed = _cli("jobs", "list", "--store", url, "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert {r["submission_id"]: r["status"] for r in json.loads(listed.stdout)} == {
        ids[0]: "FAILED",
        ids[1]: "FAILED",
    }
    assert "cluster unreachable" in records.get(ids[1]).error


def test_an_unreachable_cluster_fails_only_its_own_records_and_only_when_it_refuses(tmp_path):
    from ray_cluster import free_ports

    from pinnacle_ray.jobs import JobRecord, JobRecords
    from pinnacle_ray.jobs.tracking import connect_client, reconcile_unreachable

    gone = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens: a stopped cluster
    with pytest.raises(pr.ClusterUnreachable) as info:
        connect_client(gone)
    refused = info.value
    assert refused.refused
    records = JobRecords(pr.connect(tmp_path / "jobs.db"))
    ours = records.save(JobRecord("pr-a-1", "a", "RUNNING", address=gone))
    silent = pr.ClusterUnreachable("timed out", refused=False)  # maybe our network
    assert reconcile_unreachable(records, ours, gone, silent).status == "RUNNING"
    other = "http://127.0.0.1:9"  # another cluster's silence proves nothing
    assert reconcile_unreachable(records, ours, other, refused).status == "RUNNING"
    assert records.get("pr-a-1").status == "RUNNING"
    fixed = reconcile_unreachable(records, ours, gone, refused)
    assert fixed.status == "FAILED" and fixed.error.startswith("cluster unreachable")
    assert (records.get("pr-a-1").status, records.get("pr-a-1").error) == ("FAILED", fixed.error)
