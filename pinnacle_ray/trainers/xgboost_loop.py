"""The loop each XGBoost worker runs: its share of the rows (blocks already in Ray's object
store, fetched zero-copy) into a DMatrix, ``xgboost.train`` with Ray's report callback
(XGBoost's collective is set up by Ray Train's XGBoostConfig).

Metrics are reported as ``train/<metric>`` and ``valid/<metric>`` with the ``round``:
every ``report_every`` rounds, or by default at most about once a second (a Ray Train
report waits until the controller's poll (every 0.1 s in our fits; 0.25 s when this was
measured) has collected the previous one, which on small data costs more than the round
itself: measured 0.28 s per round against 0.08 s of boosting on 1M rows). A report
is a barrier across the workers and a round is an allreduce, so the workers agree on every
report (one small allreduce per round): a worker reporting while another boosts deadlocks.
Checkpoints (``model.ubj``) every ``checkpoint_frequency`` rounds and at the end.
A restarted worker group continues from Ray's latest checkpoint, a resumed run from the
registered booster, both up to ``total_rounds``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray.train
import xgboost as xgb
from ray.train.xgboost import RayTrainReportCallback
from xgboost import collective

from ..registry.xgboost_flavor import MODEL_FILE, feature_frame, load_booster
from .start_checkpoint import get_checkpoint
from .tabular import Blocks, label_array, rows_of_worker

__all__ = ["XGBoostSpec", "xgboost_loop"]


@dataclass(frozen=True)
class XGBoostSpec:
    """What every worker needs to build its DMatrix and boost."""

    params: dict[str, Any]
    features: list[str]
    label: str
    total_rounds: int
    early_stopping_rounds: int | None = None
    checkpoint_frequency: int = 0
    report_every: int | None = None
    categories: dict[str, list[Any]] = field(default_factory=dict)
    has_valid: bool = False


# With report_every=None, rounds closer together than this are not reported one by one.
MIN_REPORT_INTERVAL_S = 1.0


class _Report(RayTrainReportCallback):
    """Ray's callback, reporting ``train/rmse``-style names and the round count, every
    ``report_every`` rounds or (None) at most about once a second; checkpoint rounds and
    the end are always reported."""

    def __init__(self, frequency: int, report_every: int | None = None) -> None:
        super().__init__(
            filename=MODEL_FILE,
            frequency=frequency,
            checkpoint_at_end=True,
            results_postprocessing_fn=self._rename,
        )
        self.rounds = 0
        self.report_every = report_every
        self._last_report = time.monotonic()

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        self.rounds = model.num_boosted_rounds()
        if self.reports_after(epoch):
            super().after_iteration(model, epoch, evals_log)
            self._last_report = time.monotonic()
        else:
            self._evals_log = evals_log  # what the final report carries
        return False

    def reports_after(self, epoch: int) -> bool:
        """Whether every worker reports after round ``epoch`` (0-based): on checkpoint
        rounds, every ``report_every`` rounds, or (None) once a second has passed on any
        worker. Ray Train's report waits for every worker while XGBoost's next round waits
        for every worker too, so a worker reporting alone would deadlock: the clock-based
        decision is agreed through XGBoost's collective (the same on every worker)."""
        if self._frequency and (epoch + 1) % self._frequency == 0:
            return True
        if self.report_every is not None:
            return self.rounds % self.report_every == 0
        due = time.monotonic() - self._last_report >= MIN_REPORT_INTERVAL_S
        if not collective.is_distributed():
            return due
        flag = np.array([1 if due else 0], dtype=np.int32)
        return bool(collective.allreduce(flag, collective.Op.MAX)[0])

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        self.rounds = model.num_boosted_rounds()
        return super().after_training(model)

    def _rename(self, metrics: dict[str, float]) -> dict[str, Any]:
        out: dict[str, Any] = {k.replace("-", "/", 1): float(v) for k, v in metrics.items()}
        out["round"] = out["step"] = self.rounds
        return out


def xgboost_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` for :class:`pinnacle_ray.XGBoostTrainer`: ``config`` holds
    the spec and, per role, the read blocks (``tabular.Blocks``) the workers share out."""
    spec: XGBoostSpec = config["spec"]
    blocks: dict[str, Blocks] = config["blocks"]
    train = _dmatrix("train", spec, blocks["train"])
    evals = [(train, "train")]
    if spec.has_valid:
        evals.append((_dmatrix("valid", spec, blocks["valid"], ref=train), "valid"))
    start = get_checkpoint()  # Ray's own after a restart, else the registered one resumed
    booster = None
    if start is not None:
        with start.as_directory() as directory:
            booster = load_booster(directory)
    done = booster.num_boosted_rounds() if booster is not None else 0
    report = _Report(spec.checkpoint_frequency, spec.report_every)
    if done >= spec.total_rounds and booster is not None:
        report.after_training(booster)
        return
    xgb.train(
        spec.params,
        train,
        num_boost_round=spec.total_rounds - done,
        evals=evals,
        early_stopping_rounds=spec.early_stopping_rounds,
        xgb_model=booster,
        callbacks=[report],
        verbose_eval=False,
    )


def _quantile(params: dict[str, Any]) -> bool:
    """Whether the booster trains on histograms (``hist`` trees): then the DMatrix is
    XGBoost's ``QuantileDMatrix``, which bins the rows as it is built instead of keeping a
    sparse copy of them and binning in the first round (same bins, same model, less time
    and memory)."""
    return params.get("tree_method", "hist") == "hist" and params.get("booster", "gbtree") in (
        "gbtree",
        "dart",
    )


def _dmatrix(
    role: str, spec: XGBoostSpec, blocks: Blocks, ref: xgb.DMatrix | None = None
) -> xgb.DMatrix:
    """This worker's share of ``role``'s rows as a DMatrix (NULL/NaN features are missing
    values); a validation set is binned with the training set's bins (``ref``)."""
    context = ray.train.get_context()
    rank = context.get_world_rank()
    columns = [*dict.fromkeys([*spec.features, spec.label])]
    table = rows_of_worker(blocks, rank, context.get_world_size(), columns)
    if table.num_rows == 0:
        features = np.empty((0, len(spec.features)), np.float32)
        label = np.empty(0, np.float32)
    else:
        label = label_array(table, spec.label, f"the {role} rows of worker {rank}")
        label = label.astype(np.float32)
        features = feature_frame(table, spec.features, spec.categories)
    del table  # the features are copied out: the blocks' pages are not needed any more
    options: dict[str, Any] = {
        "label": label,
        "missing": np.nan,
        "feature_names": spec.features,
        "enable_categorical": bool(spec.categories),
        "nthread": spec.params.get("nthread"),
    }
    if not _quantile(spec.params):
        return xgb.DMatrix(features, **options)
    if "max_bin" in spec.params:
        options["max_bin"] = spec.params["max_bin"]
    return xgb.QuantileDMatrix(features, ref=ref, **options)
