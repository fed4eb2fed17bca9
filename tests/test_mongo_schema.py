"""MongoDB column types and block sizes: ``schema=`` declares types, an undeclared type change
past the planning sample is a ``MixedTypes`` naming the field, both types and an ``_id``, the
plan says which documents the types came from, and blocks are bounded by bytes.

Runs on the server at PINNACLE_TEST_MONGO_URI when set, else on the session's stand-in.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import bson
import pyarrow as pa
import pytest

import pinnacle_ray as pr

MB = 1024 * 1024


@pytest.fixture
def mongo(mongo_uri: str, tmp_path) -> Iterator[pr.MongoDatastore]:
    store = pr.connect(mongo_uri, artifact_root=tmp_path / "art")
    yield store
    store.close()


@pytest.fixture
def coll(mongo: pr.MongoDatastore) -> Iterator[str]:
    """A fresh collection name, dropped afterwards (a real server's database is shared)."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    mongo.drop(name)


@pytest.fixture
def small_sample(monkeypatch: pytest.MonkeyPatch) -> int:
    """Types planned from the first 10 documents (instead of 1,000), so a few dozen
    documents put a type change past the sample."""
    monkeypatch.setattr("pinnacle_ray.datastore.mongo.query.SAMPLE_DOCS", 10)
    return 10


def _insert(store: pr.MongoDatastore, name: str, docs: list[dict]) -> None:
    store._database()[name].insert_many(docs)


def _rows(ds) -> list[dict]:
    return [
        r for b in ds.iter_batches(batch_format="pyarrow", batch_size=None) for r in b.to_pylist()
    ]


# -- a type change past the planning sample ---------------------------------------------------
def test_type_change_past_the_sample_raises_mixed_types_naming_field_types_id_and_sample(
    mongo, coll, small_sample
):
    _insert(mongo, coll, [{"_id": i, "v": i if i != 40 else 40.5} for i in range(50)])
    ds = mongo.find(coll, projection=["v"]).to_dataset(shards=2)
    with pytest.raises(pr.MixedTypes) as caught:
        ds.materialize()
    message = str(caught.value)
    assert "field 'v'" in message and "holds int and float values" in message
    assert "_id 0 and _id 40" in message
    assert "planned from the first 10 documents" in message and "_id 0 to _id 9" in message
    assert "schema={'v': '<type>'}" in message


def test_declared_float_reads_ints_and_a_later_float_when_the_sample_saw_only_ints(
    mongo, coll, small_sample
):
    _insert(mongo, coll, [{"_id": i, "v": i if i != 40 else 40.5} for i in range(50)])
    q = mongo.find(coll, projection=["v"], schema={"v": "float64"})
    assert q.schema() == pa.schema([pa.field("v", pa.float64())])
    rows = sorted(_rows(q.to_dataset(shards=2)), key=lambda r: r["v"])
    assert [r["v"] for r in rows] == [float(i) if i != 40 else 40.5 for i in range(50)]


def test_declared_string_reads_a_field_that_is_null_in_the_whole_sample(mongo, coll, small_sample):
    _insert(mongo, coll, [{"_id": i, "note": None if i < 30 else f"n{i}"} for i in range(40)])
    with pytest.raises(pr.MixedTypes, match=r"field 'note'.*missing/null.*and string"):
        mongo.find(coll).to_dataset().materialize()  # every top-level field, as sampled
    q = mongo.find(coll, schema={"note": pa.string()})
    assert q.columns == ["note"]  # without a projection, the schema's fields are the columns
    notes = sorted(r["note"] or "" for r in _rows(q.to_dataset(shards=2)))
    assert notes == [""] * 30 + sorted(f"n{i}" for i in range(30, 40))


@pytest.mark.parametrize(
    ("bad", "kind"), [("forty", "string"), (2.5, "float"), (True, "bool"), ([1], "list")]
)
def test_declared_int_refuses_a_value_it_cannot_hold_without_truncating(mongo, coll, bad, kind):
    _insert(mongo, coll, [{"_id": i, "v": i if i != 7 else bad} for i in range(10)])
    ds = mongo.find(coll, schema={"v": "int64"}).to_dataset()
    with pytest.raises(
        pr.MixedTypes,
        match=rf"field 'v' of collection '{coll}' is declared as int64 in schema= but "
        rf"_id 7 holds a {kind} value",
    ):
        ds.materialize()


def test_declared_int32_refuses_a_value_past_its_range_naming_the_id(mongo, coll):
    _insert(mongo, coll, [{"_id": "a", "v": 1}, {"_id": "b", "v": 2**40}])
    with pytest.raises(pr.MixedTypes, match=r"declared as int32 .*_id 'b' holds a int value"):
        mongo.find(coll, schema={"v": pa.int32()}).to_arrow()


def test_schema_as_pyarrow_schema_with_kind_names_objectids_dates_and_lists(mongo, coll):
    oid = bson.ObjectId()
    when = dt.datetime(2024, 5, 1, 12, 30)
    _insert(mongo, coll, [{"ref": oid, "at": when, "tags": [1, 2], "x": 3}])
    q = mongo.find(
        coll,
        schema=pa.schema(
            [("ref", pa.string()), ("at", pa.timestamp("ms")), ("tags", pa.list_(pa.int64()))]
        ),
    )
    assert q.columns == ["ref", "at", "tags"]
    assert q.to_arrow().to_pylist() == [{"ref": str(oid), "at": when, "tags": [1, 2]}]
    named = mongo.find(coll, schema={"ref": "objectid", "at": "datetime", "x": "float"})
    assert named.schema().types == [pa.string(), pa.timestamp("ms"), pa.float64()]
    assert named.to_arrow().to_pylist() == [{"ref": str(oid), "at": when, "x": 3.0}]


def test_table_takes_a_schema_and_keeps_the_written_unique_key(mongo, coll):
    mongo.write(coll, [{"id": i, "score": i} for i in range(20)], key="id")
    q = mongo.table(coll, schema={"id": "int64", "score": "float64"})
    assert q.key == "id" and q.schema().types == [pa.int64(), pa.float64()]
    rows = sorted(_rows(q.to_dataset(shards=2)), key=lambda r: r["id"])
    assert rows == [{"id": i, "score": float(i)} for i in range(20)]


def test_only_undeclared_fields_are_planned_from_the_sample(mongo, coll):
    # A field the sample holds two types of is refused when planned, but not once declared.
    _insert(mongo, coll, [{"_id": 1, "v": 5, "w": "a"}, {"_id": 2, "v": "five", "w": "b"}])
    with pytest.raises(pr.MixedTypes, match=r"field 'v'.*int and string"):
        mongo.find(coll, projection=["v", "w"]).schema()
    q = mongo.find(coll, projection=["v", "w"], schema={"v": "string"})
    with pytest.raises(pr.MixedTypes, match=r"declared as string in schema= but _id 1 holds"):
        q.to_arrow()


# -- the plan says where the types came from -------------------------------------------------
def test_plan_says_which_documents_the_types_came_from_and_which_were_declared(
    mongo, coll, small_sample
):
    _insert(mongo, coll, [{"_id": i, "v": i, "w": float(i)} for i in range(30)])
    text = str(mongo.find(coll, projection=["v", "w"]).plan(shards=2))
    assert "column types of ['v', 'w'] planned from the first 10 documents" in text
    assert "(_id 0 to _id 9); later documents were not looked at" in text
    text = str(mongo.find(coll, projection=["v", "w"], schema={"v": "float64"}).plan(shards=2))
    assert "column types declared by schema=: ['v']" in text
    assert "column types of ['w'] planned from the first 10 documents" in text
    few = str(mongo.find(coll, filter={"v": {"$lt": 5}}).plan())
    assert "['_id', 'v', 'w'] planned from all 5 documents matched when the read" in few


# -- bad declarations, refused when the query is built -------------------------------------
@pytest.mark.parametrize(
    ("schema", "projection", "match"),
    [
        ({"v": "integer"}, None, r"schema declares field 'v' as 'integer', which is not an Arrow"),
        ({"v": 3}, None, r"schema declares field 'v' as 3"),
        ("v:int", None, r"schema must be a pyarrow.Schema or a dict"),
        ({}, None, r"schema is empty"),
        ({"$v": "int64"}, None, r"schema names field '\$v'"),
        ({"v": "int64", "w": "string"}, ["v"], r"schema declares \['w'\], which the projection"),
    ],
)
def test_bad_schema_is_refused_naming_the_field_and_value(mongo, coll, schema, projection, match):
    _insert(mongo, coll, [{"v": 1, "w": "a"}])
    with pytest.raises(pr.ConfigError, match=match):
        mongo.find(coll, projection=projection, schema=schema)


# -- blocks bounded by bytes -------------------------------------------------------------------
@pytest.fixture
def skewed(mongo, coll) -> str:
    """3,000 small documents with five 5 MB ones among them, none in the first 500."""
    big = {600, 1100, 1700, 2300, 2900}
    docs = [
        {"_id": i, "i": i, "text": ("x" * (5 * MB)) if i in big else f"t{i}"} for i in range(3000)
    ]
    for start in range(0, len(docs), 500):  # under the 48 MB message limit per insert
        _insert(mongo, coll, docs[start : start + 500])
    return coll


@pytest.mark.timeout(300)
def test_blocks_stay_under_the_byte_bound_when_a_few_documents_are_5mb(mongo, skewed, monkeypatch):
    bound = 8 * MB
    monkeypatch.setattr("pinnacle_ray.datastore.mongo.query.BLOCK_BYTES", bound)
    q = mongo.find(skewed)
    plan = q.plan(shards=1)  # 26 MB in one shard: one block when sized by the first documents
    assert f"blocks of at most {bound:,} BSON bytes" in str(plan)
    seen, sizes = [], []
    for table in plan.shards[0].read():
        sizes.append(table.nbytes)
        seen += table.column("i").to_pylist()
    assert max(sizes) <= bound * 1.1, sizes  # Arrow holds a little more than BSON
    assert sorted(seen) == list(range(3000))
    assert sum(sizes) > 25 * MB  # the big documents were read whole
    # Through Ray Data: its target block size is the bound for this dataset, and it merges
    # what a task yields until a block passes it, so a block is under twice the bound.
    ds = q.to_dataset(shards=1).materialize()
    blocks = [m.size_bytes for b in ds.iter_internal_ref_bundles() for m in b.metadata]
    assert ds.count() == 3000 and len(blocks) >= 3 and max(blocks) <= 2 * bound, blocks
    assert sorted(ds.to_pandas()["i"]) == list(range(3000))
