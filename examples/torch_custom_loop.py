"""A plain Ray Train loop on a table in SQLite: two workers, checkpoints, resume, registry.

Run: ``.venv/bin/python examples/torch_custom_loop.py`` (after ``./dev quickstart`` once).
The table is scikit-learn's bundled diabetes data set; Ray starts locally on demand.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray.train
import ray.train.torch
import torch
from ray.train import FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from sklearn.datasets import load_diabetes

import pinnacle_ray as pr

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def make_model() -> torch.nn.Module:
    """The MLP; the trainer gets one too, so the registry can rebuild it for predictions."""
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


def train_loop(config: dict) -> None:
    """Plain Ray Train code: this worker's shard, DDP, a checkpoint every epoch, resume."""
    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(make_model())
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    start = 0
    # After a worker failure: this run's latest checkpoint; with fit(resume_from=...): the
    # registered one; else None. (ray.train.get_checkpoint() covers the first case only.)
    if checkpoint := pr.get_checkpoint():
        with checkpoint.as_directory() as d:
            start = pr.load_state(d, model, opt)["epoch"] + 1
    for epoch in range(start, config["epochs"]):
        total, count = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=16, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["target"] / 100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
        pr.report(
            {"epoch": epoch, "mse": total / count},
            model=model,
            optimizer=opt,
            extra={"epoch": epoch},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="custom_loop.db")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()

    store = pr.connect(Path(args.db))
    frame = load_diabetes(as_frame=True).frame
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    store.write("diabetes", frame, key="id")

    trainer = pr.TorchTrainer(
        train_loop,
        train_loop_config={"lr": 0.01, "epochs": args.epochs},
        scaling_config=ScalingConfig(num_workers=2),
        model=make_model(),  # what the registry rebuilds to load the weights
        features=FEATURES,
        label="target",
        run_config=RunConfig(
            name=f"diabetes-mlp-{time.time_ns()}",  # Ray Train V2 resumes a same-named run
            storage_path=tempfile.mkdtemp(prefix="pinnacle-runs-"),
            failure_config=FailureConfig(max_failures=1),
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        name="diabetes-mlp",
    )
    result = trainer.fit(train=store.table("diabetes"))
    print(f"trained {result.name}: {result.metrics}")
    print(f"registered as version {result.version}: {store.models.get(result.name)}")
    model = store.models.load(result.name, handle="latest")
    rows = store.table("diabetes").to_arrow().slice(0, 3)
    for truth, guess in zip(rows.column("target").to_pylist(), model.predict(rows), strict=True):
        print(f"  target {truth:6.1f}   predicted {guess * 100:6.1f}")


if __name__ == "__main__":
    main()
