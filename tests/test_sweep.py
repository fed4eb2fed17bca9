"""pr.sweep: Ray Tune sweeps of the trainers on a datastore query, best trial registered."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from ray import tune
from ray.train import ScalingConfig
from ray.tune.schedulers import ASHAScheduler
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tabular_data import diabetes

import pinnacle_ray as pr

ALPHAS = [0.01, 100.0, 1000.0]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "sweep.db"
    store = pr.connect(path)
    features = diabetes(store, "diabetes")
    yield path, store, features
    store.close()


def _queries(store):
    return (
        store.table("diabetes", where={"split": "train"}),
        store.table("diabetes", where={"split": "valid"}),
    )


def _ridge(features) -> pr.SklearnTrainer:
    return pr.SklearnTrainer(
        make_pipeline(StandardScaler(), Ridge()), features=features, label="target", name="ridge"
    )


@pytest.fixture(scope="module")
def ridge_sweep(db):
    _, store, features = db
    train, valid = _queries(store)
    return pr.sweep(
        _ridge(features),
        {"estimator__ridge__alpha": tune.grid_search(ALPHAS)},
        train=train,
        valid=valid,
        metric="valid/rmse",
        mode="min",
        name="ridge-alpha",
    )


def test_best_trial_is_registered_with_its_params_sweep_name_and_trial_id(db, ridge_sweep):
    _, store, _ = db
    scores = {t.params["estimator__ridge__alpha"]: t.score for t in ridge_sweep.trials}
    best_alpha = min(scores, key=scores.get)

    version = store.models.get("ridge", version=ridge_sweep.version)

    assert ridge_sweep.params == {"estimator__ridge__alpha": best_alpha}
    assert version.config["params"]["ridge__alpha"] == best_alpha
    assert version.config["sweep"]["name"] == "ridge-alpha"
    assert version.config["sweep"]["trial_id"] == ridge_sweep.trial_id
    assert version.metrics["valid/rmse"] == pytest.approx(scores[best_alpha])
    assert version.lineage["train"]["table"] == "diabetes"


def test_every_trial_is_kept_in_the_datastore_without_rays_result_folder(db, ridge_sweep):
    path, _, _ = db
    # Registered: the sweep removed Tune's folder (and its trials' runs) itself.
    assert not Path(ridge_sweep.grid.experiment_path).exists()
    fresh = pr.connect(path)
    trials = fresh.models.sweeps("ridge-alpha")
    fresh.close()

    assert sorted(t.params["estimator__ridge__alpha"] for t in trials) == ALPHAS
    assert {t.status for t in trials} == {"completed"}
    assert [t.best for t in trials] == [True, False, False]
    assert trials[0].version == ridge_sweep.version and trials[1].version is None
    assert trials[0].score <= trials[1].score <= trials[2].score


def test_result_gives_tunes_result_grid(ridge_sweep):
    grid = ridge_sweep.grid
    assert len(grid) == 3 and not grid.errors
    assert grid.get_best_result(metric="valid/rmse", mode="min").config == ridge_sweep.params


def test_two_sklearn_trials_run_side_by_side_on_two_cpus(ridge_sweep):
    assert ridge_sweep.plan.concurrent == 2 and ridge_sweep.plan.trials == 3


def test_sweep_name_already_recorded_is_refused_before_trials_start(db, ridge_sweep):
    _, store, features = db
    with pytest.raises(pr.ConfigError, match="'ridge-alpha' is already recorded"):
        pr.sweep(
            _ridge(features),
            {"estimator__ridge__alpha": tune.uniform(0, 1)},
            train=_queries(store)[0],
            metric="valid/rmse",
            name="ridge-alpha",
        )


def test_metric_never_reported_is_refused_before_trials_start(db):
    _, store, features = db
    with pytest.raises(pr.MetricNotReported, match=r"'valid/loss' is never reported.*valid/rmse"):
        pr.sweep(
            _ridge(features),
            {"estimator__ridge__alpha": tune.uniform(0, 1)},
            train=_queries(store)[0],
            metric="valid/loss",
        )


def test_invalid_mode_is_refused_before_trials_start(db):
    _, store, features = db
    with pytest.raises(pr.ConfigError, match="mode must be 'min' or 'max', got 'lowest'"):
        pr.sweep(
            _ridge(features),
            {"estimator__ridge__alpha": tune.uniform(0, 1)},
            train=_queries(store)[0],
            metric="valid/rmse",
            mode="lowest",
        )


@pytest.mark.parametrize("backend", ["mongo"], indirect=True)
def test_trials_are_kept_and_the_best_registered_when_the_datastore_is_mongodb(store, tables):
    collection, name = tables("diabetes"), f"{tables.prefix}-ridge"
    features = diabetes(store, collection)
    result = pr.sweep(
        pr.SklearnTrainer(Ridge(), features=features, label="target", name=name),
        {"estimator__alpha": tune.grid_search([0.01, 1000.0])},
        train=store.table(collection, where={"split": "train"}),
        valid=store.table(collection, where={"split": "valid"}),
        metric="valid/rmse",
        name=name,
    )

    trials = store.models.sweeps(name)
    assert sorted(t.params["estimator__alpha"] for t in trials) == [0.01, 1000.0]
    assert [t.best for t in trials] == [True, False] and trials[0].version == result.version
    version = store.models.get(name, version=result.version)
    assert version.config["sweep"]["trial_id"] == result.trial_id
    assert version.lineage["train"]["collection"] == collection


@pytest.mark.timeout(900)  # two Ray Train runs of two workers, one after the other
def test_asha_stops_bad_torch_trials_early_when_two_workers_fill_two_cpus(db):
    _, store, features = db
    train, valid = _queries(store)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    trainer = pr.TorchTrainer(
        model=mlp,
        features=features,
        label="target",
        batch_size=32,
        epochs=4,
        scaling_config=ScalingConfig(num_workers=2),
        name="mlp",
    )

    result = pr.sweep(
        trainer,
        # ASHA compares the second trial at its first rung with the first trial's result
        # there (recorded before it): one trial that barely learns is enough to be stopped.
        {"optimizer_kwargs__lr": tune.grid_search([0.05, 1e-7])},
        train=train,
        valid=valid,
        metric="valid/loss",
        mode="min",
        scheduler=ASHAScheduler(grace_period=1, reduction_factor=2),
        name="mlp-lr",
    )

    assert result.plan.concurrent == 1  # 2 workers + reads take both CPUs: trials queue
    best, *bad = result.trials
    assert best.params == {"optimizer_kwargs__lr": 0.05} and best.status == "completed"
    assert store.models.get("mlp", version=result.version).config["sweep"]["name"] == "mlp-lr"
    assert {t.status for t in bad} == {"stopped"}
    # every Ray Train report reached Tune: the full trial saw 4 epochs, the others fewer
    assert best.metrics["training_iteration"] == 5  # 4 epoch reports + the final one
    assert all(t.metrics["training_iteration"] < 4 for t in bad)


def _loss_loop(config):  # plain Ray Train code: the loss is the swept value itself
    model = torch.nn.Linear(1, 1)
    for epoch in range(2):
        pr.report({"epoch": epoch, "loss": config["lr"] * (2 - epoch)}, model=model)


def test_ray_style_loop_sweeps_its_train_loop_config_given_as_a_nested_dict(db):
    # Ray Tune's nested form is the path train_loop_config__lr. (The dotted path of earlier
    # releases routes the same way with one FutureWarning: test_sweep_params, no Ray run.)
    _, store, _ = db
    trainer = pr.TorchTrainer(_loss_loop, train_loop_config={"lr": 1.0}, name="loop")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FutureWarning)
        result = pr.sweep(
            trainer,
            {"train_loop_config": {"lr": tune.grid_search([0.3, 0.1])}},
            train=_queries(store)[0],
            metric="loss",
            mode="min",
            name="loop-lr",
        )

    assert [w for w in caught if w.category is FutureWarning] == []
    assert result.params == {"train_loop_config__lr": 0.1}
    assert result.metrics["loss"] == pytest.approx(0.1)
    assert store.models.get("loop", version=result.version).config["train_loop_config"] == {
        "lr": 0.1
    }


def test_xgboost_sweeps_its_params_by_path(db):
    _, store, features = db
    trainer = pr.XGBoostTrainer(features=features, label="target", num_boost_round=5, name="xgb")

    result = pr.sweep(
        trainer,
        {"params__max_depth": tune.grid_search([1, 3])},
        train=_queries(store)[0],
        metric="valid/rmse",
        mode="min",
        name="xgb-depth",
    )

    trials = store.models.sweeps("xgb-depth")
    assert {t.params["params__max_depth"] for t in trials} == {1, 3}
    best = min(trials, key=lambda t: t.score)
    assert result.params == best.params and best.version == result.version
    assert (
        store.models.get("xgb", version=result.version).config["params"]["max_depth"]
        == (best.params["params__max_depth"])
    )
