"""A module that leaves a marker file when it is imported (tests/test_trusted_modules.py):
it stands for any installed module a registry record could name. The marker goes to the
path in ``PINNACLE_TEST_IMPORT_MARKER`` when that is set."""

from __future__ import annotations

import os

import torch
from torch import nn

_MARKER = os.environ.get("PINNACLE_TEST_IMPORT_MARKER")
if _MARKER:
    with open(_MARKER, "a") as f:
        f.write(f"imported in pid {os.getpid()}\n")


class Marked(nn.Module):
    """One linear layer, rebuilt from its import path (``n_in`` is an attribute)."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.n_in = n_in
        self.linear = nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
