"""Importable pieces for tests/test_predict.py: a torch module that Ray Data's actors rebuild
from its import path, which counts how often it is built and can be made to fail."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class Tripwire(nn.Module):
    """A linear model that raises on any row whose first input is >= ``trip``, and appends a
    line to the file ``log`` (when given) each time it is constructed."""

    def __init__(self, n_in: int, trip: float = 1e9, log: str = "") -> None:
        super().__init__()
        self.n_in = n_in
        self.trip = trip
        self.log = log
        self.linear = nn.Linear(n_in, 1)
        if log:
            with Path(log).open("a") as f:
                f.write("built\n")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] >= self.trip).any()):
            raise ValueError(f"tripwire: an input is >= {self.trip}")
        return self.linear(x)
