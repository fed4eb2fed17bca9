"""MLflow interop: fits and sweeps logged to a real MLflow tracking store (``sqlite:///`` in
tmp_path), read back with ``mlflow.MlflowClient``; the registered version records the run.

One managed torch fit and one scikit-learn sweep are shared by the tests that read them.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest
import torch
from mlflow import MlflowClient
from ray import tune
from ray.train import ScalingConfig
from sklearn.linear_model import Ridge

import pinnacle_ray as pr

FEATURES = ["x0", "x1", "x2"]
pytestmark = pytest.mark.timeout(600)


def _points(n: int = 400) -> pa.Table:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.05 * rng.normal(size=n)
    return pa.table({"id": np.arange(n)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = pr.connect(tmp_path_factory.mktemp("mlflow") / "shop.db")
    s.write("points", _points(), key="id")
    yield s
    s.close()


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def torch_fit(store, tracking_uri):
    torch.manual_seed(0)
    trainer = pr.TorchTrainer(
        model=torch.nn.Linear(3, 1),
        features=FEATURES,
        label="y",
        optimizer_kwargs={"lr": 0.05},
        batch_size=64,
        epochs=2,
        validation_interval=2,
        scaling_config=ScalingConfig(num_workers=1),
        name="tracked-mlp",
        callbacks=[pr.MLflowCallback(tracking_uri, experiment="pinnacle-tests")],
    )
    return trainer.fit(train=store.table("points", key="id"))


@pytest.fixture(scope="module")
def sklearn_sweep(store, tracking_uri):
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y", name="tracked-ridge")
    return pr.sweep(
        trainer,
        {"estimator__alpha": tune.grid_search([0.01, 10.0])},
        train=store.table("points", key="id"),
        metric="valid/rmse",
        mode="min",
        name="ridge-sweep",
        callbacks=[pr.MLflowCallback(tracking_uri, experiment="pinnacle-sweeps")],
    )


def test_a_fit_logs_params_every_report_and_tags_the_registered_version(
    torch_fit, store, tracking_uri
):
    client = MlflowClient(tracking_uri)
    version = store.models.get("tracked-mlp", version=torch_fit.version)
    run_id = version.lineage["tracking"]["mlflow_run_id"]
    run = client.get_run(run_id)

    assert client.get_experiment(run.info.experiment_id).name == "pinnacle-tests"
    assert run.info.status == "FINISHED"
    assert run.data.tags["pinnacle.model"] == "tracked-mlp"
    assert run.data.tags["pinnacle.version"] == str(torch_fit.version)
    assert run.data.params["settings.batch_size"] == "64"
    # Every report of the run, each at its step, as the version's history has them.
    history = store.models.metrics("tracked-mlp", version=torch_fit.version)
    logged = client.get_metric_history(run_id, "train/loss")
    assert [m.step for m in logged] == list(history["step"])
    assert [m.value for m in logged] == pytest.approx(list(history["train/loss"]))
    valid = history.dropna(subset=["valid/loss"])
    logged_valid = client.get_metric_history(run_id, "valid/loss")
    assert [m.step for m in logged_valid] == list(valid["step"])
    assert len(history) == len(torch_fit.reports) > 2


def test_the_model_card_names_the_mlflow_run(torch_fit, store):
    card = store.models.card("tracked-mlp", version=torch_fit.version)
    assert (
        card["tracking"]["mlflow_run_id"]
        == (
            store.models.get("tracked-mlp", version=torch_fit.version).lineage["tracking"][
                "mlflow_run_id"
            ]
        )
    )


def test_tracking_mlflow_uses_mlflow_tracking_uri_when_set(store, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    trainer = pr.SklearnTrainer(
        Ridge(), features=FEATURES, label="y", name="env-ridge", tracking="mlflow"
    )
    result = trainer.fit(train=store.table("points", key="id"))

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("env-ridge")  # the model's name by default
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["pinnacle.version"] == str(result.version)
    assert run.data.metrics["valid/rmse"] == pytest.approx(result.metrics["valid/rmse"])
    assert run.data.params["estimator"].endswith("Ridge")
    assert store.models.get("env-ridge").lineage["tracking"]["mlflow_run_id"] == run.info.run_id


def test_a_sweep_logs_a_parent_run_and_one_child_per_trial(sklearn_sweep, store, tracking_uri):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("pinnacle-sweeps")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.params["estimator__alpha"] for c in children) == ["0.01", "10.0"]

    (best,) = [c for c in children if c.data.tags["pinnacle.best"] == "true"]
    assert best.data.tags["pinnacle.trial_id"] == sklearn_sweep.trial_id
    assert best.data.tags["pinnacle.version"] == str(sklearn_sweep.version)
    version = store.models.get("tracked-ridge", version=sklearn_sweep.version)
    assert version.lineage["tracking"]["mlflow_run_id"] == best.info.run_id
    assert best.data.metrics["valid/rmse"] == pytest.approx(sklearn_sweep.metrics["valid/rmse"])


def test_a_sweep_keeps_each_trials_history(sklearn_sweep, store):
    frame = store.models.trial_metrics("ridge-sweep")
    assert sorted(frame["trial_id"]) == sorted(t.trial_id for t in sklearn_sweep.trials)
    for trial in sklearn_sweep.trials:
        rows = frame[frame.trial_id == trial.trial_id]
        assert rows["valid/rmse"].iloc[-1] == pytest.approx(trial.metrics["valid/rmse"])


def test_a_missing_mlflow_is_refused_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    with pytest.raises(pr.ConfigError, match=r'pip install "pinnacle-ray\[mlflow\]"'):
        pr.SklearnTrainer(Ridge(), features=FEATURES, label="y", tracking="mlflow")


def test_an_unknown_tracker_or_callback_is_refused_before_anything_runs():
    with pytest.raises(pr.ConfigError, match=r"tracking='wandb' is not a known tracker"):
        pr.SklearnTrainer(Ridge(), features=FEATURES, label="y", tracking="wandb")
    with pytest.raises(pr.ConfigError, match=r"callbacks takes pr.MLflowCallback"):
        pr.SklearnTrainer(Ridge(), features=FEATURES, label="y", callbacks=[object()])
    with pytest.raises(pr.ConfigError, match=r"tracking_uri=\.\.\.\) must be a URI string"):
        pr.MLflowCallback(tracking_uri=5)  # type: ignore[arg-type]


def test_huggingface_report_to_is_passed_through_to_training_arguments(tmp_path):
    from pinnacle_ray.trainers.huggingface import _check_training_args
    from pinnacle_ray.trainers.huggingface_loop import HFSpec, _training_args

    def spec(args):
        return HFSpec(
            model="m", task="classification", labels=[0, 1], training_args=args, max_steps=2,
            steps_per_epoch=1, eval_steps=1, has_valid=False, pad_token_id=0, listen=None,
        )  # fmt: skip

    chosen = _check_training_args({"report_to": ["mlflow"]})  # no longer refused
    assert _training_args(spec(chosen), str(tmp_path)).report_to == ["mlflow"]
    assert _training_args(spec({}), str(tmp_path)).report_to == []  # "none" by default
