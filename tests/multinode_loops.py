"""Data and a Ray Train loop for the multi-node tests (importable by every node's workers:
the checkout is on the shared code path, ``PYTHONPATH`` points here)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import ray
import ray.train
import torch

import pinnacle_ray as pr

FEATURES = ["x0", "x1", "x2", "x3"]
WEIGHTS = np.array([1.5, -2.0, 0.5, 3.0])
EPOCHS = 3


def points(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows of id, x0..x3 and y = x @ WEIGHTS + noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = x @ WEIGHTS + 0.05 * rng.normal(size=n)
    return {"id": np.arange(n)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y}


@ray.remote(num_cpus=0)
class Signal:
    """A flag the training workers raise and the driver waits on (no files, no sleeps)."""

    def __init__(self) -> None:
        self.raised: dict[str, Any] = {}

    def set(self, info: dict[str, Any]) -> None:
        self.raised = info

    def get(self) -> dict[str, Any]:
        return self.raised


def node_loss_loop(config: dict) -> None:
    """Three epochs of a linear model; the step count lives in the checkpoint. In the first
    attempt, after epoch 1's checkpoint is reported, every worker raises ``config["signal"]``
    and waits to be killed (the test kills the node under one of them); a restarted attempt
    resumes from the checkpoint and finishes."""
    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    start, step = 0, 0
    if checkpoint := pr.get_checkpoint():
        with checkpoint.as_directory() as d:
            saved = pr.load_state(d, model, opt)
        start, step = saved["epoch"] + 1, saved["step"]
    context = ray.train.get_context()
    for epoch in range(start, EPOCHS):
        epoch_steps = 0
        for batch in shard.iter_torch_batches(batch_size=128, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step, epoch_steps = step + 1, epoch_steps + 1
        metrics = {
            "epoch": epoch,
            "step": step,
            "start": start,
            "epoch_steps": epoch_steps,
            "world_size": context.get_world_size(),
        }
        pr.report(metrics, model=model, optimizer=opt, extra={"epoch": epoch, "step": step})
        if epoch == 1 and start == 0:
            node = ray.get_runtime_context().get_node_id()
            ray.get(config["signal"].set.remote({"rank": context.get_world_rank(), "node": node}))
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # until the test kills this run's node
                time.sleep(0.5)
            raise RuntimeError("the test never killed the worker node")
