"""Importable pieces for tests/test_registry.py: a custom module class that the torch flavor
rebuilds from its import path. (The concurrent registrations are in registry_race.py.)"""

from __future__ import annotations

import torch
from torch import nn


class TwoLayer(nn.Module):
    """A custom module whose constructor arguments are attributes of the same name."""

    def __init__(self, n_in: int, hidden: int = 8, scale: float = 1.0) -> None:
        super().__init__()
        self.n_in = n_in
        self.hidden = hidden
        self.scale = scale
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.scale
