"""A missing optional package fails where it is used, with a MissingExtra naming the extra
to install (``pip install "pinnacle-ray[xgboost]"``), never at ``import pinnacle_ray``.

A missing package is simulated by ``None`` in ``sys.modules`` (Python then refuses to import
it, as when it is not installed), or, where whole modules of the package must import
afresh, in a child interpreter whose import system refuses every optional package; no fresh
venv is needed: ``test_core_install.py`` checks a real install without extras (opt-in).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

import pinnacle_ray as pr
from pinnacle_ray import trainers
from pinnacle_ray._internal import extras as _extras
from pinnacle_ray.errors import MissingExtra
from pinnacle_ray.registry import flavors
from pinnacle_ray.registry.xgboost_flavor import load_booster

pytestmark = pytest.mark.unit


def _uninstall(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` (and what was imported from them) unimportable for this test."""
    for name in list(sys.modules):
        if name.partition(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_pip_command_of_the_packages_extra(monkeypatch):
    _uninstall(monkeypatch, "xgboost")
    with pytest.raises(MissingExtra) as info:
        _extras.require("xgboost", purpose="pr.XGBoostTrainer")
    message = str(info.value)
    assert 'pip install "pinnacle-ray[xgboost]"' in message
    assert message.startswith("pr.XGBoostTrainer needs the optional package 'xgboost'")
    assert info.value.extra == "xgboost" and info.value.name == "xgboost"
    assert isinstance(info.value, ImportError) and isinstance(info.value, pr.PinnacleError)


def test_require_of_a_submodule_names_its_packages_extra(monkeypatch):
    _uninstall(monkeypatch, "skops")
    with pytest.raises(MissingExtra, match=r'pip install "pinnacle-ray\[sklearn\]"'):
        _extras.require("skops.io")


def test_the_callers_extra_wins_over_the_packages_own(monkeypatch):
    """The Hugging Face trainer asks for ``hf`` also when torch is what is missing: the
    ``torch`` extra alone would not make it work."""
    _uninstall(monkeypatch, "torch")
    with pytest.raises(MissingExtra, match=r"pinnacle-ray\[hf\]") as info:
        _extras.require("torch", extra="hf")
    assert info.value.extra == "hf" and info.value.name == "torch"


def test_a_missing_module_that_no_extra_installs_stays_a_plain_import_error():
    with pytest.raises(ModuleNotFoundError) as info:
        _extras.require("pinnacle_no_such_module_xyz")
    assert not isinstance(info.value, MissingExtra)


def test_needs_extra_turns_only_missing_optional_packages_into_missing_extra(monkeypatch):
    _uninstall(monkeypatch, "pymongo")
    with pytest.raises(MissingExtra, match=r"pinnacle-ray\[mongo\]"), _extras.needs_extra():
        import pymongo  # noqa: F401
    with pytest.raises(ValueError, match="unrelated"), _extras.needs_extra("mongo"):
        raise ValueError("unrelated")


def test_every_extra_named_is_one_pyproject_declares():
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(_extras.EXTRA_OF.values()) <= set(declared)
    assert set(trainers._EXTRAS.values()) <= set(declared)
    assert set(flavors._EXTRAS.values()) <= set(declared)


def test_installed_is_false_for_a_missing_package_and_never_raises(monkeypatch):
    _uninstall(monkeypatch, "connectorx")
    assert not _extras.installed("connectorx")
    assert not _extras.installed("connectorx.submodule")
    assert _extras.installed("pyarrow")


def test_missing_extra_survives_pickling_as_ray_sends_errors_between_processes():
    error = MissingExtra('needs "pinnacle-ray[torch]"', extra="torch", module="torch")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.extra, copy.name) == (
        MissingExtra,
        str(error),
        "torch",
        "torch",
    )


# Run in a fresh interpreter whose optional packages cannot be imported (a finder refuses
# them, as Python does for a package that is not installed): what a core install does.
WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys

    OPTIONAL = {OPTIONAL!r}

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in OPTIONAL:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())

    import pinnacle_ray as pr
    from pinnacle_ray.errors import MissingExtra

    store = pr.connect(f"sqlite:///{{sys.argv[1]}}")
    store.write("t", [{{"id": i, "x": float(i)}} for i in range(5)], key="id")
    assert store.table("t").count() == 5
    for name in ["XGBoostTrainer", "SklearnTrainer", "TorchTrainer", "HuggingFaceTrainer"]:
        try:
            getattr(pr, name)(features=["x"], label="y")
        except MissingExtra as exc:
            print(name, exc.extra, exc.name, str(exc))
    try:
        pr.connect("mongodb://127.0.0.1:1/test")
    except MissingExtra as exc:
        print("mongodb", exc.extra, exc.name, str(exc))
    """
).format(OPTIONAL=sorted(_extras.EXTRA_OF))


def test_without_extras_sqlite_works_and_each_trainer_names_the_extra_it_needs(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, str(tmp_path / "core.db")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    failures = {line.split()[0]: line.split(maxsplit=3)[1:] for line in done.stdout.splitlines()}
    assert {name: found[:2] for name, found in failures.items()} == {
        "XGBoostTrainer": ["xgboost", "xgboost"],
        "SklearnTrainer": ["sklearn", "sklearn"],
        "TorchTrainer": ["torch", "torch"],
        "HuggingFaceTrainer": ["hf", "torch"],
        "mongodb": ["mongo", "pymongo"],
    }
    assert 'pip install "pinnacle-ray[xgboost]"' in failures["XGBoostTrainer"][2]
    assert 'pip install "pinnacle-ray[hf]"' in failures["HuggingFaceTrainer"][2]


def test_connecting_to_postgresql_without_psycopg_names_the_postgres_extra(monkeypatch):
    _uninstall(monkeypatch, "psycopg")
    with pytest.raises(MissingExtra, match=r'pip install "pinnacle-ray\[postgres\]"'):
        pr.connect("postgresql+psycopg://u@127.0.0.1:1/db")


def test_loading_an_xgboost_model_without_xgboost_names_the_extra(monkeypatch, tmp_path):
    _uninstall(monkeypatch, "xgboost")
    with pytest.raises(MissingExtra, match=r"pinnacle-ray\[xgboost\]"):
        load_booster(tmp_path)


def test_a_sqlite_file_without_the_fast_sqlite_extra_reads_and_stages_the_plain_way(
    monkeypatch, tmp_path
):
    from pinnacle_ray.datastore.sql.sqlite.staging import staging_folder

    _uninstall(monkeypatch, "adbc_driver_sqlite", "adbc_driver_manager", "connectorx")
    store = pr.connect(f"sqlite:///{tmp_path / 'plain.db'}")
    assert store._fast_reader() == "dbapi"
    assert staging_folder(store) is None
    store.write("t", [{"id": i, "x": float(i)} for i in range(5)], key="id")
    assert store.table("t").count() == 5


def test_the_mongo_stand_in_without_mongomock_names_the_testing_extra(monkeypatch):
    from pinnacle_ray.testing.mongo import MongoStandIn

    _uninstall(monkeypatch, "mongomock")
    with pytest.raises(MissingExtra, match=r'pip install "pinnacle-ray\[testing\]"'):
        MongoStandIn()
