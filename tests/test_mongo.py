"""The MongoDB datastore: documents to sharded Ray Datasets, write-back, and bad input.

Runs on the server at PINNACLE_TEST_MONGO_URI when set, else on the session's stand-in
(mongomock behind the wire protocol; see tests/conftest.py). Backend-agnostic read, write,
registry and training tests run on Mongo too, through the ``with_mongo`` marker.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import bson
import numpy as np
import pyarrow as pa
import pytest
import torch
from ray.train import ScalingConfig
from tabular_data import diabetes

import pinnacle_ray as pr
from pinnacle_ray.datastore.mongo.read import MongoShard

PASSWORD = "s3cr3t-Pw"


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


def _insert(store: pr.MongoDatastore, name: str, docs: list[dict]) -> None:
    if docs:
        store._database()[name].insert_many(docs)
    else:
        store._database().create_collection(name)


def _rows(ds) -> list[dict]:
    return [
        r for b in ds.iter_batches(batch_format="pyarrow", batch_size=None) for r in b.to_pylist()
    ]


def _with_credentials(uri: str, user: str, password: str) -> str:
    scheme, rest = uri.split("://", 1)
    hosts = rest.split("@", 1)[-1]
    return f"{scheme}://{user}:{urllib.parse.quote(password)}@{hosts}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- reading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 3_000])
def test_every_document_is_read_exactly_once_when_the_collection_has_n(mongo, coll, n):
    _insert(mongo, coll, [{"i": i, "x": float(i)} for i in range(n)])
    q = mongo.find(coll)
    for shards in (None, 4):
        rows = _rows(q.to_dataset(shards=shards))
        assert sorted(r["i"] for r in rows) == list(range(n))
    assert q.count() == n


def test_plan_splits_the_object_id_key_into_ranges_from_the_data(mongo, coll):
    _insert(mongo, coll, [{"i": i} for i in range(1_000)])
    plan = mongo.find(coll).plan(shards=4)
    assert len(plan) == 4 and plan.strategy == "key" and plan.key == "_id"
    sizes = [sum(t.num_rows for t in shard.read()) for shard in plan.shards]
    assert sizes == [250, 250, 250, 250]
    assert "_id >= ObjectId(" in str(plan)


def test_filter_and_shards_combine_when_the_user_filter_uses_operators(mongo, coll):
    _insert(mongo, coll, [{"i": i, "lang": "en" if i % 3 else "de"} for i in range(600)])
    q = mongo.find(coll, filter={"lang": "en", "i": {"$gte": 100}}, projection=["i"])
    rows = _rows(q.to_dataset(shards=3))
    assert sorted(r["i"] for r in rows) == [i for i in range(100, 600) if i % 3]
    assert q.count() == len(rows) and q.columns == ["i"]


def test_nested_fields_arrays_ids_and_dates_become_typed_columns(mongo, coll):
    when = dt.datetime(2024, 5, 1, 12, 30, 15, 123000)
    docs = [
        {
            "user": {"age": 30 + i, "name": f"u{i}"},
            "tags": ["a", "b"][: i % 3],
            "items": [{"price": 1.5 * i}, {"price": 2.0}],
            "at": when + dt.timedelta(days=i),
            "ref": bson.ObjectId(),
            **({"note": "x"} if i == 0 else {}),
        }
        for i in range(5)
    ]
    _insert(mongo, coll, docs)
    q = mongo.find(coll, projection=["_id", "user.age", "tags", "items.price", "at", "ref", "note"])
    schema = q.schema()
    assert schema.field("_id").type == pa.string() and schema.field("ref").type == pa.string()
    assert schema.field("user.age").type == pa.int64()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("items.price").type == pa.list_(pa.float64())
    assert schema.field("at").type == pa.timestamp("ms")
    rows = sorted(_rows(q.to_dataset(shards=2)), key=lambda r: r["user.age"])
    assert [r["_id"] for r in rows] == [str(d["_id"]) for d in docs]
    assert rows[2]["tags"] == ["a", "b"] and rows[0]["tags"] == []
    assert rows[3]["items.price"] == [4.5, 2.0]
    assert rows[1]["at"] == when + dt.timedelta(days=1)
    assert rows[0]["note"] == "x" and rows[1]["note"] is None  # missing -> null


def test_ints_and_doubles_in_one_field_widen_to_float(mongo, coll):
    _insert(mongo, coll, [{"v": 1}, {"v": 2.5}, {"v": None}])
    q = mongo.find(coll, projection=["v"])
    assert q.schema().field("v").type == pa.float64()
    assert sorted(_rows(q.to_dataset()), key=lambda r: r["v"] or -1)[1:] == [
        {"v": 1.0},
        {"v": 2.5},
    ]


def test_mixed_types_in_a_field_raise_naming_the_field_and_two_ids(mongo, coll):
    _insert(mongo, coll, [{"_id": 1, "v": 5}, {"_id": 2, "v": "five"}])
    with pytest.raises(
        pr.MixedTypes, match=r"field 'v'.* int and string values \(e\.g\. _id 1 and _id 2\)"
    ):
        mongo.find(coll, projection=["v"]).schema()


def test_mixed_types_beyond_the_planning_sample_raise_in_the_read_task(mongo, coll, monkeypatch):
    monkeypatch.setattr("pinnacle_ray.datastore.mongo.query.SAMPLE_DOCS", 10)
    _insert(mongo, coll, [{"_id": i, "v": i if i != 40 else "forty"} for i in range(50)])
    ds = mongo.find(coll, projection=["v"]).to_dataset(shards=2)
    with pytest.raises(pr.MixedTypes, match=r"field 'v'.*_id 0 and _id 40"):
        ds.materialize()


def test_documents_without_the_key_are_read_once_in_a_shard_of_their_own(mongo, coll):
    _insert(mongo, coll, [{"i": i, **({"k": i} if i % 4 else {})} for i in range(200)])
    q = mongo.find(coll, key="k")
    plan = q.plan(shards=3)
    assert plan.shards[-1].describe() == "k IS NULL" and plan.shards[-1].rows == 50
    assert sorted(r["i"] for r in _rows(q.to_dataset(shards=3))) == list(range(200))


def test_string_and_date_keys_split_into_ranges(mongo, coll):
    base = dt.datetime(2024, 1, 1)
    _insert(
        mongo,
        coll,
        [
            {"i": i, "code": f"c{(i * 7919) % 500:03d}", "at": base + dt.timedelta(minutes=i)}
            for i in range(500)
        ],
    )
    for key in ("code", "at"):
        q = mongo.find(coll, key=key)
        assert len(q.plan(shards=3)) == 3
        assert sorted(r["i"] for r in _rows(q.to_dataset(shards=3))) == list(range(500))


def test_table_maps_where_to_a_filter_and_keys_on_the_written_unique_key(mongo, coll):
    mongo.write(coll, [{"id": i, "g": i % 3, "v": float(i)} for i in range(90)], key="id")
    q = mongo.table(coll, columns=["id", "v"], where={"g": [0, 2]})
    assert q.key == "id" and q.columns == ["id", "v"]
    assert sorted(r["id"] for r in _rows(q.to_dataset(shards=2))) == [
        i for i in range(90) if i % 3 != 1
    ]


def test_plan_prints_the_key_ranges_like_sql(mongo, coll):
    mongo.write(coll, [{"id": i} for i in range(100)], key="id")
    text = str(mongo.table(coll).plan(shards=2))
    assert text.splitlines()[0] == "2 shard(s) by key range on 'id'; ~100 rows"
    assert "id < 50" in text and "id >= 50" in text


# -- writing ---------------------------------------------------------------------------------
def test_write_upserts_in_batches_and_a_rerun_duplicates_nothing(mongo, coll, monkeypatch):
    monkeypatch.setattr("pinnacle_ray.datastore.mongo.write.BATCH_ROWS", 7)
    rows = [{"id": i, "v": float(i)} for i in range(30)]
    assert mongo.write(coll, rows, key="id") == 30
    assert mongo.write(coll, rows, key="id") == 30
    assert mongo.find(coll).count() == 30
    indexes = mongo._database()[coll].index_information()
    assert any(i.get("unique") and i["key"] == [("id", 1)] for i in indexes.values())


def test_dotted_columns_write_nested_fields_that_read_back_by_the_same_path(mongo, coll):
    mongo.write(coll, [{"id": 1, "user.age": 31, "user.name": "ann"}], key="id")
    doc = mongo._database()[coll].find_one({"id": 1}, {"_id": 0})
    assert doc == {"id": 1, "user": {"age": 31, "name": "ann"}}
    assert mongo.find(coll, projection=["user.age"]).to_arrow().to_pylist() == [{"user.age": 31}]


def test_registry_collections_keep_name_and_version_unique_with_an_index(mongo, tmp_path):
    prefix = f"r{uuid.uuid4().hex[:6]}"
    registry = pr.ModelRegistry(mongo, prefix=prefix, artifact_root=tmp_path / "art")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00" * 10)
    try:
        assert registry.register("m", "torch", folder).version == 1
        indexes = mongo._database()[registry.tables.models].index_information()
        assert any(
            i.get("unique") and i["key"] == [("name", 1), ("version", 1)] for i in indexes.values()
        )
        with pytest.raises(pr.DuplicateKey):
            mongo.insert(
                registry.tables.models, [{"name": "m", "version": 1}], key=["name", "version"]
            )
    finally:
        for name in (registry.tables.models, registry.tables.checkpoints, registry.tables.meta):
            mongo.drop(name)


# -- bad input -------------------------------------------------------------------------------
def test_unreachable_server_fails_within_seconds_naming_the_url_without_password():
    url = f"mongodb://ann:{PASSWORD}@127.0.0.1:{_closed_port()}/shop"
    start = time.monotonic()
    with pytest.raises(pr.DatastoreConnectionError, match="no MongoDB server answered") as info:
        pr.connect(url)
    assert time.monotonic() - start < 20
    assert PASSWORD not in str(info.value) and "ann:***@127.0.0.1" in str(info.value)


def test_bad_credentials_raise_an_authentication_error_without_the_password(mongo_uri):
    with pytest.raises(pr.DatastoreAuthenticationError, match="refused the credentials") as info:
        pr.connect(_with_credentials(mongo_uri, "pinnacle_nobody", PASSWORD))
    assert PASSWORD not in str(info.value)


def test_srv_url_that_cannot_be_resolved_fails_naming_it_without_the_password():
    url = f"mongodb+srv://ann:{PASSWORD}@cluster0.pinnacle-test.invalid/shop"
    with pytest.raises(pr.DatastoreConnectionError, match=r"mongodb\+srv://ann:\*\*\*@") as info:
        pr.connect(url)
    assert PASSWORD not in str(info.value)


def test_url_without_a_database_is_refused():
    with pytest.raises(pr.InvalidURL, match="names no database"):
        pr.connect(f"mongodb://ann:{PASSWORD}@127.0.0.1:27017/")


def test_missing_collection_raises_table_not_found_as_on_sql(mongo):
    with pytest.raises(pr.TableNotFound, match="collection 'nope_missing' does not exist"):
        mongo.find("nope_missing")


def test_projection_of_a_field_no_document_has_raises_column_not_found(mongo, coll):
    _insert(mongo, coll, [{"stars": 1, "text": "ok"}])
    with pytest.raises(pr.ColumnNotFound, match=r"field 'starz'.*fields seen: \['_id', 'stars'"):
        mongo.find(coll, projection=["starz"]).schema()


def test_unknown_filter_operator_is_the_server_error_with_the_filter_shown(mongo, coll):
    _insert(mongo, coll, [{"stars": 1}])
    with pytest.raises(pr.QueryError, match=r"\{'stars': \{'\$bogus': 1\}\}.*\$bogus"):
        mongo.find(coll, filter={"stars": {"$bogus": 1}}).count()


def test_key_of_two_types_is_refused_naming_two_ids(mongo, coll):
    _insert(mongo, coll, [{"_id": 1, "k": 3}, {"_id": 2, "k": "x"}])
    with pytest.raises(pr.InvalidKey, match=r"key 'k' holds int and string values.*_id 1.*_id 2"):
        mongo.find(coll, projection=["_id"], key="k").plan()


def test_key_that_no_document_has_is_refused(mongo, coll):
    _insert(mongo, coll, [{"i": 1}, {"i": 2}])
    with pytest.raises(pr.InvalidKey, match=r"key 'kk' is a field of no document.*\['_id', 'i'\]"):
        mongo.find(coll, key="kk")


def test_credentials_are_masked_in_repr_lineage_and_planned_shards(mongo, coll):
    _insert(mongo, coll, [{"i": 1}])
    mongo._uri = _with_credentials(mongo._uri, "ann", PASSWORD)  # as if connected with them
    q = mongo.find(coll)
    plan = q.plan()
    q.to_dataset()
    shown = [repr(mongo), mongo.url, repr(q), str(q.lineage()), str(plan), repr(plan.shards[0])]
    assert isinstance(plan.shards[0], MongoShard)
    assert all(PASSWORD not in text for text in shown)
    assert "ann:***@" in mongo.url


# -- training --------------------------------------------------------------------------------
# Through the shared store fixture, as the SQL backends run it (the SQL side of the managed
# loop is covered in test_torch_managed.py; a Ray Train fit costs ~20-40 s here).
@pytest.mark.parametrize("backend", ["mongo"])
def test_torch_managed_loop_trains_and_registers_on_a_mongo_query(store, tables, backend):
    table = tables("diabetes")
    features = diabetes(store, table)
    train = store.table(table, where={"split": "train"}, key="id")
    valid = store.table(table, where={"split": "valid"}, key="id")
    torch.manual_seed(0)
    result = pr.TorchTrainer(
        model=torch.nn.Sequential(torch.nn.Linear(len(features), 1)),
        objective="mse",
        features=features,
        label="target",
        optimizer_cls="Adam",
        optimizer_kwargs={"lr": 0.5},
        batch_size=64,
        epochs=2,
        scaling_config=ScalingConfig(num_workers=2),
        name=f"{table}-lin",
    ).fit(train=train, valid=valid)
    assert result.version == 1 and np.isfinite(result.metrics["valid/loss"])
    frame = valid.to_arrow().to_pandas()
    predicted = store.models.load(f"{table}-lin", handle="best").predict(frame)
    assert predicted.shape == (89,) and np.isfinite(predicted).all()
    lineage = store.models.get(f"{table}-lin").lineage
    assert lineage["train"]["key"] == "id" and lineage["train"]["rows"] == 442 - 89


# The Hugging Face trainer fine-tunes and registers on a MongoDB query in
# test_bounded_disk.py (its evaluation-checkpoint run is on MongoDB: one Ray Train start for
# both checks).


# -- the example -----------------------------------------------------------------------------
@pytest.mark.cluster  # the example starts a Ray of its own
def test_mongo_reviews_example_trains_and_writes_predictions_back_with_its_own_ray(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PINNACLE_RAY_MONGO_URI")
    }
    env["PINNACLE_RAY_ARTIFACT_ROOT"] = str(tmp_path / "art")
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "mongo_reviews.py"), "--rows", "1000"],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "collection 'reviews' in mongodb://" in proc.stdout
        and "800 train / 200 valid" in proc.stdout
    )
    assert "registered in MongoDB: ModelVersion('review-recommended', version=1" in proc.stdout
    assert "wrote 200 predictions (twice); 'review_predictions' holds 200" in proc.stdout
