"""Bad input tried: a property-based sweep (hypothesis) through the public API.

Table and column names, ``where`` values, ``store.sql`` parameters, data written with
``store.write``, trainers' feature/label arguments and run specs on the CLI. Every input
either works exactly (what was written reads back as written; a where filter returns exactly
the rows whose value equals it) or raises a ``PinnacleError`` subclass: never a raw driver
exception, never an injected statement (a canary table written first is unchanged at the
end), never a partial write (a refused write leaves its table as it was, or absent).

The sweeps are derandomized (the same inputs on every run) and bounded; the number of inputs
tried is printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from conftest import _server_store
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import pinnacle_ray as pr
from pinnacle_ray.cli import main
from pinnacle_ray.errors import PinnacleError

TRIED: Counter[str] = Counter()
CANARY = f"canary_{uuid.uuid4().hex[:8]}"
CANARY_ROWS = [{"id": 1, "note": "keep me"}, {"id": 2, "note": "and me"}]


def sweep(examples: int) -> settings:
    """Bounded, repeatable hypothesis settings (the store lives at module scope)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# -- inputs --------------------------------------------------------------------------------
INJECTIONS = [
    f"1; DROP TABLE {CANARY}; --",
    f"'; DELETE FROM {CANARY}; --",
    f"x'); DROP TABLE {CANARY};--",
    f'x"; DROP TABLE {CANARY}; --',
    f"x`; DROP TABLE {CANARY}; --",
    "' OR 1=1 --",
    "' OR '1'='1",
    '" OR ""="',
    "1 OR 1=1",
    "\\'; --",
    "%s",
    "%(id)s",
    ":id",
    "?",
    "$1",
]
NAMES = [
    "order", "select", "group", "table", "from", "where", "user", "key", "index", "limit",
    "a'b", 'a"b', "a`b", "a;b", "a\\b", "a b", "a.b", "-- x", "/* x */", "%s", "%(x)s", ":p",
    "?", "$1", "$x", "_id", "größe", "表", "😀", "Ωmega", "a\tb", "a\nb", " lead", "trail ",
    "", "   ", "\x00", "a\x00b", "x" * 63, "x" * 64, "x" * 128, "x" * 255, "é" * 32, "é" * 31,
    f"{CANARY}; DROP TABLE {CANARY}", "ID", "Id", "sqlite_master", "system.x", ".",
    # Non-ASCII and odd names a real database holds, some at a backend's length limit
    # (PostgreSQL 63 bytes, MySQL/MariaDB 64 characters and 50 CJK in a table name).
    "ünïcödé 表", "名前 x", "ключ", "नमस्ते", "it's \"q\"", "order by", "é" * 31 + "x",
    "表" * 21, "表" * 50, "ü" * 64, "x" * 62 + "ü", "a\u0301", "ß", "İ", "ǅ",
]  # fmt: skip
# Printable text of every script (letters, marks, digits, punctuation, symbols, spaces).
unicode_names = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs")),
    min_size=1,
    max_size=24,
)
names = st.one_of(
    st.sampled_from(NAMES),
    st.text(min_size=0, max_size=12),
    st.text(alphabet="abcXYZ_0123 '\"`;.-", min_size=1, max_size=70),
    unicode_names,
)


