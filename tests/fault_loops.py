"""Ray Train loops for the fault tests (importable by Ray's worker processes).

``killed_loop`` counts steps across restarts (the step counter lives in the checkpoint),
and once, after the report of epoch 1, a worker is killed: ``how="ray.kill"`` has rank 1
``ray.kill`` rank 0's actor (its handle broadcast from rank 0), ``how="exit"`` has rank 1
``os._exit``; with ``die_at_once`` rank 1 exits before training. A marker file makes it
happen only in the first attempt.
"""

from __future__ import annotations

import os
import time

import ray
import ray.train
import ray.train.collective
import torch

import pinnacle_ray as pr

FEATURES = ["x0", "x1", "x2", "x3"]
EPOCHS = 3


def killed_loop(config: dict) -> None:
    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rank = ray.train.get_context().get_world_rank()
    start, step = 0, 0
    if checkpoint := pr.get_checkpoint():
        with checkpoint.as_directory() as d:
            saved = pr.load_state(d, model, opt)
        start, step = saved["epoch"] + 1, saved["step"]
    if config.get("die_at_once") and rank == 1:
        open(config["marker"], "w").close()
        os._exit(1)  # before any checkpoint: no restart can help, none is allowed
    for epoch in range(start, EPOCHS):
        epoch_steps = 0
        for batch in shard.iter_torch_batches(batch_size=128, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step, epoch_steps = step + 1, epoch_steps + 1
        metrics = {"epoch": epoch, "step": step, "start": start, "epoch_steps": epoch_steps}
        pr.report(metrics, model=model, optimizer=opt, extra={"epoch": epoch, "step": step})
        if epoch == 1 and not os.path.exists(config["marker"]):
            _kill_a_worker(config, rank)


def _kill_a_worker(config: dict, rank: int) -> None:
    # Ray Train's controller collects reports every 2 s: work on (no collectives, no sleep)
    # for 3 s so the epoch-1 checkpoint is committed before the fault.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        torch.randn(128, 128) @ torch.randn(128, 128)
    if config["how"] == "ray.kill":
        me = ray.get_runtime_context().current_actor if rank == 0 else None
        victim = ray.train.collective.broadcast_from_rank_zero(me)
        if rank == 1:
            open(config["marker"], "w").close()
            ray.kill(victim)  # rank 0's Ray Train worker actor, killed from outside it
            time.sleep(60)  # the controller tears the group down meanwhile
    elif rank == 1:
        open(config["marker"], "w").close()
        os._exit(1)


class Sluggish(torch.nn.Module):
    """A linear model that takes ``delay`` seconds per batch, so a run can be killed halfway."""

    def __init__(self, n_in: int, delay: float = 0.0) -> None:
        super().__init__()
        self.n_in = n_in
        self.delay = delay
        self.linear = torch.nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return self.linear(x)
