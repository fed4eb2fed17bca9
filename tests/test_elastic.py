"""Elastic workers: ``ScalingConfig(num_workers=(min, max))`` runs on every trainer whose Ray
Train supports it: its minimum must be placeable, and the reads keep their room beside its
maximum (Ray Train reserves max workers' resources in Ray Data's coordinator)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import ray.train
from ray.train import RunConfig, ScalingConfig

import pinnacle_ray as pr

FEATURES = ["x0", "x1", "x2", "x3"]


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    store = pr.connect(tmp_path_factory.mktemp("elastic") / "train.db")
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=(n, 4))
    y = x @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=n)
    data = {"id": np.arange(n)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y}
    store.write("points", pa.table(data), key="id")
    yield store
    store.close()


def world_size_loop(config):
    import torch

    rows = sum(len(b["id"]) for b in ray.train.get_dataset_shard("train").iter_batches())
    metrics = {"world_size": ray.train.get_context().get_world_size(), "rows": rows}
    # Ray Train V2 keeps the metrics reported with a checkpoint as the result's.
    pr.report(metrics, model=torch.nn.Linear(1, 1))


@pytest.mark.timeout(300)
def test_an_elastic_custom_loop_runs_between_min_and_max_with_every_row_read(points, tmp_path):
    trainer = pr.TorchTrainer(
        world_size_loop,
        scaling_config=ScalingConfig(num_workers=(1, 2)),
        run_config=RunConfig(storage_path=str(tmp_path / "runs")),
        name="elastic-loop",
    )
    result = trainer.fit(train=points.table("points"), register=False)
    # Planned like a fixed 2 (0.75 CPU each, reads keep 0.5): both start on 2 CPUs.
    assert result.metrics["world_size"] == 2
    assert result.metrics["rows"] == 300  # rank 0's equal share


@pytest.mark.timeout(300)
def test_an_elastic_managed_torch_fit_trains_and_registers_when_given_a_range(points):
    import torch

    trainer = pr.TorchTrainer(
        model=torch.nn.Linear(4, 1),
        objective="mse",
        features=FEATURES,
        label="y",
        optimizer_cls="Adam",
        optimizer_kwargs={"lr": 0.05},
        batch_size=64,
        max_iterations=60,
        scaling_config=ScalingConfig(num_workers=(1, 2)),
        name="elastic-mlp",
    )
    result = trainer.fit(train=points.table("points"))
    assert result.version == 1
    assert points.models.get("elastic-mlp").version == 1


@pytest.mark.timeout(300)
def test_an_elastic_xgboost_fit_trains_and_registers_when_given_a_range(points):
    trainer = pr.XGBoostTrainer(
        params={"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3},
        features=FEATURES,
        label="y",
        num_boost_round=20,
        scaling_config=ScalingConfig(num_workers=(1, 2)),
        name="elastic-xgb",
    )
    result = trainer.fit(train=points.table("points"))
    assert result.version == 1
    assert points.models.load("elastic-xgb").predict(
        points.table("points").to_arrow().to_pandas()[FEATURES].head(3)
    ).shape == (3,)


@pytest.mark.timeout(400)
def test_an_elastic_huggingface_fit_trains_and_registers_when_given_a_range(tmp_path):
    from text_data import sentiment_rows, tiny_bert

    store = pr.connect(tmp_path / "text.db")
    store.write("reviews", sentiment_rows(64), key="id")
    trainer = pr.HuggingFaceTrainer(
        model=str(tiny_bert(tmp_path / "tiny-bert")),
        text_column="text",
        label="label",
        training_args={"per_device_train_batch_size": 16, "num_train_epochs": 1},
        max_length=16,
        scaling_config=ScalingConfig(num_workers=(1, 2)),
        name="elastic-hf",
    )
    result = trainer.fit(train=store.table("reviews"))
    assert result.version == 1
    store.close()


def test_an_elastic_minimum_the_cluster_cannot_hold_is_refused_within_seconds(points):
    trainer = pr.TorchTrainer(
        world_size_loop,
        scaling_config=ScalingConfig(num_workers=(3, 4), resources_per_worker={"CPU": 1}),
        name="elastic-too-big",
    )
    with pytest.raises(pr.ResourceError, match=r"3 worker\(s\) x 1 CPU = 3 CPUs requested"):
        trainer.fit(train=points.table("points"), register=False)


GROW_DRIVER = """
import json, os, sys, time
import numpy as np, pyarrow as pa, ray.train, torch
from ray.train import RunConfig, ScalingConfig
import pinnacle_ray as pr
from pinnacle_ray._internal.runtime import ensure_ray

