"""Non-ASCII and odd identifiers end to end on SQLite, PostgreSQL, MariaDB and MongoDB (the
stand-in): a table named ``ünïcödé 表 ...`` with columns in Cyrillic, CJK with a space, quotes
and reserved words is written, read in parallel through Ray Data, trained on, registered
under a non-ASCII model name and predicted into another such table; names at each backend's
length limit work, and one past it (or a name the backend cannot hold) is an
``InvalidIdentifier`` that says why.

Before the fix, reading such a table through Ray Data failed with a raw
``UnicodeEncodeError`` inside Ray's metrics (the datasource's name became a metrics tag).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import ray.tune
import sqlalchemy as sa
from conftest import _server_store
from sklearn.linear_model import LinearRegression

import pinnacle_ray as pr
from pinnacle_ray._internal.names import FIELD_LIMITS, IDENTIFIER_LIMITS

KEY = "ключ"
FEATURES = ["größe", "名前 x", 'it\'s "q"', "select"]
LABEL = "order"
N = 24


def rows() -> list[dict[str, Any]]:
    """Rows whose label is an exact linear function of the features."""
    out = []
    for i in range(N):
        f = [float(i), float(i % 5), float((3 * i) % 7), 1.5 * (i % 3)]
        out.append({KEY: i, **dict(zip(FEATURES, f, strict=True)), LABEL: 2 * f[0] - f[1] + 0.5})
    return out


@dataclass
class Backend:
    """One datastore for the module and the tables it made (dropped at the end)."""

    name: str
    store: Any
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    made: list[str] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        return self.store.identifier_dialect

    def table(self, base: str) -> str:
        """A unique table name (server databases are shared by concurrent test runs)."""
        name = f"{base} {self.tag}"
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        if self.name == "mongo":
            self.store.drop(name)
            return
        with self.store._engine.begin() as conn:
            conn.execute(sa.schema.DropTable(sa.Table(name, sa.MetaData()), if_exists=True))


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb", "mongo"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    folder = tmp_path_factory.mktemp(f"unicode-{request.param}")
    if request.param == "sqlite":
        store = pr.connect(folder / "ünï 表.db")
    elif request.param == "mongo":
        store = pr.connect(request.getfixturevalue("mongo_uri"), artifact_root=folder / "art")
    else:
        store = _server_store(request.param)
    backend = Backend(request.param, store)
    yield backend
    for name in backend.made:
        with contextlib.suppress(pr.PinnacleError):
            backend.drop(name)
    store.close()


@pytest.fixture(scope="module")
def written(db: Backend) -> str:
    """The ``ünïcödé 表`` table of this backend, written once."""
    table = db.table("ünïcödé 表")
    assert db.store.write(table, rows(), key=KEY) == N
    return table


def _by_key(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r[KEY])


@pytest.mark.timeout(300)
def test_a_unicode_table_and_columns_read_back_in_the_driver_and_through_ray_data(db, written):
    q = db.store.table(written, columns=[KEY, *FEATURES, LABEL], key=KEY)
    assert _by_key(q.to_arrow().to_pylist()) == rows()
    dataset = q.to_dataset(shards=2)
    assert _by_key(dataset.take_all()) == rows()
    assert q.count() == N
    filtered = db.store.table(written, columns=[KEY, "größe"], where={"名前 x": 0.0}, key=KEY)
    assert sorted(r[KEY] for r in filtered.to_dataset().take_all()) == [
        r[KEY] for r in rows() if r["名前 x"] == 0.0
    ]


@pytest.mark.timeout(300)
def test_a_model_trains_registers_and_predicts_under_unicode_names(db, written):
    q = db.store.table(written, columns=[KEY, *FEATURES, LABEL], key=KEY)
    name = f"größe-表-{db.tag}"
    trainer = pr.SklearnTrainer(LinearRegression(), features=FEATURES, label=LABEL, name=name)
    result = trainer.fit(q)
    assert result.name == name and result.version == 1
    assert result.metrics["valid/rmse"] < 1e-6
    assert [v.name for v in db.store.models.list(name)] == [name]
    output = db.table("vorhersage 表")
    written_rows = pr.predict(name, db.store.table(written, key=KEY), output=output).rows
    assert written_rows == N
    got = _by_key(db.store.table(output).to_arrow().to_pylist())
    assert [r[KEY] for r in got] == [r[KEY] for r in rows()]
    for prediction, row in zip(got, rows(), strict=True):
        assert prediction["model"] == name
        assert prediction["prediction"] == pytest.approx(row[LABEL], abs=1e-6)


def _at_limit(db: Backend, table: bool) -> str:
    """A non-ASCII name exactly at this backend's limit (bytes or characters)."""
    limits = IDENTIFIER_LIMITS if table else {**IDENTIFIER_LIMITS, **FIELD_LIMITS}
    limit, unit, _ = limits[db.dialect]
    stem = f"t{db.tag}ü" if table else "ü"
    used = len(stem.encode()) if unit == "bytes" else len(stem)
    fill = "é" * ((limit - used) // 2) + "x" * ((limit - used) % 2) if unit == "bytes" else (
        "é" * (limit - used))  # fmt: skip
    name = stem + fill
    size = len(name.encode()) if unit == "bytes" else len(name)
    assert size == limit
    return name


