"""A user's script that submits one fit as a Ray job and exits at once (tests/test_submit.py
runs it as the client process). Its custom torch loop is defined here, in ``__main__``: it
reaches the cluster pickled by value, with nothing installed or uploaded.

Usage: python submit_fit.py '{"url": ..., "artifact_root": ..., "table": ..., "kind": ...,
"name": ..., "model_dir": ...}'   (prints {"id": ..., "status": ..., "seconds": ...})
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import ray.train
import torch
from ray.train import ScalingConfig
from sklearn.linear_model import Ridge

import pinnacle_ray as pr

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def linear_loop(config: dict) -> None:
    """Plain Ray Train code: a linear model on the diabetes features, one report per epoch."""
    shard = ray.train.get_dataset_shard("train")
    model = ray.train.torch.prepare_model(torch.nn.Linear(len(FEATURES), 1))
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    for epoch in range(config["epochs"]):
        total, count = 0.0, 0
        for batch in shard.iter_batches(batch_size=64, batch_format="numpy"):
            x = torch.tensor(np.stack([batch[f] for f in FEATURES], axis=1), dtype=torch.float32)
            y = torch.tensor(batch["target"] / 100, dtype=torch.float32)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
        pr.report({"epoch": epoch, "loss": total / count}, model=model, optimizer=opt)


def failing_loop(config: dict) -> None:
    raise ValueError("bad feature scaling in worker code")


def slow_loop(config: dict) -> None:
    for step in range(600):
        time.sleep(1)  # a long run that the test stops
        ray.train.report({"step": step})


def trainer_for(kind: str, name: str, model_dir: str | None) -> object:
    one = ScalingConfig(num_workers=1)
    if kind == "sklearn":
        return pr.SklearnTrainer(Ridge(alpha=0.1), features=FEATURES, label="target", name=name)
    if kind == "xgboost":
        params = {"objective": "reg:squarederror", "max_depth": 3}
        return pr.XGBoostTrainer(
            params=params,
            features=FEATURES,
            label="target",
            num_boost_round=5,
            scaling_config=one,
            name=name,
        )
    if kind in ("torch", "failing", "slow"):
        loop = {"torch": linear_loop, "failing": failing_loop, "slow": slow_loop}[kind]
        config = {"lr": 0.05, "epochs": 2}
        return pr.TorchTrainer(loop, train_loop_config=config, scaling_config=one, name=name)
    if kind == "huggingface":
        return pr.HuggingFaceTrainer(
            model=model_dir,
            text_column="text",
            label="label",
            training_args={"learning_rate": 5e-3, "per_device_train_batch_size": 16,
                           "num_train_epochs": 1, "logging_steps": 2, "warmup_steps": 0},
            max_length=16,
            scaling_config=one,
            name=name,
        )  # fmt: skip
    raise SystemExit(f"unknown kind {kind!r}")


def main() -> None:
    args = json.loads(sys.argv[1])
    store = pr.connect(args["url"], artifact_root=args["artifact_root"])
    train = store.table(args["table"], where={"split": "train"}, key="id")
    valid = store.table(args["table"], where={"split": "valid"}, key="id")
    trainer = trainer_for(args["kind"], "draft", args.get("model_dir"))
    start = time.monotonic()
    job = trainer.submit(train=train, valid=valid, register=args["name"])
    seconds = time.monotonic() - start
    print(json.dumps({"id": job.id, "status": job.status(), "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
