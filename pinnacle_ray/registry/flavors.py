"""Which module saves and loads each framework's models, found by name (as MLflow does).

The registry never imports a trainer: a version row names its framework, and the flavor
module listed here for that name turns the stored folder back into a model. Flavor modules
are imported only when a model of that framework is loaded, so torch is not imported to
list versions.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, cast

from .._internal.extras import needs_extra
from ..errors import MissingExtra, RegistryError

__all__ = ["FLAVORS", "META_FILE", "Flavor", "Predictor", "get_flavor", "register_flavor"]

# Every registered model folder holds this JSON: its framework, features, label and what the
# flavor needs to rebuild it.
META_FILE = "pinnacle.json"

# framework name -> module with ``load_model(model_dir, *, weights_dir=None, **kwargs)``
FLAVORS: dict[str, str] = {
    "torch": "pinnacle_ray.registry.torch_flavor",
    "sklearn": "pinnacle_ray.registry.sklearn_flavor",
    "xgboost": "pinnacle_ray.registry.xgboost_flavor",
    "huggingface": "pinnacle_ray.registry.huggingface_flavor",
}

# The package's extra that installs each built-in flavor's framework.
_EXTRAS = {"torch": "torch", "sklearn": "sklearn", "xgboost": "xgboost", "huggingface": "hf"}


class Predictor(Protocol):
    """What ``store.models.load`` returns: something that predicts on a batch of rows."""

    def predict(self, batch: Any) -> Any: ...


class Flavor(Protocol):
    """A framework's load code: a module with ``load_model``. It gets ``allow_pickle=True``
    when the user allows formats that can run code; without it, it must refuse them. It
    gets ``device="cuda"`` when ``pr.predict(num_gpus=...)`` runs its actors on GPUs (or a
    user passes ``device=`` to ``store.models.load``), and then loads the model there."""

    def load_model(
        self, model_dir: str, *, weights_dir: str | None = None, **kwargs: Any
    ) -> Predictor: ...


def register_flavor(framework: str, module: str) -> None:
    """Make ``store.models.load`` use ``module``'s ``load_model`` for ``framework`` models."""
    FLAVORS[framework] = module


def get_flavor(framework: str) -> Flavor:
    """The flavor module for ``framework``, imported on first use."""
    path = FLAVORS.get(framework)
    if path is None:
        raise RegistryError(
            f"no flavor loads {framework!r} models; known frameworks: {sorted(FLAVORS)}. "
            "Register one with pinnacle_ray.registry.register_flavor(framework, module)"
        )
    try:
        with needs_extra(_EXTRAS.get(framework), f"loading a {framework!r} model"):
            module = importlib.import_module(path)
    except MissingExtra:
        raise
    except ImportError as exc:
        raise RegistryError(
            f"the {framework!r} flavor ({path}) cannot be imported: {exc}. Install the "
            "framework to load its models"
        ) from None
    return cast(Flavor, module)
