"""TorchTrainer's managed loop: model + objective in, a trained, registered model out."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from ray.train import FailureConfig, RunConfig, ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.trainers.holdout import holdout_mask

FEATURES = ["x0", "x1", "x2", "x3"]
WEIGHTS = np.array([1.5, -2.0, 0.5, 3.0])


def _points(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = x @ WEIGHTS + 0.05 * rng.normal(size=n)
    return {"id": np.arange(n)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y}


@pytest.fixture
def store(tmp_path):
    s = pr.connect(tmp_path / "managed.db")
    s.write("points", pa.table(_points(2_000)), key="id")
    yield s
    s.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One managed run (two workers, three epochs, validation on the key's hash split),
    shared by the tests that only look at its result (each Ray Train start costs ~10-15 s)."""
    s = pr.connect(tmp_path_factory.mktemp("managed") / "managed.db")
    s.write("points", pa.table(_points(2_000)), key="id")
    result = _linear().fit(train=s.table("points"))
    yield s, result
    s.close()


def _linear(**kw):
    torch.manual_seed(0)
    args = {
        "model": torch.nn.Sequential(torch.nn.Linear(4, 1)),
        "objective": "mse",
        "features": FEATURES,
        "label": "y",
        "optimizer_kwargs": {"lr": 0.1},
        "batch_size": 32,
        "epochs": 3,
        "scaling_config": ScalingConfig(num_workers=2),
        "name": "lin",
    }
    return pr.TorchTrainer(**(args | kw))


def test_managed_loop_learns_and_registers_a_loadable_version_when_given_a_model(trained):
    store, result = trained
    assert result.version == 1
    assert result.metrics["valid/loss"] < 0.05
    assert result.metrics["epoch"] == 2 and result.metrics["epoch_done"]
    version = store.models.get("lin")
    assert version.version == 1 and version.framework == "torch"
    handles = {h: store.models.get("lin", handle=h).step for h in ("latest", "best", "epoch_2")}
    assert handles["latest"] == result.metrics["step"]
    frame = pd.DataFrame(_points(50, seed=7))
    predicted = store.models.load("lin", handle="best").predict(frame)
    assert np.abs(predicted - frame["y"].to_numpy()).max() < 0.5


def test_the_time_of_the_first_optimizer_step_is_reported_between_loop_start_and_report(
    trained,
):
    # What the training-overhead benchmark reads as time to first step (from fit's start).
    _, result = trained
    m = result.metrics
    assert m["timing/loop_started_at"] < m["timing/first_step_at"] < m["timing/reported_at"]
    first = [r.metrics["timing/first_step_at"] for r in result.reports]
    assert len(first) == len(result.reports) and len(set(first)) == 1  # the run's first only


def test_validation_runs_on_a_hash_split_of_the_key_when_no_valid_query_is_given(trained):
    store, result = trained
    assert "valid/loss" in result.metrics
    lineage = store.models.get("lin").lineage
    assert lineage["valid"] == {"holdout": "hash of the key", "fraction": 0.05}
    assert lineage["train"]["table"] == "points"
    assert (lineage["train"]["rows"], lineage["train"]["key_min"]) == (2_000, 0)
    assert lineage["train"]["key_max"] == 1_999


def test_a_replayed_validation_reports_the_last_models_loss_on_every_holdout_row(trained):
    # The holdout is read once, so epochs 1 and 2 validate on the batches each worker kept
    # from epoch 0 (trainers/replay.py): the last report's valid/loss must still be the loss
    # of that epoch's weights on all the holdout rows, recomputed here from its checkpoint.
    store, result = trained
    frame = store.table("points").to_arrow().to_pandas()
    held = frame[holdout_mask(frame["id"].to_numpy(), 0.05, seed=0)]
    assert 60 < len(held) < 140  # ~5% of 2,000
    model = store.models.load("lin", handle="epoch_2")
    loss = float(np.mean((model.predict(held) - held["y"].to_numpy()) ** 2))
    assert result.metrics["epoch"] == 2
    assert result.metrics["valid/loss"] == pytest.approx(loss, rel=1e-5)


def test_validation_uses_the_valid_query_and_two_workers_split_the_training_rows(store):
    train = store.sql("SELECT * FROM points WHERE id % 5 <> 0", key="id")
    valid = store.sql("SELECT * FROM points WHERE id % 5 = 0", key="id")
    result = _linear(epochs=1).fit(train=train, valid=valid)
    assert result.metrics["valid/loss"] < 4.0  # the label's variance is ~16
    assert "id % 5 = 0" in store.models.get("lin").lineage["valid"]["sql"]
    # 1,600 training rows, two workers with equal shards of 800, batches of 32: 25 steps
    # each, taken together (one run checks both; each Ray Train start costs ~10-15 s).
    assert result.metrics["step"] == 25


