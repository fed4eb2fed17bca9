"""Turn a validated spec into the objects a user would write by hand: a datastore, its
queries, a trainer with Ray's own ``ScalingConfig``/``RunConfig``, and search spaces.

Code named in a spec (``examples.models:MLP``) is imported from the current directory
(as ``python -m`` does). A module that is not installed is shipped to Ray's workers by
value, so a spec run on a cluster without a ``working_dir`` still finds its model class.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SpecError
from .spec import LoadedSpec
from .spec_schema import QuerySection, RunSpec, TuneSection

__all__ = [
    "build_query",
    "build_run_config",
    "build_scaling",
    "build_trainer",
    "connect_store",
    "import_object",
    "is_installed",
    "search_space",
]


def import_object(path: str, field: str) -> Any:
    """The object at import path ``module:qualname`` (``field`` names the spec field)."""
    if not isinstance(path, str) or ":" not in path:
        raise SpecError(
            f"{field}: {path!r} is not an import path; write 'package.module:Name' "
            "(e.g. 'examples.models:MLP' or 'sklearn.linear_model:Ridge')"
        )
    module_name, _, qualname = path.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"{field}: cannot import {path!r} ({exc}); run from the folder that holds "
            f"'{module_name.split('.')[0]}', or install it (current folder: {cwd})"
        ) from None
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))[:20]
            raise SpecError(f"{field}: module {module_name!r} has no {qualname!r}; it has {public}")
        obj = getattr(obj, part)
    _ship_by_value(module)
    return obj


def is_installed(module: Any) -> bool:
    """True for a module a cluster's Python imports by itself: built in, from the standard
    library or site-packages, or pinnacle_ray (also an editable install); False for a
    user's project file, whose code must travel by value."""
    file = getattr(module, "__file__", None)
    if not file:
        return True
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    here = Path(file).resolve()
    if any(here.is_relative_to(Path(p).resolve()) for p in installed):
        return True
    return Path(__file__).resolve().parents[1] in here.parents


def _ship_by_value(module: Any) -> None:
    """Let Ray's workers unpickle code from a module that is not installed (a user's
    project folder): cloudpickle sends it by value instead of by import."""
    if is_installed(module):
        return
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)


def connect_store(run: RunSpec) -> Any:
    """The spec's datastore (``store:``), connected."""
    import pinnacle_ray as pr

    return pr.connect(run.store, artifact_root=run.artifact_root)


def build_query(store: Any, query: QuerySection, field: str) -> Any:
    """The query a ``train:``/``valid:``/``predict.query:`` section describes."""
    if query.table is not None:
        return store.table(query.table, columns=query.columns, where=query.where, key=query.key)
    if query.sql is not None:
        return store.sql(query.sql, params=query.params, key=query.key)
    if not hasattr(store, "find"):
        raise SpecError(
            f"{field}.find: {query.find!r} is a MongoDB query, but store {store.url!r} is a "
            "SQL database; use table: or sql:"
        )
    kwargs = {k: getattr(query, k) for k in ("filter", "projection", "key")}
    return store.find(query.find, **{k: v for k, v in kwargs.items() if v is not None})


def build_scaling(run: RunSpec) -> Any:
    """Ray Train's ``ScalingConfig`` from ``scaling:`` (None when the section is absent)."""
    if run.scaling is None:
        return None
    from ray.train import ScalingConfig

    return ScalingConfig(**run.scaling.model_dump())


def build_run_config(run: RunSpec, callbacks: list[Any] | None = None) -> Any:
    """Ray Train's ``RunConfig``: the trainer's quiet default, plus the spec's checkpoint,
    failure and storage settings and ``callbacks`` (None when there is nothing to add)."""
    if not (run.checkpoint or run.failure or run.storage_path or callbacks):
        return None
    from ray.train import CheckpointConfig, FailureConfig

    from ..trainers import default_run_config

    checkpoint = (
        CheckpointConfig(**run.checkpoint.model_dump())
        if run.checkpoint is not None
        else CheckpointConfig(num_to_keep=None)
    )
    config = default_run_config(run.name, checkpoint)
    changes: dict[str, Any] = {}
    if run.failure is not None:
        changes["failure_config"] = FailureConfig(max_failures=run.failure.max_failures)
    if run.storage_path is not None:
        changes["storage_path"] = run.storage_path
    if callbacks:
        changes["callbacks"] = list(callbacks)
    return dataclasses.replace(config, **changes) if changes else config


