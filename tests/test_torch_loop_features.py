"""The managed torch loop's step options: bf16 autocast, gradient clipping and accumulation,
learning-rate schedulers, all restored exactly on resume; bad values refused up front."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from ray.train import ScalingConfig
from safetensors.torch import load_file

import pinnacle_ray as pr

FEATURES = ["x0", "x1", "x2", "x3"]
ROWS, BATCH = 1_000, 100  # ten batches an epoch
ONE = ScalingConfig(num_workers=1)  # one shard: the batch order is the seed's alone


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = pr.connect(tmp_path_factory.mktemp("features") / "features.db")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 4))
    y = x @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.05 * rng.normal(size=ROWS)
    s.write(
        "points",
        pa.table({"id": np.arange(ROWS)} | {f: x[:, i] for i, f in enumerate(FEATURES)} | {"y": y}),
        key="id",
    )
    yield s
    s.close()


class Mlp(torch.nn.Module):
    """4 -> 8 -> 1; records (in ``dtypes``) the dtype its hidden layer computed in."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 1)
        self.register_buffer("bf16_calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(x)
        if self.training and h.dtype == torch.bfloat16:
            self.bf16_calls += 1
        return self.out(torch.relu(h))


def _trainer(**kw) -> pr.TorchTrainer:
    args = {
        "model": Mlp(),
        "objective": "mse",
        "features": FEATURES,
        "label": "y",
        "optimizer_kwargs": {"lr": 0.05},
        "batch_size": BATCH,
        "epochs": 3,
        "listen": "train/loss",
        "scaling_config": ONE,
        "name": "steps",
    }
    return pr.TorchTrainer(**(args | kw))


# bf16 autocast, clipping, accumulation over 3 batches (4 steps an epoch: 3+3+3+1) and a
# per-step OneCycle schedule: after the 12th step of 3 epochs it sits at its 13th, its end.
OPTIONS = {
    "precision": "bf16-mixed",
    "grad_clip_norm": 1.0,
    "accumulate_grad_batches": 3,
    "scheduler_cls": "OneCycleLR",
    "scheduler_kwargs": {"max_lr": 0.05, "total_steps": 13},
}


@pytest.fixture(scope="module")
def straight(store):
    return _trainer(name="straight", **OPTIONS).fit(train=store.table("points"))


def _weights(store, name: str, version: int | None = None) -> dict[str, torch.Tensor]:
    return store.models.load(
        name, version=version, handle="latest", model=Mlp()
    ).module.state_dict()


@pytest.mark.timeout(300)
def test_accumulation_takes_one_step_per_group_and_one_for_the_epochs_last_partial_group(
    straight,
):
    assert straight.metrics["step"] == 12  # 3 epochs x (3 + 3 + 3 + 1 batches)
    assert straight.metrics["epoch"] == 2 and straight.metrics["epoch_done"]


@pytest.mark.timeout(300)
def test_one_cycle_is_stepped_after_every_optimizer_step_by_default(straight):
    # At the end of its schedule OneCycleLR is at max_lr / div_factor / final_div_factor.
    assert straight.metrics["train/lr"] == pytest.approx(0.05 / 25 / 1e4, rel=1e-6)
    lrs = [m["train/lr"] for _, m in straight.ray_result.best_checkpoints]
    assert lrs[0] > lrs[-1] and len(set(lrs)) == len(lrs)


@pytest.mark.timeout(300)
def test_bf16_mixed_runs_the_forward_pass_under_cpu_autocast_and_still_learns(store, straight):
    model = store.models.load("straight", handle="latest", model=Mlp()).module
    assert int(model.bf16_calls) == 30  # every training batch, 3 epochs x 10
    losses = [m["train/loss"] for _, m in straight.ray_result.best_checkpoints]
    assert losses[-1] < losses[0]  # each epoch's mean loss


@pytest.mark.timeout(600)
def test_resume_restores_scheduler_accumulation_and_clipping_bit_for_bit(store, straight):
    first = _trainer(name="resumable", epochs=2, **OPTIONS).fit(train=store.table("points"))
    assert first.metrics["step"] == 8
    resumed = _trainer(name="resumable", epochs=3, **OPTIONS).fit(
        train=store.table("points"), resume_from="resumable", handle="latest"
    )
    # Registered as the next version with its parent recorded (this test also stands for the
    # managed loop's plain resume, once three fits of its own in test_torch_managed.py).
    assert resumed.version == 2
    assert store.models.get("resumable", version=2).parent_version == 1
    assert resumed.metrics["step"] == straight.metrics["step"]
    assert resumed.metrics["train/lr"] == straight.metrics["train/lr"]
    a, b = _weights(store, "straight"), _weights(store, "resumable", version=2)
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.timeout(300)
def test_step_lr_steps_once_per_epoch_and_clipping_bounds_every_step(store):
    result = _trainer(
        optimizer_cls="SGD",
        optimizer_kwargs={"lr": 0.1},
        grad_clip_norm=1e-4,
        scheduler_cls="StepLR",
        scheduler_kwargs={"step_size": 1, "gamma": 0.5},
    ).fit(train=store.table("points"), register=False)
    lrs = [m["train/lr"] for _, m in result.ray_result.best_checkpoints]
    assert lrs == pytest.approx([0.05, 0.025, 0.0125])  # after each epoch's end
    with result.checkpoint.as_directory() as directory:
        trained = load_file(f"{directory}/model.safetensors")
    start = Mlp().state_dict()
    # 30 SGD steps of at most lr x 1e-4 in norm each: the weights moved less than 3e-4.
    moved = torch.sqrt(
        sum(((trained[k] - start[k].float()) ** 2).sum() for k in start if k != "bf16_calls")
    )
    assert 0 < float(moved) <= 30 * 0.1 * 1e-4 * 1.01


# -- refused before any worker starts ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp8"}, r"precision='fp8' is not known; use one of \['32', 'bf16-mixed'"),
        ({"precision": "16-mixed"}, r"precision='16-mixed' needs GPU workers, but use_gpu=False"),
        ({"grad_clip_norm": 0}, r"grad_clip_norm must be a positive number or None, got 0"),
        ({"accumulate_grad_batches": 0}, r"accumulate_grad_batches must be a positive integer"),
        ({"scheduler_cls": "Nope"}, r"scheduler_cls='Nope' is not in torch.optim.lr_scheduler"),
        ({"scheduler_cls": "StepLR"}, r"scheduler_kwargs must give \['step_size'\] for StepLR"),
        (
            {"scheduler_cls": "StepLR", "scheduler_kwargs": {"step_size": 1, "steps": 2}},
            r"scheduler_kwargs \['steps'\] are not arguments of StepLR; it takes \['step_size'",
        ),
        (
            {
                "scheduler_cls": "StepLR",
                "scheduler_kwargs": {"step_size": 1},
                "scheduler_interval": "batch",
            },
            r"scheduler_interval='batch' is not known; use one of \['step', 'epoch'\]",
        ),
        ({"scheduler_cls": "ReduceLROnPlateau"}, r"steps on a metric"),
        ({"scheduler_kwargs": {"step_size": 1}}, r"scheduler_kwargs needs scheduler_cls"),
    ],
)
def test_a_bad_step_option_is_refused_naming_the_parameter_and_choices(kwargs, message):
    with pytest.raises(pr.ConfigError, match=message):
        _trainer(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"precision": "bf16-mixed"},
        {"grad_clip_norm": 1.0},
        {"accumulate_grad_batches": 2},
        {"scheduler_cls": "StepLR", "scheduler_kwargs": {"step_size": 1}},
    ],
)
def test_a_step_option_with_a_custom_loop_is_refused_not_ignored(kwargs):
    def loop(config):  # never runs: the trainer is refused when built
        raise AssertionError("the loop ran")

    with pytest.raises(pr.ConfigError, match=r"configure the managed loop \(model=\.\.\.\)"):
        pr.TorchTrainer(loop, name="custom-loop", **kwargs)
