"""The model registry in the datastore, and the datastore writes it builds on.

Registry tests that touch the database run on SQLite, PostgreSQL, MariaDB and MongoDB (the
``store`` fixture, ``with_mongo``); flavor and architecture tests need no database. Nothing
here needs Ray.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
import torch
from registry_helpers import TwoLayer
from registry_race import racing_pool, register_many
from safetensors.torch import save_file
from sqlalchemy.engine import make_url
from torch import nn

import pinnacle_ray as pr
from pinnacle_ray.datastore.artifact_root import default_artifact_root, legacy_artifact_root
from pinnacle_ray.registry import artifacts
from pinnacle_ray.registry.torch_flavor import (
    build_module,
    check_compatible,
    describe_architecture,
    load_model,
    save_model,
)

FEATURES = ["a", "b", "c"]
REGISTRY_TABLES = ("pinnacle_models", "pinnacle_checkpoints", "pinnacle_registry_meta")


# -- helpers ---------------------------------------------------------------------------------
def _mlp(seed: int = 0, n_in: int = 3, n_out: int = 1) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, 8), nn.ReLU(), nn.Linear(8, n_out))


def _frame(rows: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    frame["y"] = 0.0
    return frame[["y", "c", "a", "b"]]  # not in feature order, plus the label


def _expected(module: nn.Module, frame: pd.DataFrame) -> np.ndarray:
    with torch.no_grad():
        x = torch.tensor(frame[FEATURES].to_numpy(), dtype=torch.float32)
        return module.eval()(x).numpy().ravel()


def _saved(tmp_path: Path, module: nn.Module, folder: str = "model", objective: str = "mse"):
    return save_model(tmp_path / folder, module, features=FEATURES, label="y", objective=objective)


def _weights_only(tmp_path: Path, module: nn.Module, folder: str) -> Path:
    path = tmp_path / folder
    path.mkdir()
    save_file(
        {k: v.contiguous() for k, v in module.state_dict().items()}, path / "model.safetensors"
    )
    return path


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _registry_prefix(tables) -> str:
    for name in REGISTRY_TABLES:
        tables(name)  # dropped after the test
    return f"{tables.prefix}_pinnacle"


@pytest.fixture
def registry(store, tables, tmp_path) -> pr.ModelRegistry:
    """A registry with tables of its own on each backend (server databases are shared)."""
    return pr.ModelRegistry(store, prefix=_registry_prefix(tables), artifact_root=tmp_path / "art")


@pytest.fixture
def local_registry(tmp_path) -> Iterator[pr.ModelRegistry]:
    """A registry on an SQLite file, for behaviour that does not depend on the backend."""
    store = pr.connect(tmp_path / "local.db")
    yield pr.ModelRegistry(store, artifact_root=tmp_path / "art")
    store.close()


@pytest.fixture(scope="module")
def spawn_pool() -> Iterator[multiprocessing.pool.Pool]:
    """Four spawned processes (package imported once) whose tasks start together."""
    with racing_pool(4) as pool:
        yield pool


# -- datastore: insert, delete, to_arrow -----------------------------------------------------
@pytest.mark.with_mongo
def test_insert_writes_rows_and_creates_the_table_when_keys_are_new(store, tables):
    name = tables("ins")
    data = pa.table({"k1": ["a", "a", "b"], "k2": [1, 2, 1], "v": [0.5, 1.5, 2.5]})
    assert store.insert(name, data, key=["k1", "k2"]) == 3
    rows = store.table(name).to_arrow().to_pylist()
    assert sorted(rows, key=lambda r: (r["k1"], r["k2"])) == data.to_pylist()


@pytest.mark.with_mongo
def test_insert_raises_duplicate_key_and_writes_nothing_when_a_key_exists(store, tables):
    name = tables("dup")
    store.insert(name, [{"id": 1, "v": "x"}], key="id")
    with pytest.raises(pr.DuplicateKey, match="nothing was written"):
        store.insert(name, [{"id": 2, "v": "y"}, {"id": 1, "v": "z"}], key="id")
    assert store.table(name).to_arrow().to_pylist() == [{"id": 1, "v": "x"}]


@pytest.mark.with_mongo
def test_insert_raises_duplicate_key_when_the_rows_repeat_a_key(store, tables):
    with pytest.raises(pr.DuplicateKey, match="repeat the key"):
        store.insert(tables("rep"), [{"id": 1, "v": "a"}, {"id": 1, "v": "b"}], key="id")


@pytest.mark.with_mongo
def test_delete_removes_only_matching_rows_when_where_has_values_and_lists(store, tables):
    name = tables("del")
    store.write(name, [{"id": i, "g": "a" if i < 3 else "b"} for i in range(6)], key="id")
    assert store.delete(name, {"g": "a", "id": [0, 2, 5]}) == 2
    assert sorted(store.table(name).to_arrow().column("id").to_pylist()) == [1, 3, 4, 5]


@pytest.mark.with_mongo
def test_delete_refuses_when_where_is_empty(store, tables):
    name = tables("all")
    store.write(name, [{"id": 1}], key="id")
    with pytest.raises(pr.ConfigError, match="Refusing to delete every row"):
        store.delete(name, {})


@pytest.mark.with_mongo
def test_to_arrow_returns_the_planned_schema_when_read_in_the_driver(store, tables):
    name = tables("arrow")
    store.write(
        name,
        pa.table(
            {
                "id": pa.array([1, 2], pa.int64()),
                "x": pa.array([0.5, None], pa.float64()),
                "s": pa.array(["å", "b"], pa.string()),
                "ok": pa.array([True, False], pa.bool_()),
            }
        ),
        key="id",
    )
    q = store.table(name, where={"id": [1, 2]})
    table = q.to_arrow()
    assert table.schema == q.schema()
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "x": 0.5, "s": "å", "ok": True},
        {"id": 2, "x": None, "s": "b", "ok": False},
    ]


# -- artifact root ---------------------------------------------------------------------------
def test_artifact_root_defaults_beside_the_sqlite_file_when_not_given(tmp_path, monkeypatch):
    monkeypatch.delenv("PINNACLE_RAY_ARTIFACT_ROOT", raising=False)
    store = pr.connect(tmp_path / "shop.db")
    assert store.artifact_root == str(tmp_path / "shop.artifacts")


def test_artifact_root_follows_the_environment_when_it_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("PINNACLE_RAY_ARTIFACT_ROOT", str(tmp_path / "shared"))
    assert pr.connect(tmp_path / "shop.db").artifact_root == str(tmp_path / "shared")


def test_artifact_root_keeps_a_uri_when_one_is_given(tmp_path):
    store = pr.connect(tmp_path / "shop.db", artifact_root="s3://bucket/models/")
    assert store.artifact_root == "s3://bucket/models"


def test_artifact_root_default_is_inside_the_database_when_the_store_is_not_sqlite():
    url = make_url("postgresql+psycopg://alice:pw@db.example:5432/shop")
    assert default_artifact_root(url) == "pinnacle-db://artifacts"


def test_legacy_artifact_root_names_the_server_when_the_store_is_not_sqlite():
    url = make_url("postgresql+psycopg://alice:pw@db.example:5432/shop")
    expected = Path.home() / ".pinnacle_ray" / "artifacts" / "postgresql-db.example-shop"
    assert legacy_artifact_root(url) == str(expected)


def test_artifact_root_refuses_a_uri_when_it_carries_credentials(tmp_path):
    with pytest.raises(pr.ConfigError, match="credentials") as info:
        pr.connect(tmp_path / "shop.db", artifact_root="s3://KEY:s3cr3t@bucket/models")
    assert "s3cr3t" not in str(info.value)


def test_store_models_is_one_registry_beside_the_database_when_reached_through_connect(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("PINNACLE_RAY_ARTIFACT_ROOT", raising=False)
    store = pr.connect(tmp_path / "shop.db")
    assert isinstance(store.models, pr.ModelRegistry) and store.models is store.models
    version = store.models.register("mlp", "torch", _saved(tmp_path, _mlp()))
    assert version.artifact_uri.startswith(str(tmp_path / "shop.artifacts"))


# -- registry on every backend ---------------------------------------------------------------
@pytest.mark.with_mongo
def test_load_predicts_like_the_original_when_a_sequential_is_registered(registry, tmp_path):
    module = _mlp()
    registered = registry.register(
        "mlp", "torch", _saved(tmp_path, module), metrics={"valid/loss": 0.25}, config={"lr": 0.1}
    )
    got = registry.get("mlp")
    assert (got.version, got.status, got.metrics, got.config) == (
        1,
        "ready",
        {"valid/loss": 0.25},
        {"lr": 0.1},
    )
    assert got.sha256 == registered.sha256 and got.size_bytes == registered.size_bytes
    frame = _frame()
    np.testing.assert_allclose(
        registry.load("mlp").predict(frame), _expected(module, frame), rtol=1e-6
    )


@pytest.mark.with_mongo
def test_list_returns_ready_versions_newest_first_when_several_exist(registry, tmp_path):
    path = _saved(tmp_path, _mlp())
    for name in ("a", "a", "a", "b"):
        registry.register(name, "torch", path)
    assert [v.version for v in registry.list("a")] == [3, 2, 1]
    assert [(v.name, v.version) for v in registry.list()][:2] == [("b", 1), ("a", 3)]


@pytest.mark.with_mongo
def test_handles_load_their_own_weights_when_a_version_has_several(registry, tmp_path):
    late, early = _mlp(seed=2), _mlp(seed=1)
    final = _saved(tmp_path, late)
    epoch_1 = _weights_only(tmp_path, early, "epoch_1")
    version = registry.register(
        "mlp",
        "torch",
        final,
        checkpoints={
            "latest": pr.CheckpointSpec(final, step=20, metrics={"loss": 0.1}),
            "best": pr.CheckpointSpec(final, step=20, metrics={"loss": 0.1}),
            "epoch_1": pr.CheckpointSpec(epoch_1, step=10, metrics={"loss": 0.5}),
        },
    )
    assert version.handles == ("best", "epoch_1", "latest")
    record = registry.get("mlp", handle="epoch_1")
    assert (record.step, record.metrics) == (10, {"loss": 0.5})
    frame = _frame()
    predicted = registry.load("mlp", handle="epoch_1").predict(frame)
    np.testing.assert_allclose(predicted, _expected(early, frame), rtol=1e-6)


@pytest.mark.with_mongo
def test_shared_checkpoint_folders_are_stored_once_when_handles_name_the_same_path(
    registry, tmp_path
):
    path = _saved(tmp_path, _mlp())
    ckpt = _weights_only(tmp_path, _mlp(seed=3), "ckpt")
    spec = pr.CheckpointSpec(ckpt, step=5)
    registry.register("mlp", "torch", path, checkpoints={"latest": spec, "best": spec})
    best, latest = registry.get("mlp", handle="best"), registry.get("mlp", handle="latest")
    assert best.uri == latest.uri
    assert len([p for p in (tmp_path / "art" / "mlp").glob("*/checkpoints/*") if p.is_dir()]) == 1


@pytest.mark.with_mongo
def test_lineage_and_config_are_stored_without_passwords_when_they_carry_urls(registry, tmp_path):
    lineage = {
        "train": {"store": "postgresql://alice:s3cr3t@db/shop", "table": "houses"},
        "dsn": "host=db password=s3cr3t",
    }
    config = {"hf_token": "s3cr3t", "tokenizer": "bert-base"}
    registry.register("mlp", "torch", _saved(tmp_path, _mlp()), lineage=lineage, config=config)
    stored = registry.store.table(registry.tables.models).to_arrow().to_pylist()
    got = registry.get("mlp")
    assert "s3cr3t" not in json.dumps(stored, default=str) + repr(got)
    assert got.lineage["train"]["store"] == "postgresql://alice:***@db/shop"
    assert got.config == {"hf_token": "***", "tokenizer": "bert-base"}


@pytest.mark.data
@pytest.mark.with_mongo
def test_versions_are_unique_and_gapless_when_processes_register_concurrently(
    store, backend, tables, tmp_path, spawn_pool
):
    prefix = _registry_prefix(tables)
    url = store._uri if backend == "mongo" else store._url.render_as_string(hide_password=False)
    job = (url, prefix, str(tmp_path / "art"), str(_saved(tmp_path, _mlp())), 3)
    results = spawn_pool.starmap(register_many, [job] * 4)
    assert sorted(v for got in results for v in got.versions) == list(range(1, 13))
    listed = pr.ModelRegistry(store, prefix=prefix, artifact_root=tmp_path / "art").list("m")
    assert sorted(v.version for v in listed) == list(range(1, 13))


@pytest.mark.with_mongo
@pytest.mark.parametrize("fail_at", ["copy", "checkpoint rows", "ready"])
def test_failed_registration_leaves_no_version_and_no_files_when_a_step_fails(
    registry, store, tmp_path, monkeypatch, fail_at
):
    path = _saved(tmp_path, _mlp())
    ckpt = _weights_only(tmp_path, _mlp(seed=4), "ckpt")
    registry.register("mlp", "torch", path)
    before = _files(tmp_path / "art")
    if fail_at == "copy":
        copy, calls = artifacts._copy_file, []

        def flaky_copy(*args):
            calls.append(args)
            if len(calls) == 2:
                raise OSError("injected failure")
            return copy(*args)

        monkeypatch.setattr(artifacts, "_copy_file", flaky_copy)
    elif fail_at == "checkpoint rows":
        insert = store.insert

        def failing_insert(name, data, key):
            if name == registry.tables.checkpoints:
                raise pr.WriteError("injected failure")
            return insert(name, data, key)

        monkeypatch.setattr(store, "insert", failing_insert)
    else:

        def failing_write(name, data, key):
            raise pr.WriteError("injected failure")

        monkeypatch.setattr(store, "write", failing_write)
    with pytest.raises((OSError, pr.WriteError), match="injected failure"):
        registry.register("mlp", "torch", path, checkpoints={"latest": pr.CheckpointSpec(ckpt)})
    monkeypatch.undo()
    assert store.table(registry.tables.models).to_arrow().column("version").to_pylist() == [1]
    assert store.table(registry.tables.checkpoints).to_arrow().num_rows == 0
    assert _files(tmp_path / "art") == before
    assert registry.register("mlp", "torch", path).version == 2


@pytest.mark.with_mongo
def test_get_raises_model_not_found_listing_what_exists_when_asked_for_unknowns(registry, tmp_path):
    path = _saved(tmp_path, _mlp())
    registry.register("mlp", "torch", path, checkpoints={"latest": pr.CheckpointSpec(path)})
    with pytest.raises(pr.ModelNotFound, match=r"registered models: \['mlp'\]"):
        registry.get("nope")
    with pytest.raises(pr.ModelNotFound, match=r"its versions are \[1\]"):
        registry.get("mlp", version=7)
    with pytest.raises(pr.ModelNotFound, match=r"its handles are \['latest'\]"):
        registry.load("mlp", handle="best")


# -- registry behaviour that does not depend on the backend ----------------------------------
def test_list_is_empty_and_get_says_nothing_is_registered_when_the_registry_is_new(
    local_registry,
):
    assert local_registry.list() == []
    with pytest.raises(pr.ModelNotFound, match="no model is registered"):
        local_registry.get("mlp")


# Each flavor's weights file; the check runs before any flavor reads a byte.
FLAVOR_FILES = {
    "torch": "model.safetensors",
    "sklearn": "model.skops",
    "xgboost": "model.ubj",
    "huggingface": "model.safetensors",
}


@pytest.mark.parametrize("framework", sorted(FLAVOR_FILES))
def test_load_raises_checksum_mismatch_naming_the_file_when_a_file_was_changed(
    local_registry, tmp_path, framework
):
    folder = _saved(tmp_path, _mlp())  # any bytes will do: they are never loaded
    (folder / "model.safetensors").rename(folder / FLAVOR_FILES[framework])
    path = pr.CheckpointSpec(folder)
    version = local_registry.register("m", framework, folder, checkpoints={"best": path})
    weights = Path(version.artifact_uri) / FLAVOR_FILES[framework]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    changed = rf"changed: \['{re.escape(FLAVOR_FILES[framework])}'\]"
    with pytest.raises(pr.ChecksumMismatch, match=changed):
        local_registry.load("m")
    with pytest.raises(pr.ChecksumMismatch, match=changed):
        local_registry.load("m", handle="best")


def test_checkpoint_dir_downloads_a_verified_copy_when_the_root_is_remote(tmp_path, monkeypatch):
    monkeypatch.setenv("PINNACLE_RAY_CACHE_DIR", str(tmp_path / "cache"))
    store = pr.connect(tmp_path / "remote.db", artifact_root="mock:///models")
    module = _mlp()
    version = store.models.register("mlp", "torch", _saved(tmp_path, module))
    assert version.artifact_uri.startswith("mock:///models/mlp/")
    assert store.models.checkpoint_dir("mlp").startswith(str(tmp_path / "cache"))
    frame = _frame()
    np.testing.assert_allclose(store.models.load("mlp").predict(frame), _expected(module, frame))


def test_custom_module_is_rebuilt_when_its_class_is_importable(local_registry, tmp_path):
    module = TwoLayer(3, hidden=5, scale=2.0)
    local_registry.register("two", "torch", _saved(tmp_path, module))
    model = local_registry.load("two", trusted_modules=[TwoLayer])
    assert isinstance(model.module, TwoLayer) and model.module.hidden == 5
    frame = _frame()
    np.testing.assert_allclose(model.predict(frame), _expected(module, frame), rtol=1e-6)


def test_load_asks_for_a_model_template_when_the_class_cannot_be_imported(local_registry, tmp_path):
    class Script(nn.Module):  # like a class in __main__: not importable elsewhere
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            return self.lin(x)

    module = Script()
    local_registry.register("script", "torch", _saved(tmp_path, module))
    with pytest.raises(pr.RegistryError, match=r"Pass model=<an instance of .*Script>"):
        local_registry.load("script")
    frame = _frame()
    model = local_registry.load("script", model=Script())
    np.testing.assert_allclose(model.predict(frame), _expected(module, frame), rtol=1e-6)


def test_describe_architecture_marks_a_main_class_unavailable_when_it_is_defined_in_a_script():
    main_class = type("Net", (nn.Linear,), {"__module__": "__main__"})
    described = describe_architecture(main_class(2, 1))
    assert described["kind"] == "unavailable" and "__main__" in described["reason"]


def test_load_raises_incompatible_checkpoint_when_the_template_does_not_fit(
    local_registry, tmp_path
):
    local_registry.register("mlp", "torch", _saved(tmp_path, _mlp()))
    with pytest.raises(
        pr.IncompatibleCheckpoint, match=r"0\.weight: stored \[8, 3\] vs model \[8, 4\]"
    ):
        local_registry.load("mlp", model=_mlp(n_in=4))


def test_check_compatible_lists_missing_weights_when_the_module_has_more_layers(tmp_path):
    path = _saved(tmp_path, _mlp()) / "model.safetensors"
    bigger = nn.Sequential(*_mlp(), nn.ReLU(), nn.Linear(1, 1))
    with pytest.raises(pr.IncompatibleCheckpoint, match=r"missing in the checkpoint \['4\.bias'"):
        check_compatible(path, bigger)


# Names become folders under the artifact root: nothing that could leave it or hide in it.
UNSAFE_NAMES = [
    "", "../up", "a/b", ".hidden", "x" * 129, "with space", "a/../../b", "/abs/path", "..",
    ".", "a\\b", "..\\up", "C:evil", "nul\x00x", "line\n", "a/", "\uff46ull", None, 3,
]  # fmt: skip


@pytest.mark.parametrize("bad", UNSAFE_NAMES)
def test_register_refuses_a_name_when_it_is_not_safe(local_registry, tmp_path, bad):
    with pytest.raises(pr.ConfigError, match="is not allowed"):
        local_registry.register(bad, "torch", _saved(tmp_path, _mlp()))
    with pytest.raises(pr.ConfigError, match="is not allowed"):
        local_registry.load(bad)
    assert not (tmp_path / "up").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("bad", ["../best", "a/b", "..", ".", "/abs", "x\\y", "n\x00", ""])
def test_register_refuses_a_handle_when_it_is_not_safe(local_registry, tmp_path, bad):
    path = _saved(tmp_path, _mlp())
    with pytest.raises(pr.ConfigError, match=r"checkpoint handle .* is not allowed"):
        local_registry.register("mlp", "torch", path, checkpoints={bad: pr.CheckpointSpec(path)})
    with pytest.raises(pr.ConfigError, match=r"checkpoint handle .* is not allowed"):
        local_registry.load("mlp", handle=bad)


@pytest.mark.parametrize("table", ["models", "checkpoints"])
@pytest.mark.parametrize("where", ["outside", "traversal"])
def test_load_refuses_a_row_when_its_artifact_uri_was_changed_to_leave_the_root(
    local_registry, tmp_path, table, where
):
    path = _saved(tmp_path, _mlp())
    version = local_registry.register(
        "mlp", "torch", path, checkpoints={"best": pr.CheckpointSpec(path)}
    )
    # An identical copy outside the root: its checksum matches, only its place is wrong.
    outside = tmp_path / "outside" / "model"
    shutil.copytree(version.artifact_uri, outside)
    uri = str(outside) if where == "outside" else f"{local_registry.artifact_root}/../outside/model"
    with local_registry.store._engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {getattr(local_registry.tables, table)} SET artifact_uri = :u"),
            {"u": uri},
        )
    handle = "best" if table == "checkpoints" else None
    with pytest.raises(pr.UnsafeArtifact, match=r"outside the artifact root|leave the artifact"):
        local_registry.load("mlp", handle=handle)
    with pytest.raises(pr.UnsafeArtifact):
        local_registry.checkpoint_dir("mlp", handle=handle)
    local_registry.delete("mlp")  # the rows go; nothing outside the root is deleted
    assert (outside / "model.safetensors").is_file() and local_registry.list() == []


def test_registry_refuses_to_read_when_the_schema_version_is_newer(local_registry, tmp_path):
    local_registry.register("mlp", "torch", _saved(tmp_path, _mlp()))
    store = local_registry.store
    store.write(local_registry.tables.meta, [{"key": "schema_version", "value": "2"}], key="key")
    with pytest.raises(pr.RegistryError, match="schema version 2"):
        pr.ModelRegistry(store, artifact_root=tmp_path / "art").list()


# -- torch flavor without a database ---------------------------------------------------------
@pytest.mark.parametrize(
    "module",
    [
        nn.Sequential(
            OrderedDict(
                inp=nn.Linear(4, 16),
                norm=nn.LayerNorm(16, eps=1e-4),
                act=nn.GELU(approximate="tanh"),
                block=nn.Sequential(
                    nn.Linear(16, 8, bias=False),
                    nn.BatchNorm1d(8),
                    nn.LeakyReLU(0.2),
                    nn.Dropout(0.1),
                ),
                out=nn.Linear(8, 3),
                prob=nn.Softmax(dim=-1),
            )
        ),
        nn.Sequential(nn.Embedding(10, 4, padding_idx=0), nn.Flatten()),
        nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.SiLU(), nn.Flatten(), nn.Identity()),
    ],
    ids=["nested-named", "embedding", "conv"],
)
def test_build_module_rebuilds_standard_layers_when_given_their_json_description(module):
    described = json.loads(json.dumps(describe_architecture(module)))
    rebuilt = build_module(described)
    assert repr(rebuilt) == repr(module)
    rebuilt.load_state_dict(module.state_dict())  # same names and shapes


def test_predict_accepts_pandas_arrow_and_numpy_dicts_when_they_hold_the_features(tmp_path):
    module = _mlp()
    model = load_model(_saved(tmp_path, module))
    frame = _frame()
    expected = _expected(module, frame)
    batches = [frame, pa.Table.from_pandas(frame), {c: frame[c].to_numpy() for c in frame}]
    for batch in batches:
        np.testing.assert_allclose(model.predict(batch), expected, rtol=1e-6)


def test_predict_raises_column_not_found_naming_it_when_a_feature_is_missing(tmp_path):
    model = load_model(_saved(tmp_path, _mlp()))
    with pytest.raises(pr.ColumnNotFound, match=r"no column\(s\) \['b'\]"):
        model.predict(_frame().drop(columns=["b"]))


def test_predict_returns_class_indices_and_probabilities_when_objective_is_cross_entropy(
    tmp_path,
):
    module = _mlp(n_out=3)
    model = load_model(_saved(tmp_path, module, objective="cross_entropy"))
    frame = _frame()
    with torch.no_grad():
        logits = module(torch.tensor(frame[FEATURES].to_numpy(), dtype=torch.float32))
    np.testing.assert_array_equal(model.predict(frame), logits.argmax(-1).numpy())
    np.testing.assert_allclose(model.predict_proba(frame).sum(axis=1), 1.0, rtol=1e-6)


def _load_and_predict(files: pr.registry.ModelFiles, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(files.load().predict(frame))


@pytest.mark.data
def test_model_files_load_the_same_model_in_a_ray_task_with_the_registry_gone(tmp_path):
    import ray

    store = pr.connect(tmp_path / "m.db")
    module = _mlp()
    store.models.register("m", "torch", _saved(tmp_path, module))
    files = store.models.files("m")
    frame = _frame()
    expected = np.asarray(store.models.load("m").predict(frame))
    store.close()
    for path in tmp_path.glob("m.db*"):  # the registry's rows are gone; its files remain
        path.unlink()
    got = ray.get(ray.remote(_load_and_predict).remote(files, frame))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
