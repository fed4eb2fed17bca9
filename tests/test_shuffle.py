"""Shuffling in the managed torch loop: on by default, a new order every epoch, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import ray.data
import torch
from ray.train import ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.trainers.huggingface_loop import HFSpec, epoch_batches

ROWS, BATCH, EPOCHS = 1_000, 100, 3
ONE = ScalingConfig(num_workers=1)  # one worker: one shard, every row passes through it


class RecordsRows(torch.nn.Module):
    """A model over columns 1: (``inner``, by default a linear one) that appends the ids
    (column 0) it trains on to a file."""

    def __init__(self, path: str, inner: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.path = path
        self.linear = torch.nn.Linear(1, 1) if inner is None else inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with open(self.path, "a") as f:
                f.write("".join(f"{int(i)}\n" for i in x[:, 0].tolist()))
        return self.linear(x[:, 1:])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = pr.connect(tmp_path_factory.mktemp("shuffle") / "shuffle.db")
    rng = np.random.default_rng(0)
    s.write("rows", pa.table({"id": np.arange(ROWS), "x": rng.normal(size=ROWS)}), key="id")
    _write_sorted_by_label(s)
    yield s
    s.close()


def _order(store, path: Path, **kw) -> list[list[int]]:
    """The ids the loop trained on, one list per epoch."""
    trainer = pr.TorchTrainer(
        model=RecordsRows(str(path)),
        features=["id", "x"],
        label="x",
        batch_size=BATCH,
        epochs=EPOCHS,
        listen=None,  # no holdout: every row is a training row
        scaling_config=ONE,
        name="order",
        **kw,
    )
    trainer.fit(train=store.table("rows", key="id"), register=False)
    ids = [int(line) for line in path.read_text().split()]
    assert len(ids) == ROWS * EPOCHS
    return [ids[e * ROWS : (e + 1) * ROWS] for e in range(EPOCHS)]


@pytest.fixture(scope="module")
def seed_7_orders(store, tmp_path_factory):
    return _order(store, tmp_path_factory.mktemp("order") / "ids.txt", seed=7)


@pytest.mark.timeout(300)
def test_every_row_is_seen_once_per_epoch_in_a_new_order_when_shuffling_by_default(
    seed_7_orders,
):
    key_order = list(range(ROWS))
    for epoch in seed_7_orders:
        assert sorted(epoch) == key_order  # each row exactly once
        assert epoch != key_order
    first, second, third = seed_7_orders
    assert first != second and second != third and first != third


@pytest.mark.timeout(300)
def test_the_same_seed_gives_the_same_order_and_another_seed_another(
    store, seed_7_orders, tmp_path
):
    assert _order(store, tmp_path / "again.txt", seed=7) == seed_7_orders
    other = _order(store, tmp_path / "other.txt", seed=8)
    assert all(a != b for a, b in zip(other, seed_7_orders, strict=True))


def test_a_shuffle_that_is_not_a_bool_is_refused_up_front():
    with pytest.raises(pr.ConfigError, match=r"shuffle must be True .* got 'yes'"):
        pr.TorchTrainer(model=torch.nn.Linear(1, 1), features=["x"], label="y", shuffle="yes")


# -- a table stored sorted by its label -----------------------------------------------------

SORTED_ROWS = 8_000


def _labelled(n: int, seed: int, sort: bool) -> pa.Table:
    """Two classes around 3 and 5 on both features; all 0s then all 1s when ``sort``."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2), np.ones(n - n // 2)]
    if not sort:
        rng.shuffle(y)
    x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 5.0, 3.0)
    return pa.table({"id": np.arange(n), "a": x[:, 0], "b": x[:, 1], "y": y})


def _write_sorted_by_label(store) -> None:
    store.write("sorted", _labelled(SORTED_ROWS, 0, sort=True), key="id")
    store.write("heldout", _labelled(2_000, 1, sort=False), key="id")


def _accuracy(store, path: Path, **kw) -> tuple[float, list[list[int]]]:
    """The held-out accuracy of a classifier trained on the label-sorted table, and the ids
    it trained on, one list per epoch."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    result = pr.TorchTrainer(
        model=RecordsRows(str(path), inner=model),
        objective="bce",
        features=["id", "a", "b"],  # the id is recorded, the model sees a and b
        label="y",
        optimizer_kwargs={"lr": 0.05},
        listen="valid/accuracy",
        scaling_config=ONE,
        name="sorted",
        **kw,
    ).fit(train=store.table("sorted", key="id"), valid=store.table("heldout"), register=False)
    ids = [int(line) for line in path.read_text().split()]
    assert ids and len(ids) % SORTED_ROWS == 0
    epochs = [ids[e : e + SORTED_ROWS] for e in range(0, len(ids), SORTED_ROWS)]
    return result.metrics["valid/accuracy"], epochs


@pytest.mark.timeout(300)
def test_a_label_sorted_table_is_learned_with_shuffling_and_not_in_key_order(store, tmp_path):
    # In key order the last half of the epoch is all 1s: the model ends up predicting 1
    # for every row, half of a balanced held-out set.
    accuracy, epochs = _accuracy(store, tmp_path / "key-order.txt", shuffle=False)
    assert accuracy <= 0.55
    # shuffle=False: the rows come in key order every epoch (this run checks it too, once a
    # Ray Train start of its own)
    assert epochs == [list(range(SORTED_ROWS))] * len(epochs)
    accuracy, _ = _accuracy(store, tmp_path / "shuffled.txt")
    assert accuracy >= 0.8  # the default: shuffled


# -- the Hugging Face trainer's epochs -----------------------------------------------------


def _hf_passes(shuffle: bool = True, seed: int = 7, start_epoch: int = 0) -> list[list[int]]:
    """The ids of three passes over a Dataset, as the HF loop's Trainer makes them."""
    spec = HFSpec(
        model="unused",
        task="classification",
        labels=[0, 1],
        training_args={},
        max_steps=30,
        steps_per_epoch=10,
        eval_steps=10,
        has_valid=False,
        pad_token_id=0,
        listen=None,
        seed=seed,
        start_epoch=start_epoch,
        shuffle=shuffle,
    )
    dataset = ray.data.range(ROWS)
    dataset.context.execution_options.preserve_order = True  # as the trainer's DataConfig
    batches = epoch_batches(dataset, spec, BATCH, lambda b: torch.from_numpy(b["id"]), rank=0)
    return [[int(i) for batch in batches for i in batch] for _ in range(3)]


@pytest.mark.timeout(300)
def test_the_hf_trainer_passes_over_its_rows_in_a_new_seeded_order_every_epoch():
    passes = _hf_passes()
    for one in passes:
        assert sorted(one) == list(range(ROWS)) and one != list(range(ROWS))
    assert passes[0] != passes[1] != passes[2] != passes[0]
    assert _hf_passes() == passes  # same seed, same orders
    assert _hf_passes(start_epoch=1)[:2] == passes[1:]  # resumed at epoch 1: epoch 1's order
    assert _hf_passes(shuffle=False) == [list(range(ROWS))] * 3