def must_hold(db: Backend, name: str, table: bool) -> bool:
    """Whether ``name`` is a table (or column) name ``db`` can hold, so refusing it is a bug:
    printable text of any script without surrounding spaces, within the backend's limits
    (PostgreSQL 63 bytes; MySQL/MariaDB 64 characters of the BMP, a table's file name at
    most 250 bytes), not reserved (SQLite's ``sqlite_``; MongoDB's ``$``, ``system.``, dots)
    and not the same column as ``id`` under the backend's comparison."""
    if not name or name != name.strip() or len(name.encode("utf-8", "surrogatepass")) > 63:
        return False
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return False
    folded = "".join(
        c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)
    ).casefold()
    if db.name == "sqlite":
        return not name.casefold().startswith("sqlite_") and (table or name.casefold() != "id")
    if db.name == "mariadb":
        # A table lives in a file named after it: at most 5 bytes per character that is not
        # an ASCII letter, digit or '_', and the file name holds 250.
        plain = sum(c.isascii() and (c.isalnum() or c == "_") for c in name)
        if any(ord(c) > 0xFFFF for c in name) or (table and plain + 5 * (len(name) - plain) > 250):
            return False
        return table or folded != "id"
    if db.name == "mongo":
        if table:
            return (
                "$" not in name
                and not name.startswith(("system.", "."))
                and not (name.endswith("."))
            )
        return not name.startswith("$") and "." not in name and name != "_id"
    return True


scalars = st.one_of(
    st.none(),
    st.sampled_from(INJECTIONS),
    st.sampled_from(["a", "A", "á", "a ", "", "1", "größe 表 😀", "\x00", "a\x00b"]),
    st.text(max_size=8),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**30]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.5, -2.25, 1e300]),
    st.booleans(),
    st.binary(max_size=4),
)
where_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.tuples(scalars, scalars),
    st.frozensets(st.sampled_from(["a", "A", "", None, 1, 0, 1.5]), max_size=3),
    st.lists(st.lists(scalars, max_size=2), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=4), scalars, max_size=2),
    st.sampled_from([{"$gt": ""}, {"$ne": None}, {"$where": "1 == 1"}, {"$exists": True}]),
)


