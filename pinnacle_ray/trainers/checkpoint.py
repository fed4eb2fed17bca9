"""Checkpoints in safe formats: weights and optimizer tensors as safetensors, the rest JSON.

Nothing here pickles, so loading a checkpoint never runs code. Use :func:`report` inside a
``train_loop_per_worker`` to report metrics with a checkpoint in one line.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import ray.train
import torch
from safetensors.torch import load_file, save_file

__all__ = ["get_checkpoint", "load_state", "report", "save_state", "set_registered_start"]

from ..registry.torch_flavor import MODEL_FILE, OPTIMIZER_TENSORS, STATE_FILE
from .start_checkpoint import get_checkpoint, set_registered_start


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model  # DDP wraps the model


def save_state(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (+ ``optimizer`` state and JSON-able ``extra``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    save_file(weights, str(directory / MODEL_FILE))
    state: dict[str, Any] = {"extra": extra or {}}
    if optimizer is not None:
        tensors, structure = _split_optimizer(optimizer.state_dict())
        save_file(tensors, str(directory / OPTIMIZER_TENSORS))
        state["optimizer"] = structure
    (directory / STATE_FILE).write_text(json.dumps(state))


def load_state(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Restore ``model`` (+ ``optimizer``) from ``directory``; returns the ``extra`` dict."""
    directory = Path(directory)
    _unwrap(model).load_state_dict(load_file(str(directory / MODEL_FILE)))
    state = json.loads((directory / STATE_FILE).read_text())
    if optimizer is not None and "optimizer" in state:
        tensors = load_file(str(directory / OPTIMIZER_TENSORS))
        optimizer.load_state_dict(_join_optimizer(tensors, state["optimizer"]))
    return state.get("extra", {})


def report(
    metrics: dict[str, Any],
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """``ray.train.report`` with a checkpoint of ``model``/``optimizer`` written by rank 0.

    Every worker must call it (Ray Train reports are collective); only rank 0 writes files.
    """
    if model is None or ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_state(tmp, model, optimizer, {**(extra or {}), "metrics": metrics})
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for pid, values in state["state"].items():
        entry: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                name = f"{pid}.{key}"
                tensors[name] = value.detach().cpu().contiguous()
                entry[key] = {"tensor": name}
            else:
                entry[key] = {"value": value}
        per_param[str(pid)] = entry
    return tensors, {"state": per_param, "param_groups": state["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], structure: dict[str, Any]) -> dict:
    state = {
        int(pid): {
            key: tensors[spec["tensor"]] if "tensor" in spec else spec["value"]
            for key, spec in entry.items()
        }
        for pid, entry in structure["state"].items()
    }
    return {"state": state, "param_groups": structure["param_groups"]}
