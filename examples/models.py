"""Model code that the run specs in ``examples/specs/`` name by import path.

``trainer.model: examples.models:MLP`` builds ``MLP(**model_args)``;
``trainer.train_loop_per_worker: examples.models:train_loop`` is a plain Ray Train loop.
Run the specs from the repository root so ``examples`` is importable.
"""

from __future__ import annotations

import ray.train
import ray.train.torch
import torch

import pinnacle_ray as pr


class MLP(torch.nn.Module):
    """A small regression MLP; its constructor arguments are attributes, so the registry
    records them and rebuilds the model by import path when it is loaded."""

    def __init__(self, in_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.in_features = in_features
        self.hidden = hidden
        self.net = torch.nn.Sequential(
            torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_loop(config: dict) -> None:
    """Plain Ray Train code: this worker's shard, DDP, a checkpoint per epoch, resume."""
    features, label = config["features"], config["label"]
    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(MLP(len(features), config.get("hidden", 32)))
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    start = 0
    if checkpoint := pr.get_checkpoint():
        with checkpoint.as_directory() as d:
            start = pr.load_state(d, model, opt)["epoch"] + 1
    for epoch in range(start, config["epochs"]):
        total, count = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=32, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in features], dim=1)
            y = batch[label] / config.get("label_scale", 1.0)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
        pr.report({"epoch": epoch, "mse": total / max(count, 1)}, model=model, optimizer=opt,
                  extra={"epoch": epoch})  # fmt: skip