def build_trainer(spec: LoadedSpec, callbacks: list[Any] | None = None) -> Any:
    """The pinnacle_ray trainer the spec's ``trainer:`` section describes."""
    import pinnacle_ray as pr

    run = spec.run
    section = run.trainer
    args = section.given("kind")
    run_config = build_run_config(run, callbacks)
    if run_config is not None:
        args["run_config"] = run_config
    try:
        if section.kind == "torch":
            if "train_loop_per_worker" in args:
                args["train_loop_per_worker"] = import_object(
                    args["train_loop_per_worker"], "trainer.train_loop_per_worker"
                )
            if "model" in args:
                args["model"] = _construct(
                    args.pop("model"), args.pop("model_args", {}), "trainer.model"
                )
            args.pop("model_args", None)
            if isinstance(args.get("objective"), str) and ":" in args["objective"]:
                args["objective"] = import_object(args["objective"], "trainer.objective")
            return pr.TorchTrainer(scaling_config=build_scaling(run), name=run.name, **args)
        if section.kind == "sklearn":
            estimator = _construct(
                args.pop("estimator"), args.pop("estimator_args", {}), "trainer.estimator"
            )
            return pr.SklearnTrainer(estimator, name=run.name, **args)
        if section.kind == "xgboost":
            return pr.XGBoostTrainer(scaling_config=build_scaling(run), name=run.name, **args)
        trainer_cls = getattr(pr, "HuggingFaceTrainer", None)
        if trainer_cls is None:
            raise SpecError(
                "trainer.kind: 'huggingface' needs pr.HuggingFaceTrainer, which this "
                f"pinnacle_ray ({pr.__version__}) does not have yet; upgrade pinnacle_ray"
            )
        return trainer_cls(scaling_config=build_scaling(run), name=run.name, **args)
    except SpecError:
        raise
    except ConfigError as exc:
        raise SpecError(f"{spec.source}, trainer: {exc}") from None
    except TypeError as exc:
        raise SpecError(f"{spec.source}, trainer: {exc}") from None


def _construct(path: str, kwargs: dict[str, Any], field: str) -> Any:
    """Call the class or factory at ``path`` with ``kwargs`` (a spec's model/estimator)."""
    target = import_object(path, field)
    if not callable(target):
        raise SpecError(f"{field}: {path!r} is a {type(target).__name__}, not a class or factory")
    try:
        return target(**kwargs)
    except TypeError as exc:
        raise SpecError(f"{field}: {path}(**{field}_args) failed: {exc}") from None


_SPACES = ("grid", "choice", "uniform", "loguniform", "randint")


def search_space(tune: TuneSection) -> dict[str, Any]:
    """``tune.param_space`` with ``{grid: [...]}``-style values as Ray Tune search spaces."""
    from ray import tune as ray_tune

    def convert(value: Any, path: str) -> Any:
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _SPACES:
            kind, arg = next(iter(value.items()))
            if kind in ("grid", "choice"):
                if not isinstance(arg, list) or not arg:
                    raise SpecError(f"tune.param_space.{path}.{kind}: expected a non-empty list")
                return ray_tune.grid_search(arg) if kind == "grid" else ray_tune.choice(arg)
            if not isinstance(arg, list) or len(arg) != 2:
                raise SpecError(
                    f"tune.param_space.{path}.{kind}: expected [low, high], got {arg!r}"
                )
            return {"uniform": ray_tune.uniform, "loguniform": ray_tune.loguniform,
                    "randint": ray_tune.randint}[kind](*arg)  # fmt: skip
        if isinstance(value, dict):
            return {k: convert(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        return value

    return convert(tune.param_space, "")
