"""Shared fixtures: one local Ray per session, and a datastore per backend.

SQLite always runs. PostgreSQL and MariaDB run against the servers on 127.0.0.1 (override
with PINNACLE_TEST_PG_URL / PINNACLE_TEST_MYSQL_URL) and skip loudly when unreachable.
Tests marked ``with_mongo`` also run on MongoDB: the server at PINNACLE_TEST_MONGO_URI
(a ``mongodb://.../database`` URL) when set, else the session's wire-protocol stand-in
(``pinnacle_ray.testing.mongo``, mongomock behind a localhost port that Ray's worker
processes reach as they would a real server).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import sqlalchemy as sa
from multinode_s3 import LocalS3, start_s3
from ray_cluster import LocalCluster, start_head
from ray_runs import RayRuns

import pinnacle_ray as pr
from pinnacle_ray._internal.quiet_logging import worker_env
from pinnacle_ray._internal.runtime import _joined, _raylet_environment, keep_idle_workers

PG_URL = os.environ.get("PINNACLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("PINNACLE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
MONGO_URI = os.environ.get("PINNACLE_TEST_MONGO_URI")
SERVERS = {"postgresql": PG_URL, "mariadb": MYSQL_URL}
SQL_BACKENDS = ["sqlite", "postgresql", "mariadb"]
_unreachable: dict[str, str] = {}


_SESSION_RAY: list[bool] = []  # [True] once this session started its Ray


def start_session_ray() -> None:
    """One local Ray instance for the whole session, sized like the target machine; started
    before the first test outside the ``unit`` tier sets up any fixture (module fixtures that
    fit included), so a unit-only run never starts Ray; shut down when the session ends.

    The workers' settings (this folder on PYTHONPATH, so train loops defined in test modules
    import in Ray's workers; the quiet logging of ``worker_env``) go through the raylet's
    environment while ``ray.init`` runs, as ``ensure_ray`` does, not through a job
    ``runtime_env``: with one, every worker process started through Ray's ``setup_worker.py``
    (one more Python process importing Ray) after a runtime-env agent round trip."""
    if ray.is_initialized():
        return
    keep_idle_workers()
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    paths = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    workers = {"PYTHONPATH": os.pathsep.join(p for p in paths if p), **_joined(worker_env())}
    with _raylet_environment(workers):
        ray.init(
            num_cpus=2,
            include_dashboard=True,  # Ray Train polls the State API it serves
            logging_level=logging.WARNING,
            object_store_memory=1_000_000_000,
        )
    _SESSION_RAY.append(True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _SESSION_RAY:
        ray.shutdown()


# Test tiers (docs/testing.md; markers registered in pyproject.toml): every test belongs to
# exactly one. ``unit``: no Ray, no database server (pure functions, specs, errors; SQLite
# files allowed); ``data``: reads, writes, the registry and predictions on real backends;
# ``train``: fits and sweeps; ``cluster``: a Ray of its own (a cluster, or a child process's
# local Ray), jobs, faults, the CLI on a cluster. A module's tier is set here or by its
# ``pytestmark``; a test marked with another tier keeps its own (the closest marker wins). A
# ``unit`` test parametrized on a server backend counts as ``data``.
TIERS = ("unit", "data", "train", "cluster")
MODULE_TIER = {
    "test_autoscaling": "cluster",
    "test_bad_input": "data",
    "test_bench_all": "unit",
    "test_blob_artifacts": "data",
    "test_bounded_disk": "train",
    "test_bulk_write": "unit",
    "test_checkpoint_state": "unit",
    "test_cli": "train",
    "test_cli_runs": "train",
    "test_cluster_configs": "unit",
    "test_cluster_faults": "cluster",
    "test_continual": "train",
    "test_elastic": "train",
    "test_errors": "unit",
    "test_faults": "cluster",
    "test_first_batch": "unit",
    "test_gpu_correctness": "train",
    "test_hf_causal_lm": "train",
    "test_hf_models_by_name": "train",
    "test_hf_predict_once": "data",
    "test_hf_spec": "train",
    "test_hf_token_classification": "train",
    "test_hf_tokenize_map": "unit",
    "test_history": "train",
    "test_huggingface_trainer": "train",
    "test_ingest": "unit",
    "test_job_records": "unit",
    "test_job_stop": "cluster",
    "test_jobs_cluster": "cluster",
    "test_load": "data",
    "test_mlflow": "train",
    "test_model_card": "train",
    "test_mongo": "data",
    "test_mongo_schema": "data",
    "test_multinode": "cluster",
    "test_name_validation": "train",
    "test_predict": "data",
    "test_progress": "train",
    "test_promote": "unit",
    "test_quickstart": "cluster",  # the quickstart starts a Ray of its own
    "test_ray_job_submit": "cluster",
    "test_ray_runs": "unit",
    "test_read": "data",
    "test_registration_handles": "unit",
    "test_replay": "unit",
    "test_registry": "unit",
    "test_resources": "unit",
    "test_run_cleanup": "data",
    "test_run_storage": "train",
    "test_secrets_jobs": "cluster",
    "test_security": "train",
    "test_shards": "unit",
    "test_shuffle": "train",
    "test_side_effects": "data",
    "test_sklearn_trainer": "train",
    "test_specs": "unit",
    "test_sqlite_connectorx": "data",
    "test_submit": "cluster",
    "test_sweep": "train",
    "test_sweep_params": "unit",
    "test_tiers": "unit",
    "test_torch_loop_features": "train",
    "test_torch_managed": "train",
    "test_torch_seed_params": "train",
    "test_torch_trainer": "train",
    "test_trusted_modules": "data",
    "test_unicode_identifiers": "train",
    "test_write": "data",
    "test_xgboost_trainer": "train",
}


def _tier_of(item: pytest.Item) -> str:
    # The closest marker (the test's, then its class's and module's), else the module's entry;
    # unlisted and unmarked, the tier that refuses nothing (test_tiers names such a module).
    own = [m.name for m in item.iter_markers() if m.name in TIERS]
    module = item.module.__name__ if item.module else ""
    tier = own[0] if own else MODULE_TIER.get(module, "train")
    params = getattr(getattr(item, "callspec", None), "params", {})
    if tier == "unit" and params.get("backend", params.get("db")) in (*SERVERS, "mongo"):
        tier = "data"
    return tier


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its tier marker before ``-m`` selects, then drop the cases that mean
    nothing on a backend (below)."""
    for item in items:
        tier = _tier_of(item)
        item.own_markers[:] = [m for m in item.own_markers if m.name not in TIERS]
        item.add_marker(tier)
        item.stash[_TIER] = tier
    _drop_meaningless(config, items)


