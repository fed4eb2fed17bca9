"""Functions stored with a model version by import path (``module:qualname``), never pickled.

A registered torch model may carry a ``preprocess`` (rows -> rows, before the model) and a
``postprocess`` (outputs -> predictions, after it), as SuperDuperDB's ``Module`` does. They
are recorded as the import path of a plain function defined at the top level of an
importable module, and imported again where the model is loaded: the artifact holds no
code, and loading runs only functions already installed where it loads.

Example::

    import_path(mypkg.images.decode)      # "mypkg.images:decode"
    resolve("mypkg.images:decode", "preprocess")(batch)
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, RegistryError

__all__ = ["import_path", "resolve"]


def import_path(value: Any, what: str) -> str:
    """The ``module:qualname`` of ``value`` (a function, or such a string), checked to import
    back to the same function; ConfigError naming ``what`` for a lambda, a closure, a
    function of ``__main__`` or anything that is not a plain function."""
    if isinstance(value, str):
        resolve(value, what, error=ConfigError)
        return value
    if not isinstance(value, types.FunctionType):
        raise ConfigError(
            f"{what} must be a function defined at the top level of an importable module (or "
            f"its 'module:qualname'), got {type(value).__name__}; it is stored by import path"
        )
    module, qualname = value.__module__, value.__qualname__
    if value.__name__ == "<lambda>" or "<locals>" in qualname or module == "__main__":
        where = "a lambda" if value.__name__ == "<lambda>" else f"{module}:{qualname}"
        raise ConfigError(
            f"{what}={where} cannot be stored by import path: a model version stores "
            f"{what} as 'module:qualname' (never pickled), so it must be a function defined "
            "at the top level of a module that is importable where the model is loaded; "
            "move it into such a module"
        )
    path = f"{module}:{qualname}"
    if resolve(path, what, error=ConfigError) is not value:
        raise ConfigError(
            f"{what}: {path} does not import back to the function given; define it at the "
            "top level of its module under that name"
        )
    return path


def resolve(path: str, what: str, *, error: type[Exception] = RegistryError) -> Callable[..., Any]:
    """The plain function at ``path`` (``module:qualname``); ``error`` names ``what`` when
    it does not import or is not a function defined in that module (builtins and names
    re-exported from elsewhere are refused: a stored path runs only the code it names)."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise error(f"{what}={path!r} is not an import path; write it as 'module:qualname'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise error(
            f"{what}={path!r} cannot be imported here ({exc}); install the module that "
            "defines it where the model is trained and loaded (e.g. on PYTHONPATH)"
        ) from None
    if not inspect.isfunction(target) or target.__module__ != module_name:
        raise error(
            f"{what}={path!r} is not a function defined in {module_name!r}; only such "
            "functions are loaded by import path"
        )
    return target
