"""Module attributes loaded on first use (PEP 562), for the packages whose names would
otherwise import heavy modules (torch, SQLAlchemy, pymongo) with the package itself."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from .extras import needs_extra

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, Any],
    where: Mapping[str, str],
    extras: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module whose globals are ``namespace``:
    name ``n`` in ``where`` comes from its submodule ``where[n]``, imported on first use
    and then kept in the module's globals. A name in ``extras`` needs that extra of the
    package (its submodule imports an optional framework): when the framework is not
    installed, using the name raises ``MissingExtra`` saying which extra to install."""
    package = namespace["__name__"]
    needs = extras or {}

    def __getattr__(name: str) -> object:
        if name in where:
            extra = needs.get(name)
            guard = needs_extra(extra, name) if extra else contextlib.nullcontext()
            with guard:
                module = importlib.import_module(f".{where[name]}", package)
            value = getattr(module, name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
