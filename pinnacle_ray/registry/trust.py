"""Which Python modules a registered torch architecture may be imported from.

A torch model whose class is not a standard ``torch.nn`` layer is rebuilt by importing the
module named in its registry record. Whoever can write that record could otherwise make
every loader import any installed module (and run its top-level code), so the module must
be trusted by the loading user first: named in ``trusted_modules=`` on ``store.models.load``
or ``pr.predict`` (a name, the class, or the module object), or in the
``PINNACLE_RAY_TRUSTED_MODULES`` environment variable (comma-separated names). A name
trusts that module and the modules inside it (``"mypkg"`` trusts ``"mypkg.models"``).

This module imports nothing heavy (``pr.predict`` reads it for every framework).
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from .._internal.constants import TRUSTED_MODULES_ENV
from .._internal.constants import trusted_module_names as env_trusted_module_names
from ..errors import ConfigError, UnsafeArtifact

__all__ = [
    "ALWAYS_TRUSTED",
    "TRUSTED_MODULES_ENV",
    "check_architecture",
    "check_trusted",
    "trusted_module_names",
]

# torch's own layers: importing them runs nothing the loading process has not run already.
ALWAYS_TRUSTED = ("torch.nn",)

TrustedModules = Iterable[str | type | types.ModuleType] | str | type | types.ModuleType | None


def trusted_module_names(given: TrustedModules = None) -> tuple[str, ...]:
    """The module names trusted for this load: ``given`` (names, classes or modules) plus
    those in ``PINNACLE_RAY_TRUSTED_MODULES``; the environment is read here and nowhere
    else."""
    names = [_name_of(item) for item in _items(given)]
    names += env_trusted_module_names()
    return tuple(dict.fromkeys(names))


def check_trusted(class_path: str, trusted: Iterable[str]) -> None:
    """Refuse ``class_path`` (``module:qualname``) with ``UnsafeArtifact`` unless its module is
    in ``trusted`` (or inside one of them); called before the module is imported."""
    module = class_path.partition(":")[0]
    allowed = (*ALWAYS_TRUSTED, *trusted)
    if any(module == t or module.startswith(t + ".") for t in allowed):
        return
    raise UnsafeArtifact(
        f"the registered architecture names the class {class_path}, and rebuilding it would "
        f"import the module {module!r}, which this load does not trust. If you trust it, pass "
        f"trusted_modules=[{module!r}] (or the class itself) to store.models.load() or "
        f"pr.predict(), or add it to {TRUSTED_MODULES_ENV}; or pass model=<an instance> to "
        "load() to use your own class"
    )


def check_architecture(architecture: Any, trusted: Iterable[str]) -> None:
    """Refuse, as :func:`check_trusted`, the first class an architecture description (the
    JSON ``torch_architecture.describe_architecture`` writes) would import untrusted; lets
    ``pr.predict`` refuse on the driver before any actor starts."""
    if not isinstance(architecture, dict):
        return
    if architecture.get("kind") == "class":
        check_trusted(str(architecture.get("class")), tuple(trusted))
    for layer in architecture.get("layers") or ():
        if isinstance(layer, dict):
            check_architecture(layer.get("module"), trusted)


def _items(given: TrustedModules) -> list[Any]:
    if given is None:
        return []
    if isinstance(given, (str, type, types.ModuleType)):
        return [given]
    return list(given)


def _name_of(item: Any) -> str:
    if isinstance(item, types.ModuleType):
        return item.__name__
    if isinstance(item, type):
        return item.__module__
    if isinstance(item, str) and item.strip() and ":" not in item:
        return item.strip()
    if isinstance(item, str) and ":" in item:  # "pkg.mod:Class" names its module
        return item.partition(":")[0].strip()
    raise ConfigError(
        f"trusted_modules holds {item!r}; give module names (e.g. 'mypkg.models'), "
        "classes or modules"
    )
