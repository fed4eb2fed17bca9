"""Models and functions for tests/test_torch_seed_params.py, importable by path: Ray's
workers import them (tests/ is on their PYTHONPATH), and a registered version stores its
preprocess/postprocess as ``torch_seed_helpers:<name>``."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

PIXELS = (4, 4)  # the tiny "images": 16 bytes per row, one grey level per pixel


class TwoInputs(nn.Module):
    """A model of two inputs: an embedding (rows, dim) and a number (rows, 1)."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.dim = dim
        self.embedding = nn.Linear(dim, 1)
        self.number = nn.Linear(1, 1)

    def forward(self, emb: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        return self.embedding(emb) + self.number(num)


class ImageAndNumber(nn.Module):
    """A model called by keyword: ``pixels`` (rows, 4, 4) and ``num`` (rows, 1)."""

    def __init__(self, side: int = 4) -> None:
        super().__init__()
        self.side = side
        self.linear = nn.Linear(side * side + 1, 1)

    def forward(self, pixels: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([pixels.flatten(1), num], dim=1))


def decode_pixels(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """preprocess: the ``img`` bytes column -> ``pixels`` (rows, 4, 4) in [0, 1]."""
    out = {k: v for k, v in batch.items() if k != "img"}
    raw = np.frombuffer(b"".join(bytes(v) for v in batch["img"]), dtype=np.uint8)
    out["pixels"] = raw.reshape(len(batch["img"]), *PIXELS).astype(np.float32) / 255.0
    return out


def stamp_process(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transform: record which process ran it (a Ray Data task, not a training worker)."""
    return {**batch, "transform_pid": np.full(len(next(iter(batch.values()))), os.getpid())}


def pixels_and_number(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """collate_fn: the keyword inputs; refuses a batch the transform ran on in this process."""
    if (batch["transform_pid"] == os.getpid()).any():
        raise RuntimeError("transform ran inside the training worker")
    return {
        "pixels": torch.as_tensor(batch["pixels"], dtype=torch.float32),
        "num": torch.as_tensor(batch["num"], dtype=torch.float32).reshape(-1, 1),
    }


def to_percent(outputs: np.ndarray) -> np.ndarray:
    """postprocess: the model's [0, 1] outputs as percentages."""
    return outputs * 100.0


def mean_absolute_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """A metric_values function (predictions are the model's outputs, one per row)."""
    return float(np.abs(predictions - targets).mean())


def rows_seen(predictions: np.ndarray, targets: np.ndarray) -> float:
    """A metric_values function: how many validation rows it was given (all workers')."""
    return float(len(targets))
