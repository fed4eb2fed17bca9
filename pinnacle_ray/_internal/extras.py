"""Optional packages and the extra that installs each (``pip install "pinnacle-ray[EXTRA]"``).

The core install is Ray, pyarrow, pandas, numpy, SQLAlchemy, pydantic, PyYAML and tqdm;
each framework, driver and feature beyond that comes with an extra of the package (see
``pyproject.toml``). The code imports those packages only where it uses them, through
:func:`require` or :func:`needs_extra`, so that a missing one fails there, and not at
``import pinnacle_ray``, with a :class:`~pinnacle_ray.errors.MissingExtra` naming the
command that installs it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType

from ..errors import MissingExtra

__all__ = [
    "EXTRA_OF",
    "INCLUDES",
    "install_command",
    "installed",
    "missing_extra",
    "needs_extra",
    "packages_of",
    "require",
]

DISTRIBUTION = "pinnacle-ray"

# Top-level import name -> the extra that installs it (keep in step with pyproject.toml).
EXTRA_OF: dict[str, str] = {
    "torch": "torch",
    "safetensors": "torch",
    "transformers": "hf",
    "accelerate": "hf",
    "peft": "hf",
    "huggingface_hub": "hf",
    "sklearn": "sklearn",
    "skops": "sklearn",
    "joblib": "sklearn",
    "xgboost": "xgboost",
    "pymongo": "mongo",
    "bson": "mongo",
    "psycopg": "postgres",
    "adbc_driver_postgresql": "postgres",
    "pymysql": "mysql",
    "adbc_driver_sqlite": "fast-sqlite",
    "connectorx": "fast-sqlite",
    "mlflow": "mlflow",
    "matplotlib": "plot",
    "mongomock": "testing",
}

# Extras that install other extras too (pyproject: hf = pinnacle-ray[torch] + ...).
INCLUDES: dict[str, tuple[str, ...]] = {"hf": ("torch",), "testing": ("mongo",)}


def install_command(extra: str) -> str:
    """The pip command that installs ``extra``: ``pip install "pinnacle-ray[extra]"``."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def packages_of(extra: str) -> list[str]:
    """The optional top-level packages ``extra`` installs (``"torch,sklearn"``: both's)."""
    wanted = set()
    for name in extra.split(","):
        wanted |= {name.strip(), *INCLUDES.get(name.strip(), ())}
    return [module for module, owner in EXTRA_OF.items() if owner in wanted]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it). The fast readers
    and writers ask this to fall back silently to the plain path when their extra is absent."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or None in sys.modules
        return False


def missing_extra(
    error: ModuleNotFoundError, extra: str | None = None, purpose: str | None = None
) -> MissingExtra | None:
    """The :class:`MissingExtra` for ``error`` when the module it could not find is an
    optional package (its own extra, or ``extra`` when given: the Hugging Face trainer
    names ``hf`` also when torch is what is missing); None for any other missing module,
    which is a bug or a broken install rather than an extra to add."""
    missing = error.name or ""
    top = missing.partition(".")[0]
    if top not in EXTRA_OF or (missing != top and installed(top)):
        # A library may say in its own words that a package is missing (Ray's torch
        # integration: "PyTorch isn't installed", no module name): with the extra known,
        # the first of its packages that is not installed is the one to name.
        absent = [m for m in packages_of(extra) if not installed(m)] if extra else []
        if not absent:
            return None
        top = absent[0]
    extra = extra or EXTRA_OF[top]
    top = "pymongo" if top == "bson" else top  # bson is pymongo's: name the one to install
    needs = f"{purpose} needs" if purpose else "this needs"
    return MissingExtra(
        f"{needs} the optional package {top!r}, which is not installed; install it with "
        f"{install_command(extra)} (or {install_command('all')} for every framework and "
        "driver)",
        extra=extra,
        module=top,
    )


def require(module: str, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import and return ``module``; raise :class:`MissingExtra` naming the extra to
    install when it (or an optional package it needs) is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, extra, purpose)
        if error is None:
            raise
        raise error from None


@contextlib.contextmanager
def needs_extra(extra: str | None = None, purpose: str | None = None) -> Iterator[None]:
    """Run the imports in the block; a missing optional package becomes
    :class:`MissingExtra` naming ``extra`` (default: the package's own extra). For the
    places that import a whole module of a framework's code at once (a trainer, a flavor,
    a backend): ``with needs_extra("xgboost", "pr.XGBoostTrainer"): from . import xgboost``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, extra, purpose)
        if error is None:
            raise
        raise error from None
