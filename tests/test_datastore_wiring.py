"""A datastore is handed its registry and job factories by ``pr.connect`` and carries them
through pickling; one opened without them says how to get them; the datastore room has no
import circles."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import pinnacle_ray as pr
from pinnacle_ray import datastore
from pinnacle_ray.errors import ConfigError
from pinnacle_ray.registry import ModelRegistry

pytestmark = pytest.mark.unit

PACKAGE = Path(pr.__file__).parent


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


def test_a_pickled_store_keeps_the_factories_it_was_handed(url: str) -> None:
    store = pr.connect(url)
    copy = pickle.loads(pickle.dumps(store))
    assert copy is not store
    assert copy._models_factory is store._models_factory is not None
    assert copy._jobs_factory is store._jobs_factory is not None
    assert isinstance(copy.models, ModelRegistry)
    assert copy.models.list() == []
    assert type(copy.jobs).__name__ == "JobCatalog"
    assert copy.artifact_root == store.artifact_root


def test_a_store_opened_without_factories_says_to_use_pr_connect(url: str) -> None:
    store = datastore.connect(url)
    for attribute, what in (("models", "model registry"), ("jobs", "job catalog")):
        with pytest.raises(ConfigError) as caught:
            getattr(store, attribute)
        message = str(caught.value)
        assert f"store.{attribute} needs a {what}" in message
        assert "pinnacle_ray.connect(url)" in message
    # Pickled, it still has none (and still says so).
    copy = pickle.loads(pickle.dumps(store))
    with pytest.raises(ConfigError, match=r"pinnacle_ray\.connect\(url\)"):
        _ = copy.models


def test_the_store_builds_models_from_its_own_factory_once(url: str) -> None:
    made: list[object] = []

    def factory(store: object) -> dict[str, object]:
        made.append(store)
        return {"store": store}

    store = datastore.connect(url, models=factory)
    assert store.models is store.models
    assert made == [store]


def test_store_of_names_a_querys_datastore_and_nothing_else(url: str) -> None:
    store = pr.connect(url)
    store.write("houses", [{"id": 1, "area": 50.0}], key="id")
    assert datastore.store_of(store.table("houses")) is store
    assert datastore.store_of(pd.DataFrame({"id": [1]})) is None
    assert datastore.store_of(None) is None


def test_unpickling_a_store_loads_neither_registry_nor_jobs_until_used(url: str) -> None:
    store = pr.connect(url)
    store.write("houses", [{"id": 1, "area": 50.0}], key="id")
    script = (
        "import pickle, sys\n"
        "store = pickle.loads(sys.stdin.buffer.read())\n"
        "print(store.table('houses').to_arrow().num_rows)\n"
        "print('pinnacle_ray.registry' in sys.modules, 'pinnacle_ray.jobs' in sys.modules)\n"
        "store.models\n"
        "print('pinnacle_ray.registry' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(store),
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.decode().split() == ["1", "False", "False", "True"]


def _imports(path: Path, package: str) -> set[str]:
    """Modules ``path`` imports (TYPE_CHECKING and function-level ones included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_datastore_room_has_no_import_circles() -> None:
    modules: dict[str, set[str]] = {}
    paths = {}
    for path in (PACKAGE / "datastore").rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        paths[name] = (path, name if is_package else name.rsplit(".", 1)[0])
    for name, (path, package) in paths.items():
        modules[name] = {m for m in _imports(path, package) if m in paths and m != name}

    circles = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(modules[name]):
            if state.get(target) == "open":
                circles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
    assert circles == [], "import circles in pinnacle_ray/datastore: " + "; ".join(
        " -> ".join(c) for c in circles
    )


def test_pr_connect_says_store_models_is_the_model_registry_so_an_ide_completes_it():
    """``store.models`` is typed by the datastore room only as what it reads
    (``ModelVersions``); ``pr.connect`` parametrizes the store with the classes its
    factories build, so a type checker sees ``ModelRegistry`` and ``JobCatalog``."""
    import typing

    from pinnacle_ray import _connect
    from pinnacle_ray.datastore import MongoDatastore, SqlDatastore
    from pinnacle_ray.jobs.catalog import JobCatalog
    from pinnacle_ray.registry.registry import ModelRegistry

    names = dict(
        vars(_connect),
        SqlDatastore=SqlDatastore,
        MongoDatastore=MongoDatastore,
        ModelRegistry=ModelRegistry,
        JobCatalog=JobCatalog,
    )
    returned = typing.get_type_hints(_connect.connect, names)["return"]
    stores = typing.get_args(returned)
    assert [typing.get_origin(s) for s in stores] == [SqlDatastore, MongoDatastore]
    assert all(typing.get_args(s) == (ModelRegistry, JobCatalog) for s in stores)
    # The property's type is the store's first parameter, not a fixed Protocol.
    models_type = typing.get_type_hints(SqlDatastore.models.fget)["return"]
    assert models_type is SqlDatastore.__parameters__[0]
