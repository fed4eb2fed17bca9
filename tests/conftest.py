"""Shared fixtures: one local Ray per session, and a datastore per backend.

SQLite always runs. PostgreSQL and MariaDB run against the servers on 127.0.0.1 (override
with PINNACLE_TEST_PG_URL / PINNACLE_TEST_MYSQL_URL) and skip loudly when unreachable.
Tests marked ``with_mongo`` also run on MongoDB: the server at PINNACLE_TEST_MONGO_URI
(a ``mongodb://.../database`` URL) when set, else the session's wire-protocol stand-in
(``pinnacle_ray._mongo_standin``, mongomock behind a localhost port that Ray's worker
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

import pinnacle_ray as pr
from pinnacle_ray._quiet_logging import worker_env
from pinnacle_ray._runtime import keep_idle_workers

PG_URL = os.environ.get("PINNACLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("PINNACLE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
MONGO_URI = os.environ.get("PINNACLE_TEST_MONGO_URI")
SERVERS = {"postgresql": PG_URL, "mariadb": MYSQL_URL}
SQL_BACKENDS = ["sqlite", "postgresql", "mariadb"]
_unreachable: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def ray_session() -> Iterator[None]:
    """One local Ray instance for the whole session, sized like the target machine."""
    if not ray.is_initialized():
        keep_idle_workers()
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        ray.init(
            num_cpus=2,
            include_dashboard=True,  # Ray Train polls the State API it serves
            logging_level=logging.WARNING,
            object_store_memory=1_000_000_000,
            # Train loops defined in test modules must import in Ray's worker processes.
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent), **worker_env()}},
        )
    yield
    ray.shutdown()


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    explicit = any(
        "backend"
        in (m.args[0].replace(" ", "").split(",") if isinstance(m.args[0], str) else m.args[0])
        for m in metafunc.definition.iter_markers("parametrize")
    )
    if "backend" in metafunc.fixturenames and not explicit:
        mongo = metafunc.definition.get_closest_marker("with_mongo") is not None
        metafunc.parametrize("backend", SQL_BACKENDS + (["mongo"] if mongo else []), indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
    from pinnacle_ray._mongo_standin import MongoStandIn

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
        monkeypatch.delenv("PINNACLE_SQL_READER", raising=False)
    else:
        monkeypatch.setenv("PINNACLE_SQL_READER", request.param)
    return request.param
