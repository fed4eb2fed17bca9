"""Ray Train's run storage: one setting (``store.models.run_storage()``) drives every fit and
sweep, so checkpoints are reachable from every node; what cannot be is refused first.

The decision is tested directly over fake node lists (unit tier). The runs force the shared
storage on this single-node Ray with ``PINNACLE_RAY_RUN_STORAGE=shared`` (what a cluster with
other nodes gets by default); the real multi-node scenarios live in the cluster tier.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
import ray
import sqlalchemy as sa
import torch
from conftest import PG_URL
from ray import tune
from ray.train import RunConfig
from sklearn.linear_model import Ridge

import pinnacle_ray as pr
from pinnacle_ray.errors import ConfigError, StorageNotShared
from pinnacle_ray.registry import RunStorage
from pinnacle_ray.trainers.cluster_shape import ClusterShape, NodeType
from pinnacle_ray.trainers.storage import (
    RUN_STORAGE_ENV,
    NodeSpread,
    RegisteredCheckpoint,
    StorageChoice,
    can_grow,
    choose_run_storage,
    other_worker_nodes,
    user_storage_path,
)

FEATURES = ["x0", "x1", "x2"]
WEIGHTS = np.array([1.5, -2.0, 0.5])
ONE_NODE = NodeSpread()
TWO_NODES = NodeSpread(other_nodes=("worker-1",))


def _node(node_id: str, alive: bool = True, **resources: float) -> dict:
    return {"NodeID": node_id, "Alive": alive, "Resources": dict(resources)}


# -- the decision (unit) -------------------------------------------------------------------
def test_other_nodes_count_when_alive_with_cpus_or_gpus_and_not_the_drivers():
    nodes = [
        _node("head", CPU=2.0),
        _node("dead", alive=False, CPU=4.0),
        _node("memory-only", memory=1e9),
        _node("gpu-only", GPU=1.0),
        _node("cpu", CPU=1.0, memory=1e9),
    ]
    assert other_worker_nodes(nodes, "head") == ["gpu-only", "cpu"]
    assert other_worker_nodes([_node("head", CPU=8.0)], "head") == []


def test_head_without_cpus_and_one_worker_node_is_multi_node_when_the_driver_is_on_the_head():
    nodes = [_node("head", CPU=0.0, memory=1e9), _node("worker", CPU=2.0)]
    spread = NodeSpread(tuple(other_worker_nodes(nodes, "head")))
    assert spread.multi_node and spread.other_nodes == ("worker",)


def test_autoscaler_counts_as_growth_when_it_can_still_add_a_node_with_cpus():
    up = ({"CPU": 0.0},)
    cpu = NodeType("cpu", {"CPU": 2.0}, 3)
    assert can_grow(ClusterShape(nodes=up, node_types=(cpu,), autoscaling=True))
    assert can_grow(ClusterShape(nodes=up, autoscaling=True))  # node types unknown
    assert not can_grow(ClusterShape(nodes=up, node_types=(cpu,), autoscaling=False))
    full = NodeType("cpu", {"CPU": 2.0}, 0)
    assert not can_grow(ClusterShape(nodes=up, node_types=(full,), autoscaling=True))
    assert not can_grow(
        ClusterShape(nodes=up, node_types=(cpu,), autoscaling=True, max_new_nodes=0)
    )
    memory_only = NodeType("mem", {"memory": 1e9}, None)
    assert not can_grow(ClusterShape(nodes=up, node_types=(memory_only,), autoscaling=True))


def test_sqlite_store_is_refused_on_a_multi_node_cluster_naming_the_fix(tmp_path):
    store = pr.connect(tmp_path / "local.db")
    storage = store.models.run_storage()
    assert storage == RunStorage(None, None, False)
    with pytest.raises(StorageNotShared) as caught:
        choose_run_storage(storage, TWO_NODES, what="fit of 'mlp'")
    message = str(caught.value)
    assert message.startswith("fit of 'mlp': this datastore keeps checkpoints")
    assert "1 other node(s)" in message
    assert 'pr.connect("postgresql://...")' in message
    assert 'artifact_root="s3://bucket/prefix"' in message
    assert 'artifact_root="file:///shared/folder"' in message
    assert isinstance(caught.value, ConfigError)
    assert choose_run_storage(storage, ONE_NODE) == StorageChoice()  # one machine: fine


def test_local_folder_artifact_root_is_refused_on_a_multi_node_cluster(tmp_path):
    store = pr.connect(PG_URL, artifact_root=tmp_path / "artifacts")
    try:
        storage = store.models.run_storage()
        assert not storage.shared
        with pytest.raises(StorageNotShared, match="2 other node"):
            choose_run_storage(storage, NodeSpread(("a", "b")))
    finally:
        store.close()


def test_shared_storage_is_used_only_when_the_cluster_has_or_can_get_other_nodes():
    fs = pafs.SubTreeFileSystem("/tmp", pafs.LocalFileSystem())
    storage = RunStorage("runs", fs, True)
    shared = StorageChoice("runs", fs)
    assert choose_run_storage(storage, ONE_NODE) == StorageChoice()
    assert choose_run_storage(storage, TWO_NODES) == shared
    assert choose_run_storage(storage, NodeSpread(can_grow=True)) == shared
    assert choose_run_storage(storage, ONE_NODE, mode="shared") == shared


def test_users_storage_path_wins_but_a_local_one_is_refused_on_several_nodes():
    storage = RunStorage("runs", pafs.LocalFileSystem(), True)
    assert choose_run_storage(storage, TWO_NODES, user_path="s3://bucket/runs").default
    assert choose_run_storage(storage, TWO_NODES, user_path="file:///mnt/nfs/runs").default
    assert choose_run_storage(storage, ONE_NODE, user_path="/tmp/runs").default
    with pytest.raises(StorageNotShared, match=r"storage_path='/tmp/runs' is a local folder"):
        choose_run_storage(storage, TWO_NODES, user_path="/tmp/runs")


def test_rays_default_storage_path_is_not_taken_for_the_users_choice():
    assert user_storage_path(None) is None
    assert user_storage_path(RunConfig()) is None
    assert user_storage_path(tune.RunConfig(name="x")) is None
    assert user_storage_path(RunConfig(storage_path="/data/runs")) == "/data/runs"
    s3 = pafs.S3FileSystem(region="us-east-1", anonymous=True)
    assert user_storage_path(RunConfig(storage_path="bucket/runs", storage_filesystem=s3)) == (
        "s3://bucket/runs"
    )


def test_unknown_run_storage_mode_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match=r"PINNACLE_RAY_RUN_STORAGE='nfs' is not one of"):
        choose_run_storage(None, ONE_NODE, mode="nfs")


# -- runs with the shared storage forced on this single node -------------------------------
def _points(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = x @ WEIGHTS + 0.05 * rng.normal(size=n)
    return {"id": np.arange(n)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y}


@pytest.fixture
def shared_store(mongo_uri):
    """MongoDB with its default (in-database, GridFS) artifacts, a small table in it.

    PostgreSQL's in-database run storage is fitted on in test_bounded_disk.py (torch fits
    in a row, with these same checks) and below (the user's storage path, XGBoost, a
    sweep): a fit more here tested nothing those do not."""
    store = pr.connect(mongo_uri)
    table = f"runs_{uuid.uuid4().hex[:8]}"
    store.write(table, pa.table(_points(400)), key="id")
    yield store, table
    _drop(store, table)
    store.close()


def _drop(store, table: str) -> None:
    if isinstance(store, pr.MongoDatastore):
        store.drop(table)
        return
    with store._engine.begin() as conn:
        conn.execute(sa.schema.DropTable(sa.Table(table, sa.MetaData()), if_exists=True))


@pytest.fixture
def forced_shared(monkeypatch):
    monkeypatch.setenv(RUN_STORAGE_ENV, "shared")


def _linear(name: str, **kw) -> pr.TorchTrainer:
    torch.manual_seed(0)
    return pr.TorchTrainer(
        model=torch.nn.Linear(len(FEATURES), 1),
        objective="mse",
        features=FEATURES,
        label="y",
        optimizer_kwargs={"lr": 0.1},
        batch_size=50,
        epochs=1,
        listen=None,
        name=name,
        **kw,
    )


@pytest.mark.timeout(300)
def test_fit_keeps_its_run_in_the_datastore_and_registers_a_loadable_model_when_shared(
    shared_store, forced_shared
):
    store, table = shared_store
    storage = store.models.run_storage()
    assert storage.shared
    name = f"lin-{uuid.uuid4().hex[:6]}"
    result = _linear(name).fit(train=store.table(table))

    # Registered, so the run's folder is gone (tests/test_bounded_disk.py) and the result's
    # checkpoint is the registry's copy, in the database too.
    runs = storage.storage_filesystem.get_file_info(
        pafs.FileSelector(storage.storage_path, allow_not_found=True)
    )
    assert not [i.base_name for i in runs if i.base_name.startswith(f"{name}-")]
    checkpoint = result.checkpoint
    assert checkpoint.filesystem.type_name == storage.storage_filesystem.type_name
    listing = checkpoint.filesystem.get_file_info(pafs.FileSelector(checkpoint.path))
    assert "model.safetensors" in {info.base_name for info in listing}
    assert store.models.get(name).artifact_uri.startswith("pinnacle-db://artifacts/")
    with checkpoint.as_directory() as folder:  # read back through Ray, as a node would
        assert (Path(folder) / "model.safetensors").stat().st_size > 0
    frame = pd.DataFrame(_points(20, seed=3))
    predicted = store.models.load(name).predict(frame)
    assert predicted.shape == (20,) and np.isfinite(predicted).all()


@pytest.mark.timeout(300)
def test_users_storage_path_wins_over_the_datastores_when_given(tmp_path, forced_shared):
    store = pr.connect(PG_URL)
    table = f"runs_{uuid.uuid4().hex[:8]}"
    store.write(table, pa.table(_points(200)), key="id")
    try:
        name = f"lin-{uuid.uuid4().hex[:6]}"
        config = RunConfig(name=f"{name}-run", storage_path=str(tmp_path / "mine"))
        result = _linear(name, run_config=config).fit(train=store.table(table))
        assert isinstance(result.checkpoint.filesystem, pafs.LocalFileSystem)
        assert result.checkpoint.path.startswith(str(tmp_path / "mine" / f"{name}-run"))
        assert store.models.get(name).version == result.version == 1
        # A run config of your own keeps its run folder (bounded disk removes only ours).
        assert (tmp_path / "mine" / f"{name}-run").is_dir()
    finally:
        _drop(store, table)
        store.close()


def test_registered_checkpoint_is_read_from_the_artifact_root_on_another_node(tmp_path):
    """A resumed run's workers on another node cannot see the driver's copy: they fetch it."""
    store = pr.connect(PG_URL)
    name = f"ckpt-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "pinnacle_meta.json").write_text('{"framework": "sklearn"}')
    try:
        version = store.models.register(name, "sklearn", str(folder))
        start = RegisteredCheckpoint.of(store, name, version.version, None)
        here = ray.get_runtime_context().get_node_id()
        assert start.node_id == here
        elsewhere = RegisteredCheckpoint(start.files, str(tmp_path / "gone"), "another-node")
        with elsewhere.to_checkpoint().as_directory() as copy:
            assert (Path(copy) / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    finally:
        store.models.delete(name)
        store.close()


@pytest.mark.timeout(400)
def test_sweep_registers_its_best_trial_through_the_shared_storage(forced_shared):
    store = pr.connect(PG_URL)
    table = f"runs_{uuid.uuid4().hex[:8]}"
    store.write(table, pa.table(_points(300)), key="id")
    name = f"ridge-{uuid.uuid4().hex[:6]}"
    try:
        result = pr.sweep(
            pr.SklearnTrainer(Ridge(), features=FEATURES, label="y", name=name),
            {"estimator__alpha": tune.grid_search([0.01, 1000.0])},
            train=store.table(table),
            metric="valid/rmse",
            mode="min",
            name=f"{name}-sweep",
        )
        storage = store.models.run_storage()
        assert result.params == {"estimator__alpha": 0.01}
        assert result.checkpoint.filesystem.type_name == storage.storage_filesystem.type_name
        # The trials' run folders are gone once the best is registered: the checkpoint the
        # sweep hands back is the registered copy, on the same (database) filesystem.
        version = store.models.get(name)
        assert result.version == version.version
        assert name in result.checkpoint.path and name in version.artifact_uri
        assert not result.checkpoint.path.startswith(storage.storage_path.rstrip("/") + "/")
        frame = pd.DataFrame(_points(20, seed=5))
        predicted = store.models.load(name).predict(frame)
        assert np.abs(predicted - frame["y"].to_numpy()).max() < 0.5
    finally:
        _drop(store, table)
        store.close()


def test_trial_storage_reaches_a_fit_inside_the_trial_without_reading_the_cluster():
    from pinnacle_ray.trainers.storage import decide, storage_for_trials

    choice = StorageChoice("runs", pafs.LocalFileSystem())
    with storage_for_trials(choice):
        assert decide(SimpleNamespace(models=None), None) is choice


def test_pretrained_folder_is_copied_to_a_worker_on_another_node(tmp_path):
    """A Hugging Face model folder on the driver's disk reaches workers on other nodes."""
    from pinnacle_ray.trainers.storage import ShippedFolder

    folder = tmp_path / "tiny-model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "sub" / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    shipped = ShippedFolder.of(str(folder))
    assert shipped.local_path() == str(folder)  # on the driver's node: read in place
    elsewhere = ShippedFolder(str(folder), "another-node", shipped.files)
    copy = Path(elsewhere.local_path())
    assert copy != folder and copy.is_dir()
    assert (copy / "config.json").read_text() == '{"model_type": "bert"}'
    assert (copy / "sub" / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert elsewhere.local_path() == str(copy)  # one copy per process


@pytest.mark.timeout(400)
def test_xgboost_best_round_is_kept_in_the_shared_storage_beside_the_runs_checkpoints(
    forced_shared,
):
    from tabular_data import breast_cancer

    store = pr.connect(PG_URL)
    table = f"runs_{uuid.uuid4().hex[:8]}"
    features = breast_cancer(store, table)
    name = f"xgb-{uuid.uuid4().hex[:6]}"
    try:
        result = pr.XGBoostTrainer(
            params={"objective": "binary:logistic", "eval_metric": "logloss", "eta": 0.5},
            features=features,
            label="target",
            num_boost_round=200,
            early_stopping_rounds=5,
            name=name,
        ).fit(
            train=store.table(table, where={"split": "train"}, key="id"),
            valid=store.table(table, where={"split": "valid"}, key="id"),
        )
        storage = store.models.run_storage()
        best, _ = result.record.handles()["best"]
        assert best.path == f"{result.path.rstrip('/')}/best_round"
        assert best.filesystem.type_name == storage.storage_filesystem.type_name
        assert store.models.get(name, handle="best").step < result.metrics["round"]
        predicted = store.models.load(name).predict(pd.DataFrame({f: [0.0] for f in features}))
        assert len(predicted) == 1
    finally:
        _drop(store, table)
        store.close()
