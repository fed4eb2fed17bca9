"""``get_params`` / ``set_params`` / ``clone`` for the trainers, the scikit-learn way.

A trainer's parameters are the arguments of its ``__init__``, read from its signature, and
``get_params()`` hands back each one as it was given. That is what lets a sweep or a job
build a copy with some of them changed (``type(t)(**{**t.get_params(), "name": "x"})``,
or :meth:`TrainerParams.clone`) without private attributes.

Nested parameters take scikit-learn's and skorch's one routing syntax, ``<param>__<name>``:
into an estimator's own ``set_params`` (``estimator__alpha``,
``estimator__ridge__alpha`` for a pipeline step) and into a dict of keyword arguments by
key (``optimizer_kwargs__lr``, ``params__max_depth``) and into a dataclass by field. The
objects given are never changed: a nested value is set on a copy. The sweeps route their
parameter paths through the same :func:`routed_arguments`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = ["SEPARATOR", "TrainerParams", "param_names", "routed_arguments"]

SEPARATOR = "__"

_P = TypeVar("_P", bound="TrainerParams")
_T = TypeVar("_T")


@functools.cache
def param_names(cls: type) -> tuple[str, ...]:
    """The names of ``cls.__init__``'s parameters (not ``self``, not ``*args``/``**kwargs``),
    in signature order."""
    init = inspect.signature(cls.__init__)  # type: ignore[misc]
    return tuple(
        p.name
        for p in list(init.parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


class TrainerParams:
    """Mixin: ``get_params``, ``set_params`` and ``clone`` read from ``__init__``'s signature.

    Example::

        trainer = pr.SklearnTrainer(Ridge(), features=["x"], label="y", name="ridge")
        trainer.get_params()["name"]                   # 'ridge'
        trainer.set_params(estimator__alpha=0.5)       # returns the trainer
        copy = trainer.clone()                         # type(t)(**t.get_params())
    """

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Every ``__init__`` argument of this trainer by name, as it was given (defaults
        for those not given). ``deep=True`` adds the parameters of nested estimators as
        ``<param>__<name>``, as scikit-learn does."""
        out = {name: self._given(name) for name in param_names(type(self))}
        if deep:
            for name, value in list(out.items()):
                if _has_params(value):
                    out.update((f"{name}__{k}", v) for k, v in value.get_params(deep=True).items())
        return out

    def set_params(self: _P, **params: Any) -> _P:
        """Change some parameters and return the trainer, checked as the constructor checks
        them (a value the constructor refuses is refused here, with its message, and the
        trainer is left as it was). A nested name ``<param>__<name>`` sets a key of a dict
        parameter or a parameter of an estimator, on a copy. An unknown name is a
        ``ConfigError`` suggesting the closest one."""
        if not params:
            return self
        given = routed_arguments(type(self).__name__, self.get_params(), params)
        fresh = type(self)(**given)
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
        return self

    def clone(self: _P) -> _P:
        """A new, unfitted trainer with the same parameters: ``type(t)(**t.get_params())``
        (the parameter values themselves are shared, as scikit-learn's ``clone`` does with
        anything that is not an estimator)."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        # The parameters given away from their defaults, as scikit-learn prints estimators.
        defaults = inspect.signature(type(self).__init__).parameters  # type: ignore[misc]
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k in defaults and not _same(v, defaults[k].default)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def name(self) -> str:
        """The model name a run registers under: ``name=`` as given, else a default made
        from the model, loop or estimator (``get_params()["name"]`` stays as given)."""
        given = self.__dict__.get("_name")
        return given if given is not None else self._default_name()

    @name.setter
    def name(self, value: str | None) -> None:
        # Stored as given: the constructor checks it, and every fit checks it again before
        # it becomes folders and Ray run names (a name set afterwards is refused there).
        self.__dict__["_name"] = value

    def __setattr__(self, name: str, value: Any) -> None:
        # A parameter changed: what was derived from the parameters is derived again.
        if name in param_names(type(self)):
            self.__dict__.pop("_derived", None)
        super().__setattr__(name, value)

    def _derive(self, key: str, make: Callable[[], _T]) -> _T:
        """``make()``, kept until a parameter changes: for what is costly to derive from
        the parameters (a loaded tokenizer), computed when first needed."""
        derived = self.__dict__.setdefault("_derived", {})
        if key not in derived:
            derived[key] = make()
        return derived[key]

    def _default_name(self) -> str:
        """The model name when ``name=`` is not given."""
        raise NotImplementedError

    def _given(self, name: str) -> Any:
        """The argument ``name`` as given: the attribute of that name (``name``'s own value
        is kept apart from the default the property makes)."""
        if name == "name":
            return self.__dict__.get("_name")
        return getattr(self, name)


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value is default or value == default)
    except Exception:  # arrays and the like compare element-wise
        return False


def _has_params(value: Any) -> bool:
    """An estimator instance (scikit-learn's ``get_params``/``set_params``), not a class."""
    return (
        hasattr(value, "get_params")
        and hasattr(value, "set_params")
        and not isinstance(value, type)
    )


def routed_arguments(
    owner: str,
    arguments: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    context: str = "",
) -> dict[str, Any]:
    """``arguments`` (a trainer's ``get_params()``) with each of ``params`` set at its path.

    The one router of nested parameters, shared by ``set_params`` and the sweeps: a path is
    ``<argument>__<name>__...`` and goes down into a dict by key (a missing key is added, as
    Ray Tune's own ``param_space`` does), a dataclass by field, or an estimator by its
    ``set_params`` names (which route the rest themselves, a pipeline step included). What
    a path changes is copied; the other arguments are handed on as given. ``owner`` names
    the trainer class in messages and ``context`` says where the paths came from
    (``"param_space path "``); an unknown name is a ``ConfigError`` suggesting the closest.
    """
    out = dict(arguments)
    for path, value in params.items():
        head, *rest = path.split(SEPARATOR)
        if head not in out:
            raise ConfigError(_unknown(owner, path, head, list(out), context))
        out[head] = _route(out[head], rest, value, f"{context}{path!r}", head)
    return out


def _route(value: Any, rest: list[str], new: Any, label: str, where: str) -> Any:
    """``value`` with ``new`` set at the nested names ``rest`` (a copy; ``value`` is kept).
    ``label`` names the whole path for messages, ``where`` the part of it walked so far."""
    if not rest:
        return new
    segment, deeper = rest[0], rest[1:]
    if _has_params(value):
        name = SEPARATOR.join(rest)
        known = value.get_params(deep=True)
        if name not in known:
            shown = sorted(k for k in known if not isinstance(known[k], type))
            raise ConfigError(
                f"{label}: {type(value).__name__} has no parameter {name!r}"
                f"{_suggestion(name, shown)}; its parameters are {shown}"
            )
        out = copy.deepcopy(value)
        out.set_params(**{name: new})
        return out
    inner = f"{where}{SEPARATOR}{segment}"
    if value is None or isinstance(value, Mapping):
        out = dict(value or {})
        out[segment] = _route(out.get(segment), deeper, new, label, inner)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        if segment not in names:
            raise ConfigError(
                f"{label}: {where} ({type(value).__name__}) has no field {segment!r}"
                f"{_suggestion(segment, names)}; its fields are {names}"
            )
        changed = _route(getattr(value, segment), deeper, new, label, inner)
        return dataclasses.replace(value, **{segment: changed})
    raise ConfigError(
        f"{label}: {where} is a {type(value).__name__}, which has no parameter {segment!r} "
        "to set; a nested name reaches a dict's key, a dataclass's field or an estimator's "
        "parameter"
    )


def _suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown(owner: str, path: str, head: str, known: list[str], context: str = "") -> str:
    where = f"{context}{path!r}: " if context else ""
    within = f" (in {path!r})" if path != head and not context else ""
    return (
        f"{where}{owner} has no parameter {head!r}{within}{_suggestion(head, known)}; "
        f"its parameters are {known}"
    )