_TIER = pytest.StashKey[str]()


class RayInUnitTest(RuntimeError):
    """A test of the ``unit`` tier reached Ray."""


_GUARD = pytest.StashKey[pytest.MonkeyPatch]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of the test (a module fixture that fits too): start the session's
    Ray for a test outside the ``unit`` tier; in a ``unit`` test, make any start of (or call
    into) Ray fail until its fixtures are torn down, so a test that needs Ray cannot stay
    there."""
    if item.stash.get(_TIER, "train") != "unit":
        start_session_ray()
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise RayInUnitTest(
            f"{item.nodeid} is in the unit tier but started Ray: mark it data, train or "
            "cluster (MODULE_TIER in tests/conftest.py, or a marker on the test)"
        )

    guard = item.stash[_GUARD] = pytest.MonkeyPatch()
    guard.setattr(ray, "init", refuse)
    # Ray's own calls (ray.get, remote functions, Ray Data) start Ray when it is not running;
    # seen as not running, they reach the refusal above even after another tier started it.
    guard.setattr(ray, "is_initialized", lambda: False)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After the test's fixtures are torn down: a unit test's guard is lifted."""
    guard = item.stash.get(_GUARD, None)
    if guard is not None:
        guard.undo()


def _server_store(backend: str) -> pr.SqlDatastore:
    if backend in _unreachable:
        pytest.skip(_unreachable[backend])
    try:
        return pr.connect(SERVERS[backend])
    except pr.DatastoreError as exc:
        _unreachable[backend] = f"!!! {backend} server not reachable, its tests are SKIPPED: {exc}"
        pytest.skip(_unreachable[backend])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "with_mongo: a backend-agnostic test that also runs on MongoDB"
    )
    config.addinivalue_line("markers", "sql_only: not collected for MongoDB (SQL-only API)")
    if config.getoption("--ray-runs"):
        config.pluginmanager.register(RayRuns(), "ray_runs")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ray-runs",
        action="store_true",
        help="count the Ray Train and Ray Tune runs each test module starts, and their "
        "seconds, in the terminal summary (tests/ray_runs.py)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    explicit = any(
        "backend"
        in (m.args[0].replace(" ", "").split(",") if isinstance(m.args[0], str) else m.args[0])
        for m in metafunc.definition.iter_markers("parametrize")
    )
    if "backend" in metafunc.fixturenames and not explicit:
        mongo = metafunc.definition.get_closest_marker("with_mongo") is not None
        metafunc.parametrize("backend", SQL_BACKENDS + (["mongo"] if mongo else []), indirect=True)


