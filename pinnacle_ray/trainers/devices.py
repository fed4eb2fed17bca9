"""Which device each piece of a run uses, decided once so that GPU runs are right by
construction: collectives on the worker's own device, XGBoost's ``device``, Hugging Face
precision flags a CPU worker cannot honour, and how many GPUs a node can ever offer.

On GPUs Ray Train's process group is NCCL, which takes only CUDA tensors: a collective on a
CPU tensor fails at the first validation. Gloo (CPU workers) takes CPU tensors. Building the
tensor on ``ray.train.torch.get_device()`` is right for both.

torch is imported inside the functions that need it: the XGBoost trainer imports this
module, and an XGBoost-only install has no torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

    from .cluster_shape import ClusterShape

__all__ = [
    "all_sum",
    "check_hf_precision",
    "collective_tensor",
    "largest_node_gpus",
    "worker_device",
    "xgboost_device_params",
]

logger = logging.getLogger("pinnacle_ray.trainers")

# TrainingArguments flags that need a GPU; each fails on a CPU worker when its value is True
# (checked on transformers 5.25, torch 2.13 CPU, accelerate 1.16). fp16/bf16 and their
# *_full_eval variants are not here: with use_cpu=True they run under torch's CPU autocast.
GPU_ONLY_TRAINING_ARGS = {
    "tf32": "TF32 matmuls exist only on NVIDIA Ampere or newer GPUs",
}
# TrainingArguments flags that run on CPU workers, but as CPU autocast (said once, in a log).
CPU_AUTOCAST_ARGS = ("fp16", "bf16", "fp16_full_eval", "bf16_full_eval")


def worker_device() -> torch.device:
    """The device this Ray Train worker trains on (``cuda:<local rank>`` on a GPU worker,
    else CPU); CPU outside a Ray Train worker."""
    import torch
    from ray.train.utils import _in_ray_train_worker

    if _in_ray_train_worker():
        import ray.train.torch

        return ray.train.torch.get_device()
    return torch.device("cpu")


def collective_tensor(values: Sequence[float], device: torch.device | str) -> torch.Tensor:
    """``values`` as the float64 tensor a collective reduces, on ``device`` (NCCL reduces
    only CUDA tensors, gloo CPU ones: the caller passes its worker's device)."""
    import torch

    return torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)


def all_sum(values: Sequence[float], device: torch.device | str | None = None) -> list[float]:
    """Element-wise sums of ``values`` over every worker of the process group (``values``
    unchanged without one, or with one worker). Every worker must call it, in the same order.

    The tensor lives on ``device`` (default: this worker's :func:`worker_device`)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(v) for v in values]
    tensor = collective_tensor(values, worker_device() if device is None else device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def xgboost_device_params(params: Mapping[str, Any], use_gpu: bool) -> dict[str, Any]:
    """XGBoost ``params`` with the ``device`` the workers boost on: ``"cuda"`` when
    ``use_gpu`` and the params name no device (each Ray worker sees only its own GPU, so
    ``"cuda"`` is that one); a device the user set is kept. A CUDA device on CPU-only
    workers is refused: XGBoost would fail on every worker after the data was read."""
    out = dict(params)
    device = out.get("device")
    if device is None:
        if use_gpu:
            out["device"] = "cuda"
        return out
    if not isinstance(device, str):
        raise ConfigError(
            f"params['device'] must be a string such as 'cpu' or 'cuda', got {device!r}"
        )
    if not use_gpu and device.split(":")[0] in ("cuda", "gpu"):
        raise ConfigError(
            f"params['device']={device!r} but the workers have no GPU (use_gpu=False); pass "
            "scaling_config=ScalingConfig(..., use_gpu=True), or drop params['device']"
        )
    return out


def check_hf_precision(training_args: Mapping[str, Any], use_gpu: bool) -> None:
    """Refuse, before any read or worker starts, the ``training_args`` that fail on CPU
    workers (``use_gpu=False``), naming the fix; note fp16/bf16 that will run on CPU."""
    if use_gpu:
        return
    for key, why in GPU_ONLY_TRAINING_ARGS.items():
        if training_args.get(key):
            raise ConfigError(
                f"training_args[{key!r}]={training_args[key]!r} needs a GPU ({why}), but the "
                "workers have none (use_gpu=False): pass scaling_config=ScalingConfig(..., "
                f"use_gpu=True), or drop {key!r}"
            )
    asked = [key for key in CPU_AUTOCAST_ARGS if training_args.get(key)]
    if asked:
        logger.info(
            "training_args %s on CPU workers (use_gpu=False) run under torch's CPU autocast, "
            "which on most CPUs is slower than float32; pass use_gpu=True to train on GPUs",
            asked,
        )


def largest_node_gpus(shape: ClusterShape) -> float:
    """The most GPUs one node of the cluster ``shape`` has, or can have once its autoscaler
    adds a node of a type that declares GPUs (``inf`` when an autoscaler runs whose node
    types are unknown): an actor or worker needing more on one node never starts."""
    if shape.types_unknown:
        return math.inf
    up = [float(node.get("GPU", 0.0)) for node in shape.nodes]
    can_add = [float(t.resources.get("GPU", 0.0)) for t in shape.node_types if t.can_add != 0]
    if shape.max_new_nodes == 0:
        can_add = []
    return max([0.0, *up, *can_add])
