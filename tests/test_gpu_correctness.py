"""GPU-correct by construction, shown where a CPU can show it.

Collectives run on the worker's own device (NCCL on GPUs refuses CPU tensors; gloo here
takes the CPU ones), XGBoost boosts on ``device="cuda"`` when ``use_gpu=True``, ``pr.predict``
puts its actors on GPUs only when asked and refuses what can never run, Hugging Face flags
that fail on CPU workers are refused before anything starts, and ``./dev gpu-check`` says
that it checked nothing on a machine without a GPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray.train
import ray.train.torch
import torch
from ray.train import ScalingConfig
from sklearn.linear_model import LinearRegression
from text_data import sentiment_rows, tiny_bert

import pinnacle_ray as pr
from pinnacle_ray.batch_predict import _num_gpus, actor_resources, check_gpus
from pinnacle_ray.cli import main
from pinnacle_ray.registry import sklearn_flavor
from pinnacle_ray.registry.torch_flavor import save_model
from pinnacle_ray.trainers.cluster_shape import ClusterShape, NodeType, read_shape
from pinnacle_ray.trainers.devices import (
    all_sum,
    check_hf_precision,
    collective_tensor,
    largest_node_gpus,
    worker_device,
    xgboost_device_params,
)

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["a", "b"]


def _points(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 2)), columns=FEATURES)
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    frame["y"] = frame["a"] * 2.0 - frame["b"] + 0.5
    return frame


@pytest.fixture
def local(tmp_path):
    """An SQLite store with 200 rows in table ``pts`` (id, a, b, y)."""
    store = pr.connect(tmp_path / "gpu.db")
    store.write("pts", _points(200), key="id")
    yield store
    store.close()


def _register_linear(store, tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 1)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[2.0, -1.0]]))
        module.bias.fill_(0.5)
    folder = save_model(tmp_path / "lin", module, features=FEATURES, label="y", objective="mse")
    store.models.register("lin", "torch", folder)


# -- collectives on the worker's device -------------------------------------------------------
def test_collective_tensor_is_built_on_the_device_given_when_it_is_not_the_cpu():
    # "meta" stands for any non-CPU device: the tensor must not be pinned to the CPU.
    tensor = collective_tensor([1, 2.5], torch.device("meta"))
    assert tensor.device.type == "meta"
    assert tensor.dtype == torch.float64 and tuple(tensor.shape) == (2,)


def test_all_sum_returns_the_values_when_there_is_no_process_group():
    assert all_sum([1, 2.5, 0]) == [1.0, 2.5, 0.0]
    assert worker_device() == torch.device("cpu")  # outside a Ray Train worker


def _summing_loop(config: dict) -> None:
    rank = ray.train.get_context().get_world_rank()
    device = worker_device()
    sums = all_sum([rank + 1, 0.5, 10 * rank])  # on the worker's device (gloo: CPU)
    seen = {
        "sums": sums,
        "device": str(device),
        "torch_device": str(ray.train.torch.get_device()),
        "backend": torch.distributed.get_backend(),
    }
    Path(config["out"], f"rank{rank}.json").write_text(json.dumps(seen))


@pytest.mark.timeout(300)
def test_all_sum_adds_every_worker_values_on_their_device_when_two_workers_run_gloo(tmp_path):
    trainer = ray.train.torch.TorchTrainer(
        _summing_loop,
        train_loop_config={"out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=ray.train.RunConfig(name="sums", storage_path=str(tmp_path / "runs")),
    )
    trainer.fit()
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen["sums"] == [3.0, 1.0, 10.0]  # 1+2, 0.5+0.5, 0+10 on every worker
        assert seen["backend"] == "gloo"
        assert seen["device"] == seen["torch_device"] == "cpu"


# -- XGBoost's device -------------------------------------------------------------------------
def test_xgboost_params_get_cuda_when_use_gpu_is_true_and_no_device_is_set():
    assert xgboost_device_params({"max_depth": 3}, use_gpu=True) == {
        "max_depth": 3,
        "device": "cuda",
    }


def test_xgboost_params_keep_the_user_device_when_one_is_set():
    assert xgboost_device_params({"device": "cuda:1"}, use_gpu=True) == {"device": "cuda:1"}
    assert xgboost_device_params({"device": "cpu"}, use_gpu=True) == {"device": "cpu"}
    assert xgboost_device_params({"device": "cpu"}, use_gpu=False) == {"device": "cpu"}


def test_xgboost_params_are_unchanged_when_use_gpu_is_false():
    params = {"max_depth": 3, "tree_method": "hist"}
    assert xgboost_device_params(params, use_gpu=False) == params


def test_xgboost_fit_is_refused_before_any_read_when_device_is_cuda_without_use_gpu(local):
    trainer = pr.XGBoostTrainer(
        params={"device": "cuda"}, features=FEATURES, label="y", name="xgb-cuda"
    )
    started = time.perf_counter()
    with pytest.raises(pr.ConfigError) as info:
        trainer.fit(train=local.table("pts", key="id"))
    assert str(info.value) == (
        "params['device']='cuda' but the workers have no GPU (use_gpu=False); pass "
        "scaling_config=ScalingConfig(..., use_gpu=True), or drop params['device']"
    )
    assert time.perf_counter() - started < 10
    assert local.models.list() == []


# -- pr.predict on GPUs -----------------------------------------------------------------------
def test_actor_resources_are_cpus_only_when_num_gpus_is_zero():
    assert actor_resources(1.0, 0.0) == {"num_cpus": 1.0}


def test_actor_resources_carry_num_gpus_when_num_gpus_is_set():
    assert actor_resources(1.0, 0.5) == {"num_cpus": 1.0, "num_gpus": 0.5}
    assert actor_resources(0.5, 2.0) == {"num_cpus": 0.5, "num_gpus": 2.0}


@pytest.mark.parametrize("value", [-1, "1", True, None, float("nan"), 1.5])
def test_num_gpus_is_refused_when_it_is_not_a_gpu_count_ray_takes(value):
    with pytest.raises(pr.ConfigError, match="num_gpus"):
        _num_gpus(value)


def test_num_gpus_is_accepted_when_it_is_a_fraction_or_a_whole_number():
    assert [_num_gpus(v) for v in (0, 0.25, 1, 2, 4.0)] == [0.0, 0.25, 1.0, 2.0, 4.0]


def test_check_gpus_names_the_numbers_when_no_node_has_that_many():
    with pytest.raises(pr.ResourceError) as info:
        check_gpus(2.0, ClusterShape.one_node(8, 1))
    assert str(info.value) == (
        "num_gpus=2 per prediction actor, but the largest node has 1 GPU(s), counting node "
        "types the autoscaler can add (nodes up: 1 x {CPU: 8, GPU: 1}; no autoscaler): no "
        "actor could ever start; use num_gpus <= 1"
    )
    check_gpus(1.0, ClusterShape.one_node(8, 1))  # fits: no error


def test_check_gpus_lets_predict_wait_when_the_autoscaler_can_add_a_gpu_node():
    shape = ClusterShape(
        nodes=({"CPU": 0.0},),
        node_types=(NodeType("gpu", {"CPU": 8, "GPU": 4}, 2),),
        autoscaling=True,
    )
    check_gpus(4.0, shape)  # no GPU is up, but a 4-GPU node can be added
    with pytest.raises(pr.ResourceError, match="the largest node has 4 GPU"):
        check_gpus(8.0, shape)


def test_largest_node_gpus_counts_nodes_up_and_node_types_the_autoscaler_can_add():
    assert largest_node_gpus(ClusterShape.one_node(2)) == 0.0
    assert largest_node_gpus(ClusterShape(nodes=({"GPU": 1.0}, {"GPU": 2.0}))) == 2.0
    full = NodeType("gpu", {"GPU": 8}, 0)  # at its max_workers: adds none
    unlimited = NodeType("gpu-big", {"GPU": 4}, None)
    assert largest_node_gpus(ClusterShape(nodes=({"GPU": 1.0},), node_types=(full,))) == 1.0
    assert largest_node_gpus(ClusterShape(nodes=(), node_types=(unlimited,))) == 4.0
    capped = ClusterShape(nodes=(), node_types=(unlimited,), max_new_nodes=0)
    assert largest_node_gpus(capped) == 0.0
    unknown = ClusterShape(nodes=({"CPU": 0.0},), autoscaling=True)  # e.g. KubeRay's sidecar
    assert largest_node_gpus(unknown) == math.inf


def test_largest_node_gpus_is_zero_when_the_local_cluster_has_no_gpu():
    assert largest_node_gpus(read_shape()) == 0.0


def test_predict_is_refused_with_the_numbers_and_writes_nothing_when_the_cluster_has_no_gpu(
    local, tmp_path
):
    _register_linear(local, tmp_path)
    with pytest.raises(pr.ResourceError) as info:
        pr.predict("lin", local.table("pts", key="id"), output="preds", num_gpus=1)
    assert "num_gpus=1 per prediction actor" in str(info.value)
    assert "the largest node has 0 GPU(s)" in str(info.value)
    assert str(info.value).endswith("use num_gpus=0 (CPU)")
    assert "preds" not in local.tables()


def test_predict_refuses_a_sklearn_model_on_gpus_and_writes_nothing_when_num_gpus_is_set(
    local, tmp_path
):
    frame = _points(200)
    folder = tmp_path / "sk"
    sklearn_flavor.save_model(
        folder,
        LinearRegression().fit(frame[FEATURES], frame["y"]),
        {"features": FEATURES, "label": "y", "kind": "regressor"},
    )
    local.models.register("sk", "sklearn", folder)
    with pytest.raises(pr.ConfigError) as info:
        pr.predict("sk", local.table("pts", key="id"), output="preds", num_gpus=1)
    assert str(info.value) == (
        "sk version 1 is a sklearn model, which predicts on CPU only, but num_gpus=1; pass "
        "num_gpus=0"
    )
    assert "preds" not in local.tables()


@pytest.mark.timeout(300)
def test_predict_writes_the_same_rows_as_before_when_num_gpus_is_zero(local, tmp_path):
    _register_linear(local, tmp_path)
    result = pr.predict("lin", local.table("pts", key="id"), output="preds", num_gpus=0)
    assert result.rows == 200
    written = local.table("preds").to_arrow().to_pandas().sort_values("id")
    expected = _points(200)["y"].to_numpy()
    np.testing.assert_allclose(written["prediction"], expected, rtol=1e-5, atol=1e-6)


def test_cli_predict_passes_num_gpus_and_fails_with_the_numbers_when_no_node_has_a_gpu(
    local, tmp_path, capsys
):
    _register_linear(local, tmp_path)
    argv = ["predict", "lin", "--store", local.url, "--table", "pts", "--key", "id"]
    code = main([*argv, "--output", "preds", "--num-gpus", "1"])
    err = capsys.readouterr().err
    assert code != 0
    assert "error: num_gpus=1 per prediction actor, but the largest node has 0 GPU(s)" in err
    assert "preds" not in local.tables()


def test_loaded_models_predict_the_same_when_loaded_on_the_cpu_device(local, tmp_path):
    _register_linear(local, tmp_path)
    frame = _points(20)
    on_cpu = local.models.load("lin", device="cpu")
    assert next(on_cpu.module.parameters()).device == torch.device("cpu")
    np.testing.assert_allclose(on_cpu.predict(frame), local.models.load("lin").predict(frame))


# -- Hugging Face precision on CPU workers ----------------------------------------------------
def test_hf_tf32_is_refused_with_the_fix_when_the_workers_have_no_gpu():
    with pytest.raises(pr.ConfigError) as info:
        check_hf_precision({"tf32": True}, use_gpu=False)
    assert str(info.value) == (
        "training_args['tf32']=True needs a GPU (TF32 matmuls exist only on NVIDIA Ampere or "
        "newer GPUs), but the workers have none (use_gpu=False): pass "
        "scaling_config=ScalingConfig(..., use_gpu=True), or drop 'tf32'"
    )
    check_hf_precision({"tf32": True}, use_gpu=True)  # GPU workers: transformers decides


def test_hf_fp16_and_bf16_pass_the_check_when_the_workers_have_no_gpu():
    # With use_cpu=True they run under torch's CPU autocast (transformers 5.25, torch 2.13).
    for flag in ("fp16", "bf16", "fp16_full_eval", "bf16_full_eval"):
        check_hf_precision({flag: True}, use_gpu=False)


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu-hf")
    store = pr.connect(folder / "text.db")
    store.write("reviews", sentiment_rows(96), key="id")
    yield store, str(tiny_bert(folder / "tiny-bert"))
    store.close()


def test_hf_fit_is_refused_before_training_when_tf32_is_asked_on_cpu_workers(text_store):
    store, bert = text_store
    trainer = pr.HuggingFaceTrainer(
        model=bert, text_column="text", label="label", training_args={"tf32": True}, name="t"
    )
    started = time.perf_counter()
    with pytest.raises(pr.ConfigError, match=r"training_args\['tf32'\]=True needs a GPU"):
        trainer.fit(train=store.table("reviews"))
    assert time.perf_counter() - started < 10
    assert store.models.list() == []


@pytest.mark.timeout(400)
def test_hf_fit_trains_and_registers_when_fp16_is_asked_on_cpu_workers(text_store):
    store, bert = text_store
    result = pr.HuggingFaceTrainer(
        model=bert,
        text_column="text",
        label="label",
        max_length=16,
        training_args={"fp16": True, "num_train_epochs": 1, "per_device_train_batch_size": 16},
        scaling_config=ScalingConfig(num_workers=1),
        name="fp16-cpu",
    ).fit(train=store.table("reviews", where={"split": "train"}))
    assert result.version == 1
    assert np.isfinite(result.metrics["train/loss"])


# -- ./dev gpu-check --------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_gpu_check_says_nothing_was_checked_and_exits_3_when_there_is_no_gpu():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine with one
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no GPU" in done.stdout and "nothing was checked" in done.stdout
    assert "PASS" not in done.stdout and "FAIL" not in done.stdout
