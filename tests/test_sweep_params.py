"""Sweep parameter paths and sweep settings are checked before any trial starts (no Ray run)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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


def test_double_underscore_paths_reach_dict_arguments_by_key():
    torch_trainer = with_params(
        _mlp_trainer(optimizer_kwargs={"lr": 0.1}), {"optimizer_kwargs__lr": 0.5}
    )
    assert torch_trainer.settings.optimizer_kwargs == {"lr": 0.5}
    xgb = pr.XGBoostTrainer(params={"eta": 0.3}, features=FEATURES, label="y")
    assert with_params(xgb, {"params__max_depth": 3}).params == {"eta": 0.3, "max_depth": 3}
    assert xgb.params == {"eta": 0.3}
    loop = pr.TorchTrainer(lambda config: None, train_loop_config={"lr": 1})
    assert with_params(loop, {"train_loop_config__lr": 2}).train_loop_config == {"lr": 2}


@dataclass(frozen=True)
class _Schedule:
    warmup: int = 0
    decay: float = 0.5


def test_double_underscore_paths_reach_dataclass_fields_inside_dicts():
    loop = pr.TorchTrainer(lambda config: None, train_loop_config={"schedule": _Schedule()})
    swept = with_params(loop, {"train_loop_config__schedule__decay": 0.9})
    assert swept.train_loop_config["schedule"] == _Schedule(warmup=0, decay=0.9)
    assert loop.train_loop_config["schedule"] == _Schedule()


def test_unknown_dataclass_field_is_refused_with_a_suggestion():
    loop = pr.TorchTrainer(lambda config: None, train_loop_config={"schedule": _Schedule()})
    with pytest.raises(
        pr.ConfigError,
        match=r"^param_space path 'train_loop_config__schedule__decy': "
        r"train_loop_config__schedule \(_Schedule\) has no field 'decy'; did you mean 'decay'\?; "
        r"its fields are \['warmup', 'decay'\]$",
    ):
        check_space(loop, {"train_loop_config__schedule__decy": tune.uniform(0, 1)})


def test_a_nested_dict_in_the_space_is_the_same_path_as_double_underscores():
    xgb = pr.XGBoostTrainer(params={"eta": 0.3}, features=FEATURES, label="y")
    nested = flatten_space({"params": {"max_depth": 4}})
    assert nested == {"params__max_depth": 4}
    assert with_params(xgb, nested).params == with_params(xgb, {"params__max_depth": 4}).params


def test_dotted_paths_still_route_the_same_way_with_a_future_warning_naming_the_new_spelling():
    space = {"optimizer_kwargs.lr": tune.loguniform(1e-4, 1e-1), "params.max_depth": 3}
    with pytest.warns(FutureWarning) as caught:
        flat = flatten_space(space)
    assert len(caught) == 1  # one warning for the whole space, naming every new spelling
    message = str(caught[0].message)
    assert "'optimizer_kwargs.lr' -> use 'optimizer_kwargs__lr'" in message
    assert "'params.max_depth' -> use 'params__max_depth'" in message
    assert list(flat) == ["optimizer_kwargs.lr", "params.max_depth"]  # kept as the user wrote
    old = with_params(_mlp_trainer(optimizer_kwargs={"lr": 0.1}), {"optimizer_kwargs.lr": 0.5})
    new = with_params(_mlp_trainer(optimizer_kwargs={"lr": 0.1}), {"optimizer_kwargs__lr": 0.5})
    assert old.settings.optimizer_kwargs == new.settings.optimizer_kwargs == {"lr": 0.5}
    loop = pr.TorchTrainer(lambda config: None, train_loop_config={"lr": 1})
    assert with_params(loop, {"train_loop_config.lr": 2}).train_loop_config == {"lr": 2}


def test_sweep_warns_once_about_dotted_paths_before_checking_them():
    """The warning points at the caller of ``pr.sweep`` (this file), once per call."""
    space = {"optimizer_kwargs.lr": tune.loguniform(1e-4, 1e-1), "optimizer_kwargs.lrr": 1.0}
    with (
        pytest.warns(FutureWarning, match="'optimizer_kwargs.lrr' -> use") as caught,
        pytest.raises(pr.ConfigError, match=r"\['lrr'\] are not arguments of Adam"),
    ):
        pr.sweep(_mlp_trainer(), space, train=None, metric="valid/loss")
    assert len([w for w in caught if w.category is FutureWarning]) == 1
    assert caught[0].filename == __file__


def test_no_warning_for_double_underscore_paths_or_nested_dicts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flatten_space({"optimizer_kwargs__lr": 0.1, "params": {"eta": tune.uniform(0, 1)}})


def test_nested_param_space_flattens_to_paths_and_keeps_grid_searches_whole():
    space = {"params": {"max_depth": tune.grid_search([2, 4]), "eta": tune.uniform(0, 1)}}
    flat = flatten_space(space)
    assert set(flat) == {"params__max_depth", "params__eta"}
    assert flat["params__max_depth"] == {"grid_search": [2, 4]}


def test_unknown_argument_path_is_refused_naming_the_path_and_the_trainer_arguments():
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y")
    with pytest.raises(
        pr.ConfigError,
        match=r"^param_space path 'estimatr__alpha': SklearnTrainer has no parameter 'estimatr'; "
        r"did you mean 'estimator'\?; its parameters are \['estimator', ",
    ):
        check_space(trainer, {"estimatr__alpha": tune.uniform(0, 1)})


def test_unknown_estimator_parameter_is_refused_naming_the_known_ones():
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y")
    with pytest.raises(
        pr.ConfigError,
        match=r"^param_space path 'estimator__alfa': Ridge has no parameter 'alfa'; "
        r"did you mean 'alpha'\?; its parameters are \[",
    ):
        check_space(trainer, {"estimator__alfa": tune.uniform(0, 1)})


def test_a_path_into_a_value_that_has_no_parameters_is_refused_naming_what_it_is():
    with pytest.raises(pr.ConfigError, match=r"'batch_size__x': batch_size is a int"):
        check_space(_mlp_trainer(), {"batch_size__x": 1})


def test_unknown_optimizer_argument_is_refused_before_any_worker_starts():
    with pytest.raises(pr.ConfigError, match=r"\['lrr'\] are not arguments of Adam"):
        check_space(_mlp_trainer(), {"optimizer_kwargs__lrr": tune.loguniform(1e-4, 1e-1)})


def test_sampled_value_the_trainer_refuses_is_reported_with_the_trial_values():
    with pytest.raises(pr.ConfigError, match=r"batch_size must be a positive integer"):
        check_space(_mlp_trainer(), {"batch_size": tune.choice([0])})


def test_scaling_config_cannot_be_swept():
    trainer = _mlp_trainer(scaling_config=ScalingConfig(num_workers=1))
    with pytest.raises(pr.ConfigError, match="scaling_config cannot be swept"):
        check_space(trainer, {"scaling_config__num_workers": tune.choice([1, 2])})


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
