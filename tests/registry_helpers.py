"""Importable pieces for tests/test_registry.py: a custom module class, and the function that
spawned processes run to register concurrently."""

from __future__ import annotations

from typing import Any

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


_start: Any = None


def init_worker(start: Any) -> None:
    """Pool initializer: import the package now and keep the barrier that starts every task
    at the same moment, so registrations really race."""
    global _start
    _start = start
    import pinnacle_ray  # noqa: F401


def register_many(url: str, prefix: str, root: str, artifact_dir: str, count: int) -> list[int]:
    """Register ``count`` versions of model ``m`` (run in a spawned process)."""
    import pinnacle_ray as pr

    if _start is not None:
        _start.wait(timeout=120)
    store = pr.connect(url)
    try:
        registry = pr.ModelRegistry(store, prefix=prefix, artifact_root=root)
        return [registry.register("m", "torch", artifact_dir).version for _ in range(count)]
    finally:
        store.close()
