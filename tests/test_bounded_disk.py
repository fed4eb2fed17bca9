"""Bounded disk: a registered fit leaves no Ray Train run folder behind (the registry holds
copies of its checkpoints), with Ray's local default storage (SQLite store) and with the
in-database run storage of a server store; XGBoost's best-round temp folder is gone too;
``TrainResult.checkpoint`` is the registered copy of the run's latest checkpoint.

Each scan is scoped to this test's own model names and temp folder: other test sessions
write to the same storage roots at the same time.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import torch
from conftest import PG_URL, Tables
from ray.train.constants import DEFAULT_STORAGE_PATH
from tabular_data import breast_cancer

import pinnacle_ray as pr
from pinnacle_ray.trainers.storage import RUN_STORAGE_ENV

# Fits in a row: each is checked to leave nothing behind, and the later ones run beside a
# registered version; two check what five did (was 5: three more Ray Train starts per test).
FITS = 2


@pytest.fixture
def scoped_tmp(tmp_path, monkeypatch) -> Path:
    """The driver's temp folder for this test only (XGBoost's best-round scratch goes there)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _xgb(name: str, features: list[str], **kwargs) -> pr.XGBoostTrainer:
    return pr.XGBoostTrainer(
        params={"objective": "binary:logistic", "eval_metric": "logloss", "eta": 0.5},
        features=features,
        label="target",
        num_boost_round=60,
        early_stopping_rounds=3,  # stops before round 60: a best-round booster is written
        name=name,
        **kwargs,
    )


def _runs_in(fs: pafs.FileSystem, root: str, name: str) -> list[str]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except FileNotFoundError:
        return []
    return [i.base_name for i in infos if i.base_name.startswith(f"{name}-")]


@pytest.mark.timeout(900)
def test_xgboost_fits_in_a_row_leave_no_run_folder_and_no_temp_folder_in_ray_default_storage(
    tmp_path, scoped_tmp
):
    store = pr.connect(tmp_path / "shop.db")
    features = breast_cancer(store, "cancer")
    name = f"bounded-xgb-{uuid.uuid4().hex[:6]}"
    local = pafs.LocalFileSystem()
    train = store.table("cancer", where={"split": "train"}, key="id")
    valid = store.table("cancer", where={"split": "valid"}, key="id")
    for i in range(FITS):
        result = _xgb(name, features).fit(train=train, valid=valid)
        assert result.version == i + 1
        assert store.models.get(name, handle="best").step < result.metrics["round"]
        assert _runs_in(local, DEFAULT_STORAGE_PATH, name) == []
        assert list(scoped_tmp.glob("pinnacle-xgb-best-*")) == []
    # The result's checkpoint is the registered latest one: it opens, with its booster.
    with result.checkpoint.as_directory() as folder:
        assert (Path(folder) / "model.ubj").stat().st_size > 0
    predicted = store.models.load(name, handle="best").predict(
        train.to_arrow().to_pandas()[features].head(3)
    )
    assert len(predicted) == 3
    store.close()


# A run config of your own keeps its run folder: checked in test_run_storage.py on the fit
# whose storage path wins over the datastore's (one Ray Train start fewer than a fit here).


