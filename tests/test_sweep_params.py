"""Sweep parameter paths and sweep settings are checked before any trial starts (no Ray run)."""

from __future__ import annotations

import pytest
import torch
from ray import tune
from ray.train import ScalingConfig
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pinnacle_ray as pr
from pinnacle_ray.trainers.resources import ClusterResources, plan_trials
from pinnacle_ray.tune.params import check_space, flatten_space, with_params

FEATURES = ["a", "b"]


def _mlp_trainer(**kw) -> pr.TorchTrainer:
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    return pr.TorchTrainer(model=model, features=FEATURES, label="y", name="mlp", **kw)


def test_pipeline_step_parameter_is_set_by_double_underscore_path_without_touching_the_original():
    trainer = pr.SklearnTrainer(
        make_pipeline(StandardScaler(), Ridge(alpha=1.0)), features=FEATURES, label="y"
    )
    swept = with_params(trainer, {"estimator__ridge__alpha": 3.0})
    assert swept.estimator.get_params()["ridge__alpha"] == 3.0
    assert trainer.estimator.get_params()["ridge__alpha"] == 1.0


def test_dict_argument_paths_reach_optimizer_kwargs_and_xgboost_params():
    torch_trainer = with_params(
        _mlp_trainer(optimizer_kwargs={"lr": 0.1}), {"optimizer_kwargs.lr": 0.5}
    )
    assert torch_trainer.settings.optimizer_kwargs == {"lr": 0.5}
    xgb = pr.XGBoostTrainer(params={"eta": 0.3}, features=FEATURES, label="y")
    assert with_params(xgb, {"params.max_depth": 3}).params["max_depth"] == 3
    loop = pr.TorchTrainer(lambda config: None, train_loop_config={"lr": 1})
    assert with_params(loop, {"train_loop_config.lr": 2}).train_loop_config == {"lr": 2}


def test_nested_param_space_flattens_to_paths_and_keeps_grid_searches_whole():
    space = {"params": {"max_depth": tune.grid_search([2, 4]), "eta": tune.uniform(0, 1)}}
    flat = flatten_space(space)
    assert set(flat) == {"params.max_depth", "params.eta"}
    assert flat["params.max_depth"] == {"grid_search": [2, 4]}


def test_unknown_argument_path_is_refused_naming_the_trainer_arguments():
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y")
    with pytest.raises(pr.ConfigError, match=r"no argument 'estimatr'.*'estimator'"):
        check_space(trainer, {"estimatr__alpha": tune.uniform(0, 1)})


def test_unknown_estimator_parameter_is_refused_naming_the_known_ones():
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y")
    with pytest.raises(pr.ConfigError, match=r"no parameter 'alfa'.*'alpha'"):
        check_space(trainer, {"estimator__alfa": tune.uniform(0, 1)})


def test_unknown_optimizer_argument_is_refused_before_any_worker_starts():
    with pytest.raises(pr.ConfigError, match=r"\['lrr'\] are not arguments of Adam"):
        check_space(_mlp_trainer(), {"optimizer_kwargs.lrr": tune.loguniform(1e-4, 1e-1)})


def test_sampled_value_the_trainer_refuses_is_reported_with_the_trial_values():
    with pytest.raises(pr.ConfigError, match=r"batch_size must be a positive integer"):
        check_space(_mlp_trainer(), {"batch_size": tune.choice([0])})


def test_scaling_config_cannot_be_swept():
    trainer = _mlp_trainer(scaling_config=ScalingConfig(num_workers=1))
    with pytest.raises(pr.ConfigError, match="scaling_config cannot be swept"):
        check_space(trainer, {"scaling_config.num_workers": tune.choice([1, 2])})


def test_eight_trials_of_two_cpus_on_two_cpus_run_one_at_a_time():
    plan = plan_trials(2.0, 0.0, ClusterResources(cpus=2), trials=8)
    assert plan.concurrent == 1 and "1 at a time (the others queue)" in str(plan)


def test_trials_run_side_by_side_as_far_as_the_cluster_and_the_cap_allow():
    assert plan_trials(1.0, 0.0, ClusterResources(cpus=8), trials=8).concurrent == 8
    assert (
        plan_trials(1.0, 0.0, ClusterResources(cpus=8), trials=8, max_concurrent=3).concurrent == 3
    )
    assert plan_trials(1.0, 1.0, ClusterResources(cpus=8, gpus=2), trials=8).concurrent == 2


def test_a_trial_larger_than_the_cluster_is_refused_with_both_numbers():
    with pytest.raises(pr.ResourceError, match=r"needs 4 CPU.*has 2"):
        plan_trials(4.0, 0.0, ClusterResources(cpus=2), trials=2)