def test_training_stops_early_when_the_listened_metric_stops_improving(store):
    trainer = _linear(
        optimizer_cls="SGD",
        optimizer_kwargs={"lr": 0.0},  # never improves after the first validation
        epochs=50,
        validation_interval=5,
        no_improve_then_stop=2,
        scaling_config=ScalingConfig(num_workers=1),
    )
    result = trainer.fit(train=store.table("points"), register=False)
    assert result.metrics["step"] == 15  # validations at 5 (best), 10 and 15 (no better)
    assert result.version is None  # register=False


# Resuming from the registry continues weights, optimizer moments, scheduler and step bit for
# bit, registered as version 2 with version 1 as its parent: test_torch_loop_features.py's
# resume test (it shares its uninterrupted run with three other tests; the three fits this
# file once made for the same check cost three Ray Train starts).


def test_resume_is_refused_when_the_weights_do_not_fit_the_model(trained):
    store, _ = trained  # "lin" version 1: a Linear(4, 1)
    bigger = _linear(model=torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)))
    with pytest.raises(pr.IncompatibleCheckpoint):
        bigger.fit(train=store.table("points"), resume_from="lin")
    assert [v.version for v in store.models.list("lin")] == [1]  # nothing registered


def test_resume_is_refused_when_the_model_is_not_registered(store):
    with pytest.raises(pr.ModelNotFound, match="nope"):
        _linear().fit(train=store.table("points"), resume_from="nope")


class DiesOnce(torch.nn.Module):
    """A linear model whose forward kills its worker process once, at a given call."""

    def __init__(self, marker: str, at_call: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.marker, self.at_call, self.calls = marker, at_call, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at_call and self.training and not os.path.exists(self.marker):
            # Ray Train's controller collects reports every 2 s: work on (no collectives) for
            # 3 s so the last checkpoint is in, then die hard.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                torch.randn(128, 128) @ torch.randn(128, 128)
            open(self.marker, "w").close()
            os._exit(1)
        return self.linear(x)


def test_a_worker_killed_mid_run_resumes_from_the_latest_checkpoint_and_registers_once(
    store, tmp_path
):
    marker = str(tmp_path / "died")
    trainer = _linear(
        model=DiesOnce(marker, at_call=40),
        epochs=2,
        validation_interval=16,
        listen="train/loss",
        run_config=RunConfig(
            storage_path=str(tmp_path / "runs"), failure_config=FailureConfig(max_failures=1)
        ),
    )
    result = trainer.fit(train=store.table("points"), register=True)
    assert os.path.exists(marker)
    # Died at step 40 of 64, after the epoch-0 checkpoint (step 32): resumed there.
    assert result.metrics["step"] == 64
    steps = [m["step"] for _, m in result.ray_result.best_checkpoints]
    assert len(steps) == len(set(steps)), steps  # no step reported twice: no restart from 0
    assert [v.version for v in store.models.list("lin")] == [1]


# -- bad input: refused before the run, with the column and what to do ------------------------


def test_an_unknown_feature_is_refused_before_training(store):
    with pytest.raises(pr.ColumnNotFound, match="x9"):
        _linear(features=["x0", "x9"]).fit(train=store.table("points"))


def test_a_non_numeric_feature_is_refused_with_its_type(tmp_path):
    s = pr.connect(tmp_path / "text.db")
    s.write("rows", [{"id": i, "x0": f"v{i}", "y": float(i)} for i in range(20)], key="id")
    trainer = _linear(features=["x0"], model=torch.nn.Linear(1, 1))
    with pytest.raises(pr.NonNumericFeature, match=r"'x0'.*string"):
        trainer.fit(train=s.table("rows"))


def test_nan_in_the_label_is_reported_with_the_column_and_row_count(tmp_path):
    s = pr.connect(tmp_path / "nan.db")
    data = _points(400)
    data["y"][[3, 50, 200]] = np.nan
    s.write("points", pa.table(data), key="id")
    with pytest.raises(pr.NonFiniteValues, match=r"'y': 3 row\(s\)"):
        _linear(listen="train/loss").fit(train=s.table("points"))


def test_an_empty_training_query_is_refused(store):
    with pytest.raises(pr.EmptyResult):
        _linear().fit(train=store.table("points", where={"id": -1}))


def test_a_listen_metric_the_loop_never_reports_is_refused_up_front():
    with pytest.raises(pr.MetricNotReported, match="valid/f1"):
        _linear(listen="valid/f1")


def test_an_unknown_objective_or_optimizer_is_refused_up_front():
    with pytest.raises(pr.ConfigError, match="objective"):
        _linear(objective="hinge-ish")
    with pytest.raises(pr.ConfigError, match="optimizer_cls"):
        _linear(optimizer_cls="Adamm")