@pytest.mark.timeout(900)
def test_torch_fits_in_a_row_leave_no_run_folder_in_the_databases_run_storage(monkeypatch):
    monkeypatch.setenv(RUN_STORAGE_ENV, "shared")  # checkpoints in the database, as on a cluster
    store = pr.connect(PG_URL)
    names = Tables(store)
    table = names("cancer")
    features = breast_cancer(store, table)[:4]
    name = f"bounded-mlp-{uuid.uuid4().hex[:6]}"
    storage = store.models.run_storage()
    fs, root = storage.storage_filesystem, storage.storage_path
    try:
        for i in range(FITS):
            torch.manual_seed(i)
            result = pr.TorchTrainer(
                model=torch.nn.Sequential(torch.nn.Linear(4, 1)),
                objective="mse",
                features=features,
                label="target",
                batch_size=128,
                epochs=2,
                name=name,
            ).fit(train=store.table(table, key="id"))
            assert result.version == i + 1
            assert _runs_in(fs, root, name) == []
            for handle in ("latest", "epoch_0", "epoch_1"):  # registered copies, readable
                assert store.models.get(name, version=i + 1, handle=handle).step > 0
        with result.checkpoint.as_directory() as folder:  # read back through Ray, as a node would
            assert (Path(folder) / "model.safetensors").stat().st_size > 0
        assert result.checkpoint.filesystem.type_name == fs.type_name
        # The registered copy is in the database too, and loads (PostgreSQL's case of
        # test_run_storage.py's shared-storage fit, checked on this run instead of a fit more).
        assert store.models.get(name).artifact_uri.startswith("pinnacle-db://artifacts/")
        rows = store.table(table, key="id").to_arrow().to_pandas().head(20)
        predicted = store.models.load(name).predict(rows[features])
        assert predicted.shape == (20,) and np.isfinite(predicted).all()
    finally:
        names.drop_all()
        store.close()


@pytest.mark.timeout(900)
def test_hugging_face_evaluations_checkpoint_only_epoch_ends_and_improvements(tmp_path, mongo_uri):
    """On a MongoDB query: the same run shows that the Hugging Face trainer fine-tunes and
    registers on documents (test_mongo.py's case, once a Ray Train start of its own)."""
    from ray.train import ScalingConfig
    from text_data import sentiment_rows, tiny_bert

    store = pr.connect(mongo_uri, artifact_root=tmp_path / "art")
    collection = f"reviews_{uuid.uuid4().hex[:8]}"
    store.write(collection, sentiment_rows(200), key="id")
    name = f"bounded-hf-{uuid.uuid4().hex[:6]}"
    result = pr.HuggingFaceTrainer(
        model=str(tiny_bert(tmp_path / "tiny-bert")),
        text_column="text",
        label="label",
        training_args={
            "learning_rate": 5e-3,
            "per_device_train_batch_size": 16,
            "max_steps": 16,
            "eval_steps": 1,  # an evaluation every step
            "warmup_steps": 0,
        },
        max_length=16,
        listen="valid/accuracy",  # moves in steps of 1/40: few strict improvements
        scaling_config=ScalingConfig(num_workers=1),
        name=name,
    ).fit(
        train=store.table(collection, where={"split": "train"}, key="id"),
        valid=store.table(collection, where={"split": "valid"}, key="id"),
    )
    assert result.version == 1 and np.isfinite(result.metrics["valid/loss"])
    assert store.models.get(name).lineage["train"]["rows"] == 160
    predicted = store.models.load(name).predict(["great lovely product", "awful sad"])
    assert set(predicted) <= {"pos", "neg"} and len(predicted) == 2
    history = result.history
    evaluations = history[history["valid/accuracy"].notna()]
    assert len(evaluations) >= 16  # every evaluation's metrics are reported
    checkpointed = [m for _, m in result.ray_result.best_checkpoints]
    scores = list(evaluations["valid/accuracy"])
    improvements = sum(1 for i, v in enumerate(scores) if v > max(scores[:i], default=-1.0))
    ends = {m["step"] for m in checkpointed if m.get("epoch_done") or m["step"] == 16}
    # A model only where a handle may point: improvements, epoch ends, the last step.
    assert len(checkpointed) <= improvements + len(ends) < len(evaluations)
    best = store.models.get(name, handle="best")
    assert best.metrics["valid/accuracy"] == pytest.approx(max(scores))
    store.drop(collection)
    store.close()


# -- keep_checkpoints bounds Ray Train's checkpoints while the run goes --------------------
KEEP = 2
LOSSES = [0.5, 0.2, 0.4, 0.6, 0.7, 0.8]  # 6 epochs; the best (epoch 1) is not a kept epoch