def kind(value: Any) -> str:
    """How a database tells values apart: numbers compare across int/float, nothing else."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    return type(value).__name__


def same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same value of the same kind (NaN equals NaN here)."""
    if a is None or b is None:
        return a is None and b is None
    if kind(a) != kind(b):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def matches(stored: Any, value: Any) -> bool:
    """Whether a row holding ``stored`` should be returned by ``where={col: value}``."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(matches(stored, v) for v in value)
    if value is None or stored is None:
        return value is None and stored is None
    if isinstance(value, float) and math.isnan(value):
        return False
    return same(stored, value)


# -- stores --------------------------------------------------------------------------------
@dataclass
class Backend:
    """One datastore for the module, with the canary and the rows the where sweep reads."""

    name: str
    store: Any
    rows_table: str
    rows: list[dict[str, Any]]
    made: list[str] = field(default_factory=list)

    @property
    def is_mongo(self) -> bool:
        return self.name == "mongo"

    def drop(self, table: str) -> None:
        if self.is_mongo:
            self.store.drop(table)
            return
        with self.store._engine.begin() as conn:
            conn.execute(sa.schema.DropTable(sa.Table(table, sa.MetaData()), if_exists=True))

    def read(self, table: str) -> list[dict[str, Any]]:
        return sorted(self.store.table(table).to_arrow().to_pylist(), key=lambda r: r["id"])


def where_rows(backend: str) -> list[dict[str, Any]]:
    """Rows whose values sit next to each other under loose comparisons (case, accents,
    trailing spaces, numbers in text, injection text); all ints below 2**53 so every backend
    compares them with floats exactly."""
    inf = None if backend == "mariadb" else math.inf  # MariaDB stores no inf
    s = ["a", "A", "á", "a ", "", None, INJECTIONS[0], "' OR 1=1 --", "größe 表 😀", "1"]
    i = [1, 0, -1, None, 2**52, -(2**52), 1, 7, 3, 1]
    f = [1.5, 0.0, -2.25, None, 1e300, inf, 1.0, -0.5, 3.0, 7.0]
    b = [True, False, None, True, False, True, False, None, True, False]
    return [{"id": n + 1, "s": s[n], "i": i[n], "f": f[n], "b": b[n]} for n in range(len(s))]


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb", "mongo"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """A store per backend with the canary table and the where-sweep rows written."""
    name = request.param
    folder = tmp_path_factory.mktemp(f"bad-{name}")
    if name == "sqlite":
        store = pr.connect(folder / "bad.db")
    elif name == "mongo":
        store = pr.connect(request.getfixturevalue("mongo_uri"), artifact_root=folder / "art")
    else:
        store = _server_store(name)
    rows = where_rows(name)
    backend = Backend(name, store, f"bad_{uuid.uuid4().hex[:8]}_rows", rows)
    store.write(CANARY, CANARY_ROWS, key="id")
    store.write(backend.rows_table, rows, key="id")
    yield backend
    for table in [CANARY, backend.rows_table, *backend.made]:
        with contextlib.suppress(PinnacleError):
            backend.drop(table)
    store.close()


@pytest.fixture(scope="module", autouse=True)
def inputs_tried(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """Print how many inputs the sweeps tried (for docs/testing.md's table)."""
    yield TRIED
    total = sum(TRIED.values())
    parts = ", ".join(f"{what}: {n}" for what, n in sorted(TRIED.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nbad input tried: {total} inputs ({parts})")


# -- names ---------------------------------------------------------------------------------
@pytest.mark.timeout(240)
@sweep(40)
@given(table=names, column=names)
def test_a_table_or_column_name_round_trips_or_is_refused(db: Backend, table, column):
    TRIED["table/column names"] += 1
    try:
        existed = table in db.store.tables()
    except PinnacleError:
        existed = False
    assume(not existed)
    rows = [{"id": 1, column: 10}, {"id": 2, column: 20}] if column != "id" else [{"id": 1}]
    try:
        db.store.write(table, rows, key="id")
    except PinnacleError as exc:
        note(f"refused: {exc}")
        assert table not in db.store.tables(), "a refused write left a table behind"
        assert not (must_hold(db, table, table=True) and must_hold(db, column, table=False)), (
            f"refused names the backend holds: {exc}"
        )
        return
    columns = list(rows[0])  # by name: MongoDB writes a dotted column as a nested field

    def read() -> list[dict[str, Any]]:
        got = db.store.table(table, columns=columns).to_arrow().to_pylist()
        return sorted(got, key=lambda r: r["id"])

    try:
        assert table in db.store.tables()
        assert read() == rows
        if column != "id":  # an upsert into the existing table, then a filter on the column
            db.store.write(table, [{"id": 2, column: 21}], key="id")
            assert read() == [rows[0], {"id": 2, column: 21}]
            assert db.store.table(table, columns=[column], where={column: 21}).count() == 1
    finally:
        db.drop(table)


# -- where ---------------------------------------------------------------------------------
_COLUMN_KIND = {"s": "str", "i": "number", "f": "number", "b": "boolean"}


def must_work(db: Backend, column: str, value: Any) -> bool:
    """Whether ``value`` is a filter every backend must answer (not refuse) on ``column``."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(
            not isinstance(v, (list, tuple, set, frozenset, dict)) and must_work(db, column, v)
            for v in value
        )
    if value is None:
        return True
    if kind(value) != _COLUMN_KIND[column] and not db.is_mongo:
        return False
    if isinstance(value, float) and (
        math.isnan(value) or (math.isinf(value) and db.name == "mariadb")
    ):
        return False
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return False
    if isinstance(value, str) and "\x00" in value and db.name == "postgresql":
        return False  # PostgreSQL text holds no NUL
    return not isinstance(value, (dict, bytes))


@pytest.mark.timeout(240)
@sweep(60)
@given(column=st.sampled_from(["s", "i", "f", "b"]), value=where_values)
def test_a_where_filter_returns_exactly_the_matching_rows_or_is_refused(db: Backend, column, value):
    TRIED["where values"] += 1
    expected = sorted(r["id"] for r in db.rows if matches(r[column], value))
    try:
        query = db.store.table(db.rows_table, where={column: value})
        count = query.count()
        ids = sorted(query.to_arrow().column("id").to_pylist())
    except PinnacleError as exc:
        assert not must_work(db, column, value), f"refused a value it must answer: {exc}"
        return
    assert ids == expected
    assert count == len(expected)


@pytest.fixture(scope="module")
def sql_db(db: Backend) -> Backend:
    assert not db.is_mongo, "store.sql is for SQL datastores; mark the test sql_only"
    return db


sql_params = st.one_of(
    scalars,
    st.lists(st.integers(-2, 2), max_size=3),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)


@pytest.mark.timeout(240)
@pytest.mark.sql_only
@sweep(40)
@given(
    value=sql_params,
    names=st.sampled_from([{"v"}, set(), {"w"}, {"v", "w"}]),
    column=st.sampled_from(["s", "i"]),
)
def test_sql_params_bind_values_or_are_refused_never_run_as_sql(
    sql_db: Backend, value, names, column
):
    db = sql_db
    TRIED["sql params"] += 1
    text = f"SELECT id FROM {db.rows_table} WHERE {column} = :v"
    params = dict.fromkeys(names, value)
    try:
        query = db.store.sql(text, params=params)
        ids = sorted(query.to_arrow().column("id").to_pylist())
        count = query.count()
    except PinnacleError:
        return
    assert names == {"v"}, "params that do not match the placeholders were accepted"
    assert count == len(ids)
    if column == "s" and isinstance(value, str):
        # A bound value is compared as text, never run: `' OR 1=1 --` finds no row.
        assert ids == sorted(r["id"] for r in db.rows if matches(r["s"], value))
    else:  # other comparisons follow the database's own rules (the SQL is the user's)
        assert set(ids) <= {r["id"] for r in db.rows}


# -- writes --------------------------------------------------------------------------------
def cells(family: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), family)


FAMILIES = [
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([2**63, -(2**63) - 1, 2**70, 10**30]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
    st.text(max_size=20),
    st.sampled_from(["", "x" * 5000, "größe 表 😀", "\x00", "a\x00b", *INJECTIONS]),
    st.booleans(),
    st.binary(max_size=8),
]
any_cell = st.one_of(*FAMILIES, st.none())


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """0-5 rows with ids that overlap earlier writes, two value columns each of one type
    family (nulls allowed) or of mixed types."""
    ids = draw(st.lists(st.integers(min_value=0, max_value=6), max_size=5))
    out: list[dict[str, Any]] = [{"id": i} for i in ids]
    for name in ("v", "w"):
        family = draw(st.sampled_from([*FAMILIES, None]))
        strategy = any_cell if family is None else cells(family)
        for row in out:
            row[name] = draw(strategy)
    return out


def stored(db: Backend, value: Any) -> Any:
    """``value`` as the backend keeps it: SQLite has no NaN and stores it as NULL."""
    if db.name == "sqlite" and isinstance(value, float) and math.isnan(value):
        return None
    return value


def upserted(db: Backend, before: list[dict], batch: list[dict]) -> list[dict]:
    rows = {r["id"]: dict(r) for r in before}
    for r in batch:
        rows[r["id"]] = {k: stored(db, v) for k, v in r.items()}
    return [rows[k] for k in sorted(rows)]


def same_rows(got: list[dict], want: list[dict]) -> bool:
    return len(got) == len(want) and all(
        set(g) == set(w) and all(same(g[k], w[k]) for k in w)
        for g, w in zip(got, want, strict=True)
    )


@pytest.mark.timeout(240)
@sweep(40)
@given(first=batches(), second=batches())
def test_written_data_reads_back_as_written_or_nothing_is_written(db: Backend, first, second):
    TRIED["written data"] += 1
    table = f"bad_{uuid.uuid4().hex[:10]}"
    db.made.append(table)
    try:
        before: list[dict] | None = None
        for batch in (first, second):
            try:
                db.store.write(table, batch, key="id")
            except PinnacleError as exc:
                note(f"refused: {exc}")
                if before is None:
                    assert table not in db.store.tables(), "a refused write left a table"
                else:
                    assert same_rows(db.read(table), before), "a refused write changed rows"
                continue
            want = upserted(db, before or [], batch)
            got = db.read(table)
            assert same_rows(got, want), f"read back {got!r}, wrote {want!r}"
            before = got
    finally:
        db.drop(table)
        db.made.remove(table)


def test_lists_and_dicts_can_be_written_again_into_the_table_they_created(db: Backend):
    """MariaDB's JSON column reflects as LONGTEXT: the second write once sent the driver a
    dict (a raw TypeError). Lists and dicts read back as JSON text on SQLite/MariaDB."""
    table = f"bad_{uuid.uuid4().hex[:10]}"
    db.made.append(table)
    db.store.write(table, [{"id": 1, "m": {"a": 1}, "l": [1, 2]}], key="id")
    db.store.write(table, [{"id": 2, "m": {"a": 2}, "l": [3]}], key="id")
    got = db.read(table)
    if db.name in ("sqlite", "mariadb"):
        got = [
            {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in r.items()} for r in got
        ]
    assert got == [{"id": 1, "m": {"a": 1}, "l": [1, 2]}, {"id": 2, "m": {"a": 2}, "l": [3]}]


# -- trainers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def no_training() -> Iterator[list[str]]:
    """Record (and stop) any attempt to start Ray Train or read a query's data."""
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from pinnacle_ray.datastore.sql.query import SqlQuery

    started: list[str] = []

    def refuse(what: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            started.append(what)
            raise AssertionError(f"{what} was started for a bad input")

        return call

    mp = pytest.MonkeyPatch()
    mp.setattr(DataParallelTrainer, "fit", refuse("Ray Train"))
    mp.setattr(SqlQuery, "to_dataset", refuse("a data read"))
    yield started
    mp.undo()


feature_lists = st.one_of(
    st.lists(st.one_of(names, st.sampled_from(["i", "f", "b", "s", "id"])), max_size=4),
    names,
    st.none(),
    st.integers(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.mark.timeout(240)
@sweep(40)
@given(
    kind_=st.sampled_from(["sklearn", "xgboost", "torch"]),
    features=feature_lists,
    label=st.one_of(names, st.sampled_from(["i", "f", "s", "nope"]), st.none(), st.integers()),
)
def test_bad_features_or_label_are_refused_before_ray_train_starts(
    no_training, tmp_path_factory, kind_, features, label
):
    TRIED["trainer features/labels"] += 1
    store = _trainer_store(tmp_path_factory)
    # Guaranteed bad: a missing or text column among the features, or a text/missing label.
    numeric = {"id", "i", "f", "b"}
    bad = not isinstance(features, list) or not features or not set(features) <= numeric
    assume(bad or label not in numeric)
    no_training.clear()
    try:
        trainer = _trainer(kind_, features, label)
        trainer.fit(train=store.table("rows"), register=False)
    except PinnacleError:
        pass
    assert no_training == [], f"{no_training} started for features={features!r}"


_trainer_stores: dict[str, Any] = {}


def _trainer_store(factory: pytest.TempPathFactory) -> Any:
    if "store" not in _trainer_stores:
        store = pr.connect(factory.mktemp("trainer") / "rows.db")
        store.write("rows", where_rows("sqlite"), key="id")
        _trainer_stores["store"] = store
    return _trainer_stores["store"]


def _trainer(kind_: str, features: Any, label: Any) -> Any:
    if kind_ == "sklearn":
        from sklearn.linear_model import LinearRegression

        return pr.SklearnTrainer(LinearRegression(), features=features, label=label, name="bad")
    if kind_ == "xgboost":
        return pr.XGBoostTrainer(params={}, features=features, label=label, name="bad")
    import torch

    return pr.TorchTrainer(
        model=torch.nn.Linear(1, 1), objective="mse", features=features, label=label, name="bad"
    )


# -- run specs on the CLI ----------------------------------------------------------------------
UNSET = "PINNACLE_BAD_INPUT_UNSET"
BAD_REFS = [
    f"${{{UNSET}}}", f"x ${{{UNSET}}} y", "${1BAD}", "${A:-${B}}", "${", "${}", "${ X }",
    "${A-B}", f"$${{{UNSET}}} ${{{UNSET}}}", "${A:-x",
]  # fmt: skip
BROKEN_YAML = [
    "x: y: z", "- [unclosed", "\tbad: tab", "key: 'unterminated", "{a: 1", "*undefined_alias",
    "? [a, b]\n: c", "!!python/object/apply:os.system ['echo hacked']", "a: !!binary '%%%'",
]  # fmt: skip
NOT_NUMBERS = st.one_of(
    st.sampled_from(["many", "ten", "1e3x", "", "five", "0x", "½"]),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
    st.sampled_from([1.5, -0.5, 2.25]),
)
HUGE = st.one_of(
    st.integers(min_value=2**31, max_value=10**400),
    st.integers(max_value=-1, min_value=-(10**400)),
    st.sampled_from([0, 2**31, 2**63, 2**64, 10**30]),
)
NOT_TEXT = st.one_of(
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), min_size=1, max_size=2),
    st.booleans(),
    st.none(),
)
NOT_FLOAT = st.sampled_from([math.inf, -math.inf, math.nan, "lots", [0.5]])
TEXT_PATHS = [("name",), ("store",), ("train", "table"), ("trainer", "label")]
COUNT_PATHS = [("trainer", "num_boost_round"), ("scaling", "num_workers"),
               ("trainer", "early_stopping_rounds"), ("trainer", "report_every")]  # fmt: skip
SECTIONS = [(), ("train",), ("trainer",), ("scaling",)]
REQUIRED = [("name",), ("store",), ("train",), ("trainer",), ("trainer", "kind"),
            ("trainer", "features"), ("trainer", "label"), ("train", "table")]  # fmt: skip
FIELDS = {
    (): {"name", "store", "artifact_root", "train", "valid", "trainer", "scaling", "checkpoint",
         "failure", "storage_path", "register", "register_model", "tune", "predict",
         "runtime_env"},
    ("train",): {"table", "sql", "find", "columns", "where", "params", "filter", "projection",
                 "key"},
    ("trainer",): {"kind", "params", "features", "label", "num_boost_round",
                   "early_stopping_rounds", "enable_categorical", "valid_fraction", "seed",
                   "checkpoint_frequency", "report_every"},
    ("scaling",): {"num_workers", "use_gpu", "resources_per_worker", "placement_strategy"},
}  # fmt: skip


def base_spec(store_url: str) -> dict[str, Any]:
    return {
        "name": "bad-input",
        "store": store_url,
        "train": {"table": "rows", "key": "id"},
        "trainer": {
            "kind": "xgboost",
            "features": ["i", "f"],
            "label": "f",
            "num_boost_round": 2,
        },
        "scaling": {"num_workers": 1},
    }


def _set(spec: dict, path: tuple[str, ...], value: Any) -> None:
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def bad_specs(draw: st.DrawFn, store_url: str) -> bytes:
    """A run spec that is wrong in one way (or several), as the bytes of a file."""
    spec = base_spec(store_url)
    how = draw(
        st.sampled_from(
            ["type", "unknown", "missing", "var", "huge", "deep", "yaml", "garbage", "float",
             "section", "several"]
        )
    )  # fmt: skip
    note(f"mutation: {how}")
    hows = [how] if how != "several" else draw(
        st.lists(st.sampled_from(["type", "unknown", "missing", "var", "huge"]), min_size=2,
                 max_size=3)
    )  # fmt: skip
    if how == "garbage":
        return draw(st.binary(min_size=0, max_size=300))
    for h in hows:
        if h == "type":
            path = draw(st.sampled_from(TEXT_PATHS + COUNT_PATHS + [("trainer", "features")]))
            if path in TEXT_PATHS:
                value = draw(NOT_TEXT)
            elif path in COUNT_PATHS:
                value = draw(NOT_NUMBERS)
            else:
                value = draw(st.one_of(st.text(max_size=5), st.integers(), NOT_TEXT.filter(
                    lambda v: not isinstance(v, list))))  # fmt: skip
            _set(spec, path, value)
        elif h == "unknown":
            section = draw(st.sampled_from(SECTIONS))
            key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
            assume(key not in FIELDS[section])
            (spec if not section else spec[section[0]])[key] = draw(scalars)
        elif h == "missing":
            path = draw(st.sampled_from(REQUIRED))
            node = spec
            for part in path[:-1]:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                spec.pop(path[0], None)
        elif h == "var":
            _set(spec, draw(st.sampled_from(TEXT_PATHS)), draw(st.sampled_from(BAD_REFS)))
        elif h == "huge":
            _set(spec, draw(st.sampled_from(COUNT_PATHS)), draw(HUGE))
    deep = None
    if how == "deep":  # as text: the YAML dumper recurses as deep as the value
        depth = draw(st.sampled_from([3, 40, 400, 3000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{k: ", "}")]))
        deep = opener * depth + "x" + closer * depth
        _set(spec, draw(st.sampled_from([*TEXT_PATHS, ("trainer", "features")])), "DEEP")
    if how == "float":
        _set(spec, ("trainer", "valid_fraction"), draw(NOT_FLOAT))
    if how == "section":
        section = draw(st.sampled_from(["train", "trainer", "scaling"]))
        spec[section] = draw(st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2),
                                       st.integers(), st.booleans()))  # fmt: skip
    text = yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
    if deep is not None:
        text = text.replace("DEEP", deep, 1)
    if how == "yaml":
        lines = text.splitlines()
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        lines.insert(at, draw(st.sampled_from(BROKEN_YAML)))
        text = "\n".join(lines) + "\n"
    return text.encode()


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    folder = tmp_path_factory.mktemp("cli-bad")
    store = pr.connect(folder / "store.db")
    store.write("rows", where_rows("sqlite"), key="id")
    return store, f"sqlite:///{folder / 'store.db'}"


def _snapshot(store: Any) -> tuple[list[str], list[dict]]:
    return store.tables(), store.table("rows").to_arrow().to_pylist()


@pytest.mark.timeout(240)
@sweep(80)
@given(data=st.data())
def test_a_malformed_run_spec_exits_with_one_line_and_runs_nothing(
    no_training, cli_store, tmp_path_factory, data
):
    store, url = cli_store
    document = data.draw(bad_specs(url))
    TRIED["run specs (CLI)"] += 1
    work = tmp_path_factory.mktemp("cwd")
    spec = work / "spec.yaml"
    spec.write_bytes(document)
    before = _snapshot(store)
    no_training.clear()
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.environ.pop(UNSET, None)
    try:
        os.chdir(work)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["train", str(spec)])
            except SystemExit as exc:  # argparse
                code = exc.code
    finally:
        os.chdir(cwd)
    note(f"stderr: {err.getvalue()!r}")
    assert code in (1, 2)
    assert "Traceback" not in err.getvalue() + out.getvalue()
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines[:3]
    assert out.getvalue() == "", "a bad spec got as far as starting the run"
    assert no_training == []
    assert sorted(p.name for p in work.iterdir()) == ["spec.yaml"], "files were created"
    assert _snapshot(store) == before, "the store was written to"


# -- last: nothing was injected ----------------------------------------------------------------
def test_the_canary_table_is_unchanged_after_every_sweep(db: Backend):
    """Runs after the sweeps on each backend (module order): no injected statement ran."""
    assert CANARY in db.store.tables()
    assert db.read(CANARY) == CANARY_ROWS
    assert same_rows(db.read(db.rows_table), db.rows)