@pytest.mark.timeout(300)
def test_names_at_the_backends_length_limit_work_and_one_more_is_refused(db):
    table, column = _at_limit(db, table=True), _at_limit(db, table=False)
    db.made.append(table)
    data = [{"id": i, column: float(i)} for i in range(4)]
    assert db.store.write(table, data, key="id") == 4
    q = db.store.table(table, columns=["id", column], key="id")
    assert sorted(q.to_dataset().take_all(), key=lambda r: r["id"]) == data
    limit, unit, _ = IDENTIFIER_LIMITS[db.dialect]
    with pytest.raises(pr.InvalidIdentifier, match=f"the limit is {limit} {unit}"):
        db.store.write(table + "x", data, key="id")
    field_limit, field_unit, _ = {**IDENTIFIER_LIMITS, **FIELD_LIMITS}[db.dialect]
    with pytest.raises(pr.InvalidIdentifier, match=f"the limit is {field_limit} {field_unit}"):
        db.store.write(db.table("long column"), [{"id": 1, column + "x": 1.0}], key="id")
    assert table + "x" not in db.store.tables()


def test_a_name_the_backend_cannot_hold_is_refused_saying_why(db):
    before = db.store.tables()
    refusals = {
        "sqlite": [],
        "postgresql": [("表" * 22, "66 bytes long; the limit is 63 bytes")],
        "mysql": [
            ("emoji 😀", "Basic Multilingual Plane"),
            ("表" * 51, "at most 50 such characters"),
        ],
        "mongodb": [("a$b", "not allowed in MongoDB"), ("system.x", "not allowed in MongoDB")],
    }[db.dialect]
    refusals.append(("a\nb", "control character"))
    for name, reason in refusals:
        with pytest.raises(pr.InvalidIdentifier, match=reason):
            db.store.write(name, [{"id": 1}], key="id")
    assert db.store.tables() == before


@pytest.mark.timeout(600)
def test_ray_train_and_tune_run_under_non_ascii_model_and_sweep_names(tmp_path):
    """XGBoost on Ray Train and a sweep on Ray Tune: their run names (Ray metrics tags)
    are made ASCII from the model and sweep names; the registry keeps the names as given."""
    store = pr.connect(tmp_path / "表.db")
    store.write("ünïcödé 表", rows(), key=KEY)
    q = store.table("ünïcödé 表", key=KEY)
    trainer = pr.XGBoostTrainer(
        params={"objective": "reg:squarederror", "max_depth": 2},
        features=FEATURES,
        label=LABEL,
        num_boost_round=3,
        name="モデル-ü",
    )
    result = trainer.fit(q)
    assert result.version == 1 and store.models.get("モデル-ü", handle="latest").name == "モデル-ü"
    sweep = pr.sweep(
        pr.SklearnTrainer(LinearRegression(), features=FEATURES, label=LABEL, name="größe"),
        {"estimator__fit_intercept": ray.tune.grid_search([True])},
        train=q,
        metric="valid/rmse",
        name="größe-sweep-表",
    )
    assert sweep.version == 1 and sweep.sweep == "größe-sweep-表"
    assert [t.sweep for t in store.models.sweeps("größe-sweep-表")] == ["größe-sweep-表"]
    done = pr.predict("モデル-ü", q, output="予測 ü")
    assert done.rows == N and store.table("予測 ü").count() == N
