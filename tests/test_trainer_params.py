"""Trainers follow scikit-learn's estimator rules: ``get_params`` hands back the constructor's
arguments as given, ``type(t)(**t.get_params())`` builds the same configuration, and
``set_params`` checks a new value exactly as the constructor does (no Ray: nothing fits)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from ray.train import ScalingConfig
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from text_data import tiny_bert

import pinnacle_ray as pr
from pinnacle_ray.trainers import Trainer
from pinnacle_ray.tune.params import with_params

pytestmark = pytest.mark.unit

FEATURES = ["a", "b"]


def _loop(config):
    return None


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return str(tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert"))


def _given(bert: str) -> dict[str, tuple[type, dict]]:
    """Per trainer, constructor arguments that a rewriting ``__init__`` would change."""
    return {
        "sklearn": (
            pr.SklearnTrainer,
            {
                "estimator": make_pipeline(StandardScaler(), Ridge(alpha=2.0)),
                "features": ("a", "b"),  # a tuple stays a tuple
                "label": "y",
                "fit_kwargs": None,
                "num_cpus": 1,
            },
        ),
        "xgboost": (
            pr.XGBoostTrainer,
            {"params": {"eta": 0.3}, "features": FEATURES, "label": "y", "num_boost_round": 5},
        ),
        "torch-managed": (
            pr.TorchTrainer,
            {
                "model": torch.nn.Linear(2, 1),
                "features": FEATURES,
                "label": "y",
                "optimizer_kwargs": {"lr": 0.1},
                "listen": None,
                "scaling_config": None,
            },
        ),
        "torch-loop": (
            pr.TorchTrainer,
            {"train_loop_per_worker": _loop, "train_loop_config": None, "name": "loop"},
        ),
        "huggingface": (
            pr.HuggingFaceTrainer,
            {"model": bert, "text_column": "text", "label": "stars", "max_length": None},
        ),
    }


KINDS = ["sklearn", "xgboost", "torch-managed", "torch-loop", "huggingface"]


def _build(bert: str, kind: str) -> tuple[pr.TorchTrainer, dict]:
    cls, kwargs = _given(bert)[kind]
    return cls(**kwargs), kwargs


@pytest.mark.parametrize("kind", KINDS)
def test_get_params_returns_each_constructor_argument_as_given_when_built(bert, kind):
    trainer, kwargs = _build(bert, kind)
    params = trainer.get_params()
    for name, value in kwargs.items():
        assert params[name] is value, name
    assert isinstance(trainer, Trainer)


@pytest.mark.parametrize("kind", KINDS)
def test_a_trainer_built_from_get_params_has_the_same_configuration(bert, kind):
    trainer, _ = _build(bert, kind)
    again = type(trainer)(**trainer.get_params())
    assert again.get_params() == trainer.get_params()
    assert again.name == trainer.name
    assert again.scaling == trainer.scaling
    if isinstance(trainer, pr.TorchTrainer):
        assert again.settings == trainer.settings  # the managed loop's, None for a loop
    if isinstance(trainer, pr.HuggingFaceTrainer):
        assert again.setup.model_path == trainer.setup.model_path
        assert again.setup.max_length == trainer.setup.max_length
    copy = trainer.clone()
    assert copy is not trainer and copy.get_params() == trainer.get_params()


@pytest.mark.parametrize("kind", KINDS)
def test_a_pickled_trainer_keeps_its_configuration_as_a_job_or_a_trial_receives_it(bert, kind):
    from ray import cloudpickle

    trainer, _ = _build(bert, kind)
    again = cloudpickle.loads(cloudpickle.dumps(trainer))
    assert repr(again) == repr(trainer)
    assert again.name == trainer.name and again.scaling == trainer.scaling
    if isinstance(trainer, pr.TorchTrainer):  # listen's default stays the default
        assert again._listen_mode == trainer._listen_mode
        assert again.settings == trainer.settings


def test_get_params_lists_every_constructor_argument_with_its_default():
    trainer = pr.XGBoostTrainer(features=FEATURES, label="y")
    params = trainer.get_params()
    assert params["params"] is None and params["name"] is None and params["scaling_config"] is None
    assert params["num_boost_round"] == 10
    assert trainer.name == "xgboost"  # the model name runs register under


def test_get_params_deep_adds_the_nested_estimator_parameters():
    trainer = pr.SklearnTrainer(
        make_pipeline(StandardScaler(), Ridge()), features=FEATURES, label="y"
    )
    assert trainer.get_params(deep=True)["estimator__ridge__alpha"] == 1.0
    assert "estimator__ridge__alpha" not in trainer.get_params()


def test_set_params_returns_the_trainer_with_the_new_values():
    trainer = pr.XGBoostTrainer(params={"eta": 0.3}, features=FEATURES, label="y")
    assert trainer.set_params(num_boost_round=7, name="boosted") is trainer
    assert trainer.get_params()["num_boost_round"] == 7
    assert trainer.name == "boosted"


def test_set_params_routes_nested_names_into_dicts_and_estimators_on_copies():
    estimator = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    trainer = pr.SklearnTrainer(estimator, features=FEATURES, label="y")
    trainer.set_params(estimator__ridge__alpha=3.0)
    assert trainer.get_params()["estimator"].get_params()["ridge__alpha"] == 3.0
    assert estimator.get_params()["ridge__alpha"] == 1.0  # the user's object is untouched
    kwargs = {"lr": 0.1}
    mlp = pr.TorchTrainer(
        model=torch.nn.Linear(2, 1), features=FEATURES, label="y", optimizer_kwargs=kwargs
    )
    mlp.set_params(optimizer_kwargs__lr=0.5)
    assert mlp.get_params()["optimizer_kwargs"] == {"lr": 0.5}
    assert kwargs == {"lr": 0.1}


@dataclass(frozen=True)
class _Schedule:
    warmup: int = 0
    decay: float = 0.5


def test_set_params_and_a_sweep_route_a_path_through_one_router_into_dataclass_fields():
    schedule = _Schedule()
    loop = pr.TorchTrainer(_loop, train_loop_config={"schedule": schedule})
    swept = with_params(loop, {"train_loop_config__schedule__decay": 0.9})
    loop.set_params(train_loop_config__schedule__decay=0.9)
    assert loop.train_loop_config["schedule"] == _Schedule(decay=0.9)
    assert swept.train_loop_config == loop.train_loop_config
    assert schedule == _Schedule()  # the user's dataclass is untouched
    with pytest.raises(pr.ConfigError) as by_set:
        loop.set_params(train_loop_config__schedule__decy=0.1)
    with pytest.raises(pr.ConfigError) as by_sweep:
        with_params(loop, {"train_loop_config__schedule__decy": 0.1})
    # The same message, the sweep's naming where the path came from.
    assert str(by_sweep.value) == f"param_space path {by_set.value}"
    assert str(by_set.value) == (
        "'train_loop_config__schedule__decy': train_loop_config__schedule (_Schedule) has no "
        "field 'decy'; did you mean 'decay'?; its fields are ['warmup', 'decay']"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("estimatr", r"SklearnTrainer has no parameter 'estimatr'; did you mean 'estimator'\?"),
        ("num_cpu", r"no parameter 'num_cpu'; did you mean 'num_cpus'\?"),
        ("estimatr__alpha", r"no parameter 'estimatr' \(in 'estimatr__alpha'\); did you mean"),
        ("estimator__alfa", r"Ridge has no parameter 'alfa'; did you mean 'alpha'\?"),
    ],
)
def test_set_params_refuses_an_unknown_name_with_a_suggestion(name, message):
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y")
    with pytest.raises(pr.ConfigError, match=message):
        trainer.set_params(**{name: 1})


@pytest.mark.parametrize(
    ("build", "bad"),
    [
        (lambda: pr.SklearnTrainer(Ridge(), features=FEATURES, label="y"), {"batch_size": 0}),
        (lambda: pr.XGBoostTrainer(features=FEATURES, label="y"), {"num_boost_round": 0}),
        (
            lambda: pr.TorchTrainer(model=torch.nn.Linear(2, 1), features=FEATURES, label="y"),
            {"optimizer_kwargs__lrr": 0.1},
        ),
        (lambda: pr.TorchTrainer(_loop), {"keep_checkpoints": -1}),
        (lambda: pr.SklearnTrainer(Ridge(), features=FEATURES, label="y"), {"name": "../x"}),
    ],
)
def test_set_params_refuses_a_bad_value_with_the_constructors_error_and_keeps_the_trainer(
    build, bad
):
    trainer = build()
    before = trainer.get_params()
    with pytest.raises(pr.ConfigError) as from_set:
        trainer.set_params(**bad)
    flat = {k.split("__")[0]: v for k, v in bad.items()}
    if "optimizer_kwargs" in flat:
        flat["optimizer_kwargs"] = {"lrr": 0.1}
    with pytest.raises(pr.ConfigError) as from_init:
        type(trainer)(**{**before, **flat})
    assert str(from_set.value) == str(from_init.value)
    assert trainer.get_params() == before


def test_set_params_with_a_scaling_config_on_scikit_learn_names_its_parameters():
    trainer = pr.SklearnTrainer(Ridge(), features=FEATURES, label="y")
    with pytest.raises(pr.ConfigError, match=r"its parameters are \['estimator', 'features'"):
        trainer.set_params(scaling_config=ScalingConfig(num_workers=2))
