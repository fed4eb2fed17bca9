"""Checkpoint state in safe formats restores everything needed to continue exactly."""

from __future__ import annotations

import torch

import pinnacle_ray as pr


def _step(model, optimizer, x, y):
    loss = ((model(x).squeeze(1) - y) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_adam_continues_bit_for_bit_when_restored_from_a_saved_state(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(5):
        _step(model, optimizer, x, y)
    pr.save_state(tmp_path, model, optimizer, {"step": 5, "epoch": 1})

    clone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    clone_optimizer = torch.optim.Adam(clone.parameters(), lr=0.5)  # lr comes back too
    extra = pr.load_state(tmp_path, clone, clone_optimizer)
    assert extra == {"step": 5, "epoch": 1}
    for _ in range(5):
        _step(model, optimizer, x, y)
        _step(clone, clone_optimizer, x, y)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_no_checkpoint_file_is_a_pickle(tmp_path):
    model = torch.nn.Linear(2, 1)
    pr.save_state(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model.safetensors", "optimizer.safetensors", "state.json"]
