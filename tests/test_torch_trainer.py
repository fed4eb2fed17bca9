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
    model = ray.train.torch.prepare_model(config["model"])
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
        # a module in the config reaches the workers with the plain values (worker_config)
        train_loop_config={"lr": 0.05, "epochs": 4, "model": torch.nn.Linear(4, 1)},
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


def test_ray_trains_controller_gets_only_plain_config_values_and_the_loop_gets_them_all():
    """Ray Train unpickles train_loop_config in its controller too: a model or tokenizer
    there made the controller import its framework (5.8 s for transformers), so everything
    but plain values travels in one object-store entry only the workers open."""
    from pinnacle_ray.trainers.base import opened_config, worker_config

    model = torch.nn.Linear(4, 1)
    config = {"lr": 0.05, "layers": [8, 4], "adam": {"betas": [0.9, 0.99]}, "model": model}
    shipped = worker_config(config)
    refs = [k for k, v in shipped.items() if isinstance(v, ray.ObjectRef)]
    assert len(refs) == 1 and len(shipped) == 4
    assert {k: v for k, v in shipped.items() if k not in refs} == {
        "lr": 0.05,
        "layers": [8, 4],
        "adam": {"betas": [0.9, 0.99]},
    }
    seen = opened_config(shipped)  # what a worker's loop receives
    assert seen.keys() == config.keys() and seen["adam"] == config["adam"]
    assert torch.equal(seen["model"].weight, model.weight)
    assert worker_config({"lr": 0.1, "name": "größe"}) == {"lr": 0.1, "name": "größe"}