here = sys.argv[1]
ensure_ray()
store = pr.connect(f"sqlite:///{here}/grow.db", artifact_root=f"file://{here}/art")
store.write("rows", pa.table({"id": np.arange(40), "x": np.arange(40.0)}), key="id")


def loop(config):
    start = ray.train.get_checkpoint()
    seen = []
    if start is not None:
        with start.as_directory() as d:
            seen = json.load(open(os.path.join(d, "seen.json")))
    size = ray.train.get_context().get_world_size()
    seen.append(size)
    rank = ray.train.get_context().get_world_rank()
    if rank == 0 and size == 1:
        open(config["marker"], "w").write("started with 1")
    deadline = time.monotonic() + 150
    while True:  # one report per second until a second worker joined (or time is up)
        rows = sum(len(b["id"]) for b in ray.train.get_dataset_shard("train").iter_batches())
        done = size >= 2 or time.monotonic() > deadline
        with __import__("tempfile").TemporaryDirectory() as d:
            json.dump(seen, open(os.path.join(d, "seen.json"), "w"))
            ray.train.report({"seen": seen, "rows": rows, "world_size": size},
                             checkpoint=ray.train.Checkpoint.from_directory(d))
        if done:
            return
        time.sleep(1)


trainer = pr.TorchTrainer(
    loop,
    train_loop_config={"marker": f"{here}/started"},
    scaling_config=ScalingConfig(num_workers=(1, 2), resources_per_worker={"slot": 1},
                                 elastic_resize_monitor_interval_s=1),
    run_config=RunConfig(storage_path=f"file://{here}/runs"),
    name="grow",
)
result = trainer.fit(train=store.table("rows"), register=False)
print(json.dumps(result.metrics))
"""


@pytest.mark.cluster  # a Ray cluster of its own
@pytest.mark.timeout(600)
def test_an_elastic_run_grows_to_its_maximum_when_a_node_joins(tmp_path):
    import json
    import secrets
    import subprocess
    import sys
    import time

    from ray_cluster import start_head, start_worker_node

    # One "slot" per node: the run starts with 1 worker and can grow only onto a new node.
    cluster = start_head(
        num_cpus=2, resources={"slot": 1}, env={"RAY_AUTH_TOKEN": secrets.token_hex(32)}
    )
    node = None
    try:
        script = tmp_path / "grow.py"
        script.write_text(GROW_DRIVER)
        env = {**cluster.env, "RAY_ADDRESS": cluster.gcs_address}
        driver = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        marker = tmp_path / "started"
        deadline = time.monotonic() + 300
        while not marker.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)  # polls for the run's own signal that it started with 1 worker
        assert marker.exists(), driver.communicate()[1][-3000:] if driver.poll() else "no start"
        node = start_worker_node(cluster, num_cpus=1, isolated=False, label="slot")
        out, err = driver.communicate(timeout=400)
        assert driver.returncode == 0, err[-3000:]
        metrics = json.loads(out.strip().splitlines()[-1])
        assert metrics["seen"][0] == 1 and metrics["world_size"] == 2
        assert metrics["rows"] == 20  # rank 0's equal share of 40 rows on 2 workers
    finally:
        if node is not None:
            node.stop()
        cluster.stop()
