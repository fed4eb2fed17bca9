"""The public facade: ``pinnacle_ray.__all__`` is short, every name it used to list still
resolves, and no submodule shadows a facade name (``import pinnacle_ray.<module>`` binds the
module on the package, replacing a function of the same name)."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest

import pinnacle_ray as pr
from pinnacle_ray import errors

pytestmark = pytest.mark.unit

FACADE = {
    "connect",
    "HuggingFaceTrainer",
    "SklearnTrainer",
    "TorchTrainer",
    "XGBoostTrainer",
    "TrainResult",
    "predict",
    "sweep",
    # a custom train loop's checkpoint helpers, and the tracking callback users construct
    "get_checkpoint",
    "load_state",
    "report",
    "save_state",
    "MLflowCallback",
    # the error tree's root and its categories
    "PinnacleError",
    "ConfigError",
    "DataError",
    "DatastoreError",
    "JobError",
    "RegistryError",
    "ResourceError",
    "TrainingFailed",
}

# Where each name the facade listed before issue 25 comes from: all keep working as
# ``pr.<name>``.
FORMER = {
    "CheckpointRecord": "pinnacle_ray.registry",
    "CheckpointSpec": "pinnacle_ray.registry",
    "CleanupReport": "pinnacle_ray.registry",
    "HandleMove": "pinnacle_ray.registry",
    "ModelRegistry": "pinnacle_ray.registry",
    "ModelVersion": "pinnacle_ray.registry",
    "SweepTrial": "pinnacle_ray.registry",
    "ShardPlan": "pinnacle_ray.datastore",
    "SqlDatastore": "pinnacle_ray.datastore",
    "SqlQuery": "pinnacle_ray.datastore",
    "connect": "pinnacle_ray._connect",
    "MongoDatastore": "pinnacle_ray.datastore",
    "MongoQuery": "pinnacle_ray.datastore",
    "Job": "pinnacle_ray.jobs",
    "PredictResult": "pinnacle_ray.batch_predict",
    "predict": "pinnacle_ray.batch_predict",
    "SweepResult": "pinnacle_ray.tune",
    "sweep": "pinnacle_ray.tune",
    "MLflowCallback": "pinnacle_ray.trainers.tracking",
    **{
        name: "pinnacle_ray.trainers"
        for name in (
            "HuggingFaceTrainer",
            "SklearnTrainer",
            "TorchTrainer",
            "TrainResult",
            "XGBoostTrainer",
            "get_checkpoint",
            "load_state",
            "report",
            "save_state",
        )
    },
    **{
        name: "pinnacle_ray.errors"
        for name in (
            "ChecksumMismatch",
            "ClusterUnreachable",
            "ColumnNotFound",
            "ConfigError",
            "DataError",
            "DataTooLarge",
            "DatastoreAuthenticationError",
            "DatastoreConnectionError",
            "DatastoreError",
            "DuplicateJob",
            "DuplicateKey",
            "EmptyResult",
            "EmptyText",
            "IncompatibleCheckpoint",
            "InvalidIdentifier",
            "InvalidKey",
            "InvalidName",
            "InvalidURL",
            "JobError",
            "JobFailed",
            "JobNotFound",
            "LabelMismatch",
            "MetricNotReported",
            "MixedTypes",
            "ModelNotFound",
            "NonFiniteValues",
            "NonNumericFeature",
            "NotShippable",
            "PinnacleError",
            "PretrainedNotFound",
            "QueryError",
            "RegistryError",
            "ResourceError",
            "SingleClass",
            "SpecError",
            "TableNotFound",
            "TooFewRows",
            "TrainingFailed",
            "UnsafeArtifact",
            "WriteError",
        )
    },
}


def test_the_facade_lists_the_names_a_user_calls_or_constructs():
    assert set(pr.__all__) == FACADE
    assert len(pr.__all__) == len(FACADE) <= 21


def test_dir_shows_the_facade_not_the_names_kept_for_compatibility():
    shown = {name for name in dir(pr) if not name.startswith("__")}
    assert shown == FACADE | {"errors"}
    assert "__version__" in dir(pr)


def test_every_other_error_belongs_to_a_category_the_facade_lists():
    """The facade's errors are ``PinnacleError`` and its direct subclasses (the categories
    users catch); every leaf error subclasses one of them and is listed in ``errors`` only."""
    categories = tuple(
        getattr(pr, n) for n in FACADE if n.endswith(("Error", "Failed")) and n != "PinnacleError"
    )
    assert all(errors.PinnacleError in c.__bases__ for c in categories)
    leaves = [n for n in errors.__all__ if n not in FACADE]
    assert [n for n in leaves if not issubclass(getattr(errors, n), categories)] == []


@pytest.mark.parametrize("name", sorted(FORMER))
def test_a_name_the_facade_listed_before_still_resolves_to_its_home(name):
    home = importlib.import_module(FORMER[name])
    assert getattr(pr, name) is getattr(home, name)


def test_every_error_in_the_errors_module_resolves_on_the_package():
    for name in errors.__all__:
        assert getattr(pr, name) is getattr(errors, name), name
    assert pr.errors is errors and pr.__version__


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = pr.NoSuchThing


@pytest.mark.parametrize(
    "package",
    [
        "pinnacle_ray",
        "pinnacle_ray.datastore",
        "pinnacle_ray.jobs",
        "pinnacle_ray.registry",
        "pinnacle_ray.trainers",
        "pinnacle_ray.tune",
    ],
)
def test_no_submodule_is_named_like_a_name_its_package_exports(package):
    """``import pinnacle_ray.predict`` used to turn ``pr.predict`` into a module: Python binds
    an imported submodule on its package, over a function of the same name."""
    names = importlib.import_module(package).__all__
    clashes = [n for n in names if importlib.util.find_spec(f"{package}.{n}") is not None]
    assert clashes == []


def test_pr_predict_stays_the_function_when_the_prediction_module_was_imported_first():
    script = (
        "import pinnacle_ray.batch_predict\n"
        "import pinnacle_ray as pr\n"
        "assert callable(pr.predict), pr.predict\n"
        "assert pr.predict is pinnacle_ray.batch_predict.predict\n"
        "from pinnacle_ray import predict\n"
        "assert predict is pr.predict\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