def _drop_meaningless(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The SQL reader choice means nothing on MongoDB: run its Mongo case once; "adbc" differs
    # from "fast" only on SQLite. A test marked sql_only (a module fixture's backends include
    # MongoDB) has no Mongo case at all.
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        backend = params.get("backend", params.get("db"))
        mongo = backend == "mongo"
        if (mongo and (params.get("reader") == "dbapi" or item.get_closest_marker("sql_only"))) or (
            params.get("reader") == "adbc" and backend != "sqlite"
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """A MongoDB URL: PINNACLE_TEST_MONGO_URI, else a stand-in started for the session."""
    if MONGO_URI:
        yield MONGO_URI
        return
    from pinnacle_ray.testing.mongo import MongoStandIn

    with MongoStandIn() as server:
        yield server.uri("pinnacle_test")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """A local S3 server (moto) on 127.0.0.1 with one bucket, ``s3_server.bucket``; clients
    reach it through ``s3_server.env`` (AWS_ENDPOINT_URL and dummy credentials)."""
    server = start_s3(log=tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A Ray cluster of the module's own (``ray start --head``, 2 CPUs, token auth on), for
    tests that submit Ray jobs; stopped by its processes' ids after the module."""
    head = start_head(num_cpus=2)
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class Tables:
    """Unique table names for one test, dropped afterwards (server databases are shared)."""

    def __init__(self, store: pr.SqlDatastore) -> None:
        self.store = store
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []

    def __call__(self, name: str = "data") -> str:
        full = f"{self.prefix}_{name}"
        self.made.append(full)
        return full

    def drop_all(self) -> None:
        if isinstance(self.store, pr.MongoDatastore):
            for name in self.made:
                self.store.drop(name)
            return
        engine = self.store._engine
        with engine.begin() as conn:
            for name in self.made:
                table = sa.Table(name, sa.MetaData())
                conn.execute(sa.schema.DropTable(table, if_exists=True))


@pytest.fixture
def store(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[pr.SqlDatastore]:
    """A datastore on each backend; SQLite in a fresh file."""
    if backend == "mongo":
        s = pr.connect(request.getfixturevalue("mongo_uri"), artifact_root=tmp_path / "art")
    elif backend == "sqlite":
        s = pr.connect(tmp_path / "test.db")
    else:
        s = _server_store(backend)
    yield s
    s.close()


@pytest.fixture
def tables(store: pr.SqlDatastore) -> Iterator[Tables]:
    t = Tables(store)
    yield t
    t.drop_all()


@pytest.fixture(params=["fast", "adbc", "dbapi"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a read test through each reader: the default fast one (connectorx where SQLite
    allows it, else ADBC), ADBC alone (SQLite only), and the DBAPI fallback."""
    if request.param == "fast":
        monkeypatch.delenv("PINNACLE_RAY_SQL_READER", raising=False)
    else:
        monkeypatch.setenv("PINNACLE_RAY_SQL_READER", request.param)
    return request.param
