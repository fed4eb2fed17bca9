"""``TorchTrainer``: plain Ray Train torch code, fed by datastore queries, that never hangs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray.data
import ray.train
import ray.train.torch
from ray.train import LoggingConfig, RunConfig, ScalingConfig

from ..errors import ConfigError
from .base import TrainResult, datasets_for, plan_for, raise_worker_error

__all__ = ["TorchTrainer"]


class TorchTrainer:
    """Run a ``train_loop_per_worker`` on Ray Train with queries as its datasets.

    Inside the loop, plain Ray Train code works unchanged:
    ``ray.train.get_dataset_shard("train")`` gives each worker its shard of the query, and
    ``pr.report(metrics, model=..., optimizer=...)`` reports with a safe checkpoint.

    Example::

        def loop(config):
            shard = ray.train.get_dataset_shard("train")
            model = ray.train.torch.prepare_model(torch.nn.Linear(10, 1))
            ...
            pr.report({"loss": loss}, model=model, optimizer=opt)

        trainer = pr.TorchTrainer(loop, train_loop_config={"lr": 1e-3},
                                  scaling_config=ScalingConfig(num_workers=2), name="mlp")
        result = trainer.fit(train=store.table("houses"))

    Before the run, resources are planned: on a small cluster the workers' default CPU
    share shrinks so data reads still get CPUs (said once in a log line); a request the
    cluster cannot hold raises ``ResourceError`` with the numbers.
    """

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(train_loop_per_worker):
            raise ConfigError(
                "train_loop_per_worker must be a function taking the train_loop_config, got "
                f"{type(train_loop_per_worker).__name__}"
            )
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = dict(train_loop_config or {})
        self.scaling_config = scaling_config or ScalingConfig(num_workers=1)
        self.name = name or getattr(train_loop_per_worker, "__name__", "torch")
        # Ray Train's own INFO lines (every report, every checkpoint) drown the user's output;
        # pass a run_config to choose differently.
        self.run_config = run_config or RunConfig(
            name=self.name, logging_config=LoggingConfig(log_level="WARNING")
        )

    def fit(self, train: Any, valid: Any = None) -> TrainResult:
        """Train on ``train`` (a query or ``ray.data.Dataset``), validating on ``valid``."""
        plan = plan_for(self.scaling_config)
        datasets = datasets_for({"train": train, "valid": valid}, plan)
        trainer = ray.train.torch.TorchTrainer(
            self.train_loop_per_worker,
            train_loop_config=self.train_loop_config,
            scaling_config=plan.scaling_config,
            run_config=self.run_config,
            datasets=datasets,
        )
        try:
            result = trainer.fit()
        except Exception as exc:  # Ray Train's failure types differ between V1 and V2
            raise_worker_error(exc)
            raise
        return TrainResult(
            name=self.name,
            metrics=dict(result.metrics or {}),
            checkpoint=result.checkpoint,
            path=getattr(result, "path", None),
            ray_result=result,
        )
