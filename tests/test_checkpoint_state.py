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


def _updates(model, lr=0.1):
    """The managed loop's step-taker: SGD with momentum, clipping, accumulation over two
    batches and a per-step OneCycle schedule."""
    from pinnacle_ray.trainers.torch_step import Updates

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return Updates(
        model,
        optimizer,
        torch.device("cpu"),
        grad_clip_norm=0.5,
        accumulate=2,
        scheduler_cls="OneCycleLR",
        scheduler_kwargs={"max_lr": 0.2, "total_steps": 20},
        scheduler_interval="step",
    )


def _batches(updates, model, x, y, n):
    for i in range(n):
        rows = slice(8 * (i % 8), 8 * (i % 8) + 8)
        updates.backward(((model(x[rows]).squeeze(1) - y[rows]) ** 2).mean())


def test_scheduler_clipping_and_accumulation_continue_bit_for_bit_from_a_saved_state(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    updates = _updates(model)
    _batches(updates, model, x, y, 10)  # 5 optimizer steps: no partial group pending
    pr.save_state(tmp_path, model, updates.optimizer, {"step": 5, **updates.state()})

    clone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    clone_updates = _updates(clone, lr=0.5)  # lr and the schedule's position come back
    extra = pr.load_state(tmp_path, clone, clone_updates.optimizer)
    clone_updates.load(extra)
    assert clone_updates.lr() == updates.lr()
    _batches(updates, model, x, y, 10)
    _batches(clone_updates, clone, x, y, 10)
    assert clone_updates.lr() == updates.lr()
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
