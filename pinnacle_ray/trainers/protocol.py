"""``Trainer``: what the rooms above (``tune``, ``jobs``) may use of any trainer.

The four trainers (torch, Hugging Face, scikit-learn, XGBoost) satisfy it; so may your
own class, e.g. to sweep it with ``pr.sweep``. Nothing here imports a framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from typing import Self

    from ray.train import RunConfig, ScalingConfig

    from .base import TrainResult

__all__ = ["Trainer"]


@runtime_checkable
class Trainer(Protocol):
    """A trainer: scikit-learn-style parameters, a blocking ``fit`` and a ``submit`` that
    runs that fit as a Ray job.

    Example::

        def tune_lr(trainer: Trainer, lr: float) -> Trainer:
            return trainer.clone().set_params(optimizer_kwargs__lr=lr)

    ``isinstance(obj, Trainer)`` checks that the members exist, not their signatures.
    """

    @property
    def name(self) -> str:
        """The model name a run registers under (``name=`` as given, else a default made
        from the model, loop or estimator)."""
        ...

    @property
    def run_config(self) -> RunConfig | None:
        """The ``RunConfig`` given (None: each fit makes a fresh, uniquely named one)."""
        ...

    @property
    def scaling(self) -> ScalingConfig | None:
        """The Ray Train ``ScalingConfig`` a fit starts its workers with (the one given,
        else one worker); None for a trainer whose fit is one Ray task (scikit-learn, which
        holds ``num_cpus``)."""
        ...

    def fit(
        self,
        train: Any,
        valid: Any = None,
        *,
        register: bool | str = True,
        resume_from: str | None = None,
        version: int | None = None,
        handle: str = "latest",
        progress: bool | None = None,
    ) -> TrainResult:
        """Train on ``train`` (a query or ``ray.data.Dataset``), validating on ``valid``;
        registered in ``train``'s datastore unless ``register=False``."""
        ...

    def submit(
        self,
        train: Any,
        valid: Any = None,
        *,
        register: bool | str = True,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        **fit_kwargs: Any,
    ) -> Any:
        """Start ``fit`` as a Ray job and return its ``pinnacle_ray.Job`` at once."""
        ...

    def reported_metrics(self, train: Any, valid: Any = None) -> set[str] | None:
        """The metric names a fit on these queries reports (None: only the run can tell)."""
        ...

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The ``__init__`` arguments by name, as given."""
        ...

    def set_params(self, **params: Any) -> Self:
        """Change some parameters (``<param>__<name>`` for nested ones); returns self."""
        ...

    def clone(self) -> Self:
        """A new trainer with the same parameters."""
        ...