def _counting_loop(config: dict) -> None:
    """One checkpoint per epoch. Each report carries how many checkpoint folders the run
    folder held once Ray Train's controller had handled every earlier report (Ray's
    get_all_reported_checkpoints waits for that; its callbacks have run by then)."""
    import ray.train
    from ray.train import CheckpointConsistencyMode

    storage = ray.train.get_context().get_storage()
    fs, run = storage.storage_filesystem, storage.experiment_fs_path
    for epoch, loss in enumerate(LOSSES):
        ray.train.get_all_reported_checkpoints(consistency_mode=CheckpointConsistencyMode.COMMITTED)
        folders = [
            i
            for i in fs.get_file_info(pafs.FileSelector(run))
            if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")
        ]
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch.txt").write_text(str(epoch))
            ray.train.report(
                {"epoch": epoch, "valid/loss": loss, "folders": len(folders)},
                checkpoint=ray.train.Checkpoint.from_directory(folder),
            )


@pytest.mark.timeout(600)
def test_keep_checkpoints_bounds_the_run_folder_while_the_run_goes(tmp_path):
    store = pr.connect(tmp_path / "shop.db")
    store.write("rows", {"id": list(range(8)), "x": [0.0] * 8}, key="id")
    name = f"kept-epochs-{uuid.uuid4().hex[:6]}"
    result = pr.TorchTrainer(
        _counting_loop, listen="valid/loss", mode="min", keep_checkpoints=KEEP, name=name
    ).fit(train=store.table("rows", key="id"))
    # Before each report: the last KEEP epoch ends and the best so far, never every epoch.
    assert [r.metrics["folders"] for r in result.reports] == [0, 1, 2, 2, 3, 3]
    version = store.models.get(name)
    assert version.handles == ("best", "epoch_4", "epoch_5", "latest")
    for handle, epoch in (("best", 1), ("epoch_4", 4), ("epoch_5", 5), ("latest", 5)):
        folder = store.models.checkpoint_dir(name, version=1, handle=handle)
        assert Path(folder, "epoch.txt").read_text() == str(epoch)
    assert _runs_in(pafs.LocalFileSystem(), DEFAULT_STORAGE_PATH, name) == []
    store.close()


# -- a sweep leaves nothing of its trials once the best is registered ----------------------
def _one_report_loop(config: dict) -> None:
    """One checkpointed report of ``train/loss`` = the trial's ``loss``."""
    import ray.train

    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "loss.txt").write_text(str(config["loss"]))
        ray.train.report(
            {"epoch": 0, "train/loss": config["loss"]},
            checkpoint=ray.train.Checkpoint.from_directory(folder),
        )


@pytest.mark.timeout(900)
def test_a_registered_sweep_leaves_no_trial_folder_in_the_storage_root(tmp_path, scoped_tmp):
    from ray import tune

    store = pr.connect(tmp_path / "shop.db")
    store.write("rows", {"id": list(range(8)), "x": [0.0] * 8}, key="id")
    name = f"swept-{uuid.uuid4().hex[:6]}"
    local = pafs.LocalFileSystem()
    before = _runs_in(local, DEFAULT_STORAGE_PATH, name)
    swept = pr.sweep(
        pr.TorchTrainer(_one_report_loop, train_loop_config={"loss": 1.0}, name=name),
        # Two trials (was three): the best is the second, so a non-best trial's folder is
        # checked to be gone as well as the registered one's; one Ray Train start fewer.
        {"train_loop_config__loss": tune.grid_search([0.3, 0.1])},
        train=store.table("rows", key="id"),
        metric="train/loss",
        mode="min",
        name=f"{name}-sweep",
    )
    assert swept.version == 1 and len(swept.trials) == 2
    # Neither Tune's folder of the sweep nor any trial's Ray Train run is left.
    assert _runs_in(local, DEFAULT_STORAGE_PATH, name) == before == []
    assert not Path(swept.grid.experiment_path).exists()
    assert list(scoped_tmp.iterdir()) == []
    # What the registry needs it holds: the best trial's checkpoint, which the result names.
    with swept.checkpoint.as_directory() as folder:
        assert Path(folder, "loss.txt").read_text() == "0.1"
    store.close()
