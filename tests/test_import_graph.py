"""Data flows one way: no module of the package imports a room above its own.

DESIGN.md's rooms, lowest first: ``errors`` and ``_internal``; ``data`` (knows nothing of SQL
or Mongo); ``datastore`` (knows nothing of training); ``registry`` (never imports
``trainers``); ``trainers``; ``tune`` and ``batch_predict``; ``jobs`` and ``cli``; the facade
(``pinnacle_ray/__init__.py``, ``_connect``) and ``testing`` on top. Every module is parsed
with ``ast``, so an import inside a function or under ``TYPE_CHECKING`` counts as much as one
at the top: each is a dependency the room has on the one it names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pinnacle_ray

pytestmark = pytest.mark.unit

PACKAGE = Path(pinnacle_ray.__file__).parent

# The room of each name directly under pinnacle_ray/, as a floor: a module may import its own
# floor and those below. A new top-level module or package must be given its floor here.
ROOMS: dict[str, int] = {
    "errors": 0,
    "_internal": 0,
    "data": 1,
    "datastore": 2,
    "registry": 3,
    "trainers": 4,
    "tune": 5,
    "batch_predict": 5,
    "jobs": 6,
    "cli": 6,
    "_connect": 7,  # connect(): hands a datastore its registry and job factories
    "testing": 7,
    "": 7,  # the facade, pinnacle_ray/__init__.py
}
# DESIGN.md: "jobs/ and cli/ sit on top and call the facade" (``import pinnacle_ray as pr``).
FACADE_CALLERS = {"jobs", "cli", "testing"}
# Back-edges accepted for now: "module -> imported module": why. The aim is none.
ALLOWED: dict[str, str] = {}

SQL_AND_MONGO = ("sqlalchemy", "pymongo", "bson", "adbc_driver_manager", "connectorx")
TRAINING = ("ray.train", "ray.tune", "torch", "transformers", "xgboost", "sklearn", "peft")
# Third-party packages a room must not import: what it must know nothing of.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "_internal": SQL_AND_MONGO + TRAINING,
    "errors": SQL_AND_MONGO + TRAINING,
    "data": SQL_AND_MONGO + TRAINING,
    "datastore": TRAINING,
    "trainers": SQL_AND_MONGO,
}


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of the module at ``path`` and whether it is a package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imports(name: str, is_package: bool, source: str) -> list[tuple[str, int]]:
    """Every ``pinnacle_ray`` module that ``source`` (module ``name``) imports, anywhere in
    it, with the line: ``from .. import x`` names submodule ``x`` when there is one, else the
    facade itself."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if _ours(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not _ours(target):
                continue
            if target == "pinnacle_ray":
                found += [(_top_level(a.name), node.lineno) for a in node.names]
            else:
                found.append((target, node.lineno))
    return found


def third_party(source: str) -> list[tuple[str, int]]:
    """Every absolute import of a package other than ours in ``source``, with the line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if not _ours(a.name)]
        elif isinstance(node, ast.ImportFrom) and not node.level and not _ours(node.module or ""):
            found.append((node.module or "", node.lineno))
    return found


def room_of(name: str) -> str:
    """The room of module ``name``: its first name under ``pinnacle_ray`` ("" for the facade)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def back_edges(name: str, is_package: bool, source: str) -> list[str]:
    """``"module -> imported module"`` for each import in ``source`` of a room above
    ``name``'s (the facade excepted for its callers)."""
    floor = ROOMS[room_of(name)]
    edges = []
    for target, _line in imports(name, is_package, source):
        above = ROOMS.get(room_of(target), max(ROOMS.values())) > floor
        calls_facade = target == "pinnacle_ray" and room_of(name) in FACADE_CALLERS
        if above and not calls_facade:
            edges.append(f"{name} -> {target}")
    return edges


def _ours(module: str) -> bool:
    return module.split(".")[0] == "pinnacle_ray"


def _top_level(name: str) -> str:
    child = PACKAGE / name
    exists = child.with_suffix(".py").exists() or (child / "__init__.py").exists()
    return f"pinnacle_ray.{name}" if exists else "pinnacle_ray"


def _modules() -> list[tuple[str, bool, str]]:
    return [(*module_name(p), p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_of_the_package_belongs_to_a_room():
    unplaced = sorted({room_of(n) for n, _, _ in _modules()} - ROOMS.keys())
    assert unplaced == [], f"give these a floor in ROOMS (tests/test_import_graph.py): {unplaced}"


def test_no_module_imports_a_room_above_its_own():
    edges = {e for name, pkg, source in _modules() for e in back_edges(name, pkg, source)}
    new = sorted(edges - ALLOWED.keys())
    assert new == [], "imports that run back up a room (DESIGN.md):\n" + "\n".join(new)
    gone = sorted(ALLOWED.keys() - edges)
    assert gone == [], f"no longer imported, drop from ALLOWED: {gone}"


def test_no_room_imports_the_libraries_of_a_job_it_must_know_nothing_of():
    found = [
        f"{name}:{line} imports {module}"
        for name, _, source in _modules()
        for module, line in third_party(source)
        if any(
            module == banned or module.startswith(f"{banned}.")
            for banned in FORBIDDEN.get(room_of(name), ())
        )
    ]
    assert found == [], "\n".join(found)


def test_back_edges_are_found_in_functions_and_under_type_checking():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..errors import ConfigError\n"  # below: fine
        "from .flavors import get_flavor\n"  # its own room: fine
        "if TYPE_CHECKING:\n"
        "    from ..jobs.records import JobRecord\n"
        "def load():\n"
        "    from ..trainers import base\n"
        "    import pinnacle_ray.cli\n"
        "    from .. import tune, __version__\n"
    )
    assert back_edges("pinnacle_ray.registry.loader", False, source) == [
        "pinnacle_ray.registry.loader -> pinnacle_ray.jobs.records",
        "pinnacle_ray.registry.loader -> pinnacle_ray.trainers",
        "pinnacle_ray.registry.loader -> pinnacle_ray.cli",
        "pinnacle_ray.registry.loader -> pinnacle_ray.tune",
        "pinnacle_ray.registry.loader -> pinnacle_ray",
    ]


def test_only_the_top_rooms_may_call_the_facade():
    source = "import pinnacle_ray as pr\nfrom .. import __version__\n"
    assert back_edges("pinnacle_ray.cli.main", False, source) == []
    assert back_edges("pinnacle_ray.datastore", True, "from .. import connect\n") == [
        "pinnacle_ray.datastore -> pinnacle_ray"
    ]


def test_the_prediction_actors_module_imports_no_training_library():
    # Every pr.predict actor imports pinnacle_ray.batch_predict (for BatchWriter) while it
    # starts; Ray Train, Ray Tune or a framework imported there for nothing is paid by each
    # actor, before its first batch (ray.train alone: ~0.1 s of CPU).
    import subprocess
    import sys

    code = (
        "import sys, ray.data, pinnacle_ray.batch_predict; "
        "print(sorted(m for m in ('ray.train', 'ray.tune', 'torch', 'transformers', "
        "'xgboost', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
