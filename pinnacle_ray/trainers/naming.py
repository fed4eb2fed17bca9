"""A trainer's names checked when ``fit`` is called, before Ray, the database or the disk
is touched: the model name (``name=`` or ``register="<name>"``) and the run name of a
``RunConfig`` the user passed. Both become folders and Ray run names, so a name such as
``"../x"`` would otherwise create directories outside the storage root before the
registry refused it, after the whole training."""

from __future__ import annotations

from typing import Any

from .._internal.names import validate_name
from ..errors import ConfigError

__all__ = ["checked_fit"]


def checked_fit(
    trainer: Any, register: object, resume_from: object = None, handle: object = None
) -> tuple[Any, bool]:
    """The trainer to fit and whether the run registers, for ``fit(register=...)``:
    ``True``/``False``, or a model name to register under (a copy of the trainer with that
    ``name``, as ``trainer.submit(register=...)`` makes); ``InvalidName`` for a bad name,
    also for ``resume_from=`` (a model name) and its checkpoint ``handle=``."""
    validate_name(trainer.name, "model name")
    if resume_from is not None:
        validate_name(resume_from, "model name")
        if handle is not None:
            validate_name(handle, "checkpoint handle", 64)
    run_config = getattr(trainer, "run_config", None)
    run_name = getattr(run_config, "name", None)
    if run_name is not None:
        # Ray Train tags its metrics with the run name, and metrics tags are ASCII.
        validate_name(run_name, "run name", ascii_only=True)
    if isinstance(register, bool):
        return trainer, register
    if not isinstance(register, str):
        raise ConfigError(
            f"register= must be True, False or a model name, got {register!r} "
            f"({type(register).__name__})"
        )
    name = validate_name(register, "model name")
    if name == trainer.name:
        return trainer, True
    get_params = getattr(trainer, "get_params", None)
    if not callable(get_params):
        raise ConfigError(
            f"register={name!r}: {type(trainer).__name__} cannot be renamed (it has no "
            "get_params() giving back its arguments); build it with name=... instead"
        )
    return type(trainer)(**{**get_params(), "name": name}), True
