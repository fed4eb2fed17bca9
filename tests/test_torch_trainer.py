"""TorchTrainer, Ray style: plain Ray Train loops on datastore queries, planned to never hang."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
import ray.train
import torch
from ray.train import RunConfig, ScalingConfig

import pinnacle_ray as pr

FEATURES = ["x0", "x1", "x2", "x3"]


@pytest.fixture
def linear_table(tmp_path):
    store = pr.connect(tmp_path / "train.db")
    rng = np.random.default_rng(0)
    n = 2_000
    x = rng.normal(size=(n, 4))
    y = x @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=n)
    data = {"id": np.arange(n)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y}
    store.write("points", pa.table(data), key="id")
    return store


def linear_loop(config):
    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    for epoch in range(config["epochs"]):
        total, count = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=32, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
        pr.report({"epoch": epoch, "loss": total / count}, model=model, optimizer=opt)


def test_two_workers_on_two_cpus_finish_while_reading_a_query(linear_table, tmp_path, caplog):
    trainer = pr.TorchTrainer(
        linear_loop,
        train_loop_config={"lr": 0.05, "epochs": 4},
        scaling_config=ScalingConfig(num_workers=2),  # default 1 CPU each: all 2 CPUs
        run_config=RunConfig(name="linear", storage_path=str(tmp_path / "runs")),
        name="linear",
    )
    result = trainer.fit(train=linear_table.table("points"))
    assert result.metrics["epoch"] == 3
    assert result.metrics["loss"] < 1.0
    assert "0.75 CPU" in caplog.text  # the adjustment is said, once
    model = torch.nn.Linear(4, 1)
    with result.checkpoint.as_directory() as d:
        extra = pr.load_state(d, model)
    assert extra["metrics"]["epoch"] == 3
    assert torch.allclose(model.weight.detach(), torch.tensor([[1.5, -2.0, 0.5, 3.0]]), atol=0.3)
    # Registered too: a custom loop's reports of {"epoch": n} name epoch handles.
    version = linear_table.models.get("linear")
    assert (version.version, version.handles) == (1, ("epoch_1", "epoch_2", "epoch_3", "latest"))
    loaded = linear_table.models.load("linear", model=torch.nn.Linear(4, 1))
    assert torch.equal(loaded.module.weight, model.weight)


def failing_loop(config):
    raise ValueError("bad feature scaling in worker code")


def test_an_error_in_the_loop_reaches_the_user_as_its_own_type(linear_table, tmp_path):
    trainer = pr.TorchTrainer(
        failing_loop,
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=str(tmp_path / "runs")),
    )
    with pytest.raises(ValueError, match="bad feature scaling") as info:
        trainer.fit(train=linear_table.table("points"))
    assert any("Ray Train worker" in note for note in info.value.__notes__)


def test_an_impossible_request_is_refused_within_seconds(linear_table):
    trainer = pr.TorchTrainer(
        linear_loop, scaling_config=ScalingConfig(num_workers=16, resources_per_worker={"CPU": 4})
    )
    started = time.monotonic()
    with pytest.raises(pr.ResourceError, match=r"64 CPUs requested.*has 2"):
        trainer.fit(train=linear_table.table("points"))
    assert time.monotonic() - started < 5


def dying_loop(config):
    """Dies hard (os._exit) once, mid-run; continues from the latest checkpoint after."""
    import os

    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    start = 0
    if checkpoint := ray.train.get_checkpoint():
        with checkpoint.as_directory() as d:
            start = pr.load_state(d, model, opt)["epoch"] + 1
    for epoch in range(start, 4):
        for batch in shard.iter_torch_batches(batch_size=256, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        pr.report(
            {"epoch": epoch, "start": start}, model=model, optimizer=opt, extra={"epoch": epoch}
        )
        marker = config["marker"]
        if (
            epoch == 1
            and ray.train.get_context().get_world_rank() == 1
            and not os.path.exists(marker)
        ):
            # Ray Train's controller collects reports every 2 s and a real epoch is longer:
            # work on (no collectives, no sleep) for 3 s after the report, then die hard.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                torch.randn(128, 128) @ torch.randn(128, 128)
            open(marker, "w").close()
            os._exit(1)


def test_a_worker_that_dies_mid_run_resumes_from_the_latest_checkpoint(linear_table, tmp_path):
    from ray.train import FailureConfig

    trainer = pr.TorchTrainer(
        dying_loop,
        train_loop_config={"marker": str(tmp_path / "died-once")},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(
            storage_path=str(tmp_path / "runs"), failure_config=FailureConfig(max_failures=1)
        ),
    )
    result = trainer.fit(train=linear_table.table("points"))
    assert (tmp_path / "died-once").exists()
    assert result.metrics == {"epoch": 3, "start": 2}  # resumed after epoch 1, not from 0
    assert result.version == 1
    assert [v.version for v in linear_table.models.list("dying_loop")] == [1]
