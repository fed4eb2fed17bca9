"""GPU check: what CPU tests cannot show, run on a machine with NVIDIA GPUs.

Run it with ``./dev gpu-check``. Against a SQLite file in a temporary folder (no server, no
download), it runs:

- ``torch-managed``: the managed torch loop (``pr.TorchTrainer(model=...)``) on
  ``use_gpu=True``, with 2 workers (NCCL) when 2 GPUs exist, else 1: validation, the
  collective that sums metrics, checkpoints and registration;
- ``torch-custom``: a custom ``train_loop_per_worker`` (``prepare_model``, shards as torch
  batches, ``pr.report``) that also reports its process group's backend and device;
- ``hf-fp16`` / ``hf-bf16``: a tiny BERT built from a config (and a tokenizer built from
  words) fine-tuned with ``fp16`` / ``bf16`` (bf16 only on GPUs that support it);
- ``xgboost``: ``pr.XGBoostTrainer`` with ``use_gpu=True`` (XGBoost ``device="cuda"``);
- ``predict``: ``pr.predict(..., num_gpus=1)`` with the managed run's model.

It prints one ``PASS``/``FAIL``/``SKIP`` line per check and exits 1 when any check failed.
On a machine without a GPU (or with a torch build without CUDA) it prints that nothing was
checked and exits 3. ``--cpu`` runs the same checks on CPU workers (gloo, no CUDA device,
``num_gpus=0``): a test of this script itself, not of any GPU.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NO_GPU_EXIT = 3
FEATURES = ["f0", "f1", "f2", "f3"]
WORDS_GOOD = ["great", "lovely", "excellent", "superb", "happy", "wonderful"]
WORDS_BAD = ["awful", "broken", "terrible", "poor", "sad", "horrible"]


def gpus_here() -> tuple[int, str]:
    """(GPUs torch can use, why none when 0)."""
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}"
        why = "torch.cuda.is_available() is False"
        if torch.version.cuda is None:
            why += f" ({build} is built without CUDA)"
        return 0, why
    return torch.cuda.device_count(), ""


def tabular(n: int = 4000) -> pd.DataFrame:
    """``n`` rows: id, f0..f3, a linear label y, a 0/1 class and an 80/20 split."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    frame["y"] = frame.to_numpy()[:, 1:] @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1
    frame["cls"] = (frame["y"] > 0).astype(np.int64)
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    return frame


def texts(n: int = 256) -> pd.DataFrame:
    """``n`` short labelled reviews (pos/neg) with an id and a split."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        good = bool(rng.random() < 0.5)
        words = list(rng.choice(WORDS_GOOD if good else WORDS_BAD, 3))
        rows.append({"id": i, "text": " ".join(words), "label": "pos" if good else "neg"})
    frame = pd.DataFrame(rows)
    frame["split"] = np.where(frame["id"] % 5 == 0, "valid", "train")
    return frame


def tiny_bert(folder: Path) -> str:
    """A 2-layer BERT (hidden 32) and a WordLevel tokenizer over our words, saved locally."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(WORDS_GOOD + WORDS_BAD))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=32,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def custom_loop(config: dict[str, Any]) -> None:
    """A user's own loop: DDP model, torch batches from the shard, one report per epoch."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    import pinnacle_ray as pr

    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(torch.nn.Linear(len(FEATURES), 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(config["epochs"]):
        total, rows = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=128, dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), batch["y"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(x)
            rows += len(x)
        metrics = {
            "train/loss": total / max(rows, 1),
            "epoch": epoch,
            "backend": dist.get_backend() if dist.is_initialized() else "none",
            "device": str(device),
            "weights_device": str(next(model.parameters()).device),
        }
        pr.report(metrics, model=model, optimizer=optimizer)


class Checks:
    """Runs the checks in order, printing one line each; remembers what failed."""

    def __init__(self, folder: Path, gpus: int) -> None:
        import pinnacle_ray as pr

        self.pr = pr
        self.folder = folder
        self.on_gpu = gpus > 0  # else --cpu: the same checks on CPU workers
        self.workers = 1 if gpus == 1 else 2
        self.backend, self.device = ("nccl", "cuda") if self.on_gpu else ("gloo", "cpu")
        self.store = pr.connect(folder / "gpu_check.db")
        self.store.write("points", tabular()[["id", *FEATURES, "y", "cls", "split"]], key="id")
        self.store.write("reviews", texts(), key="id")
        self.failed: list[str] = []
        self.bert = tiny_bert(folder / "tiny-bert")

    def run(self, name: str, check: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = check()
        except SkipCheck as skip:
            print(f"SKIP {name}: {skip}", flush=True)
            return
        except Exception as exc:
            self.failed.append(name)
            first = (str(exc).splitlines() or [""])[0][:300]
            print(
                f"FAIL {name} ({time.perf_counter() - started:.1f} s): "
                f"{type(exc).__name__}: {first}",
                flush=True,
            )
            if os.environ.get("PINNACLE_RAY_GPU_CHECK_TRACEBACKS"):
                traceback.print_exc()
            return
        print(f"PASS {name} ({time.perf_counter() - started:.1f} s): {detail}", flush=True)

    def scaling(self, workers: int | None = None) -> Any:
        from ray.train import ScalingConfig

        return ScalingConfig(num_workers=workers or self.workers, use_gpu=self.on_gpu)

    def torch_managed(self) -> str:
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(len(FEATURES), 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )
        result = self.pr.TorchTrainer(
            model=model,
            objective="mse",
            features=FEATURES,
            label="y",
            optimizer_kwargs={"lr": 1e-2},
            batch_size=128,
            epochs=3,
            validation_interval=10,
            scaling_config=self.scaling(),
            name="gpu-mlp",
        ).fit(
            train=self.store.table("points", where={"split": "train"}),
            valid=self.store.table("points", where={"split": "valid"}),
        )
        loss = result.metrics["valid/loss"]
        expect(math.isfinite(loss), f"valid/loss is {loss}")
        expect(result.version is not None, "the run was not registered")
        rows = result.metrics["train/rows"]
        expect(rows == 3200, f"train/rows summed over workers is {rows}, not 3200")
        return f"{self.workers} worker(s), valid/loss {loss:.4f}, version {result.version}"

    def torch_custom(self) -> str:
        result = self.pr.TorchTrainer(
            custom_loop,
            train_loop_config={"epochs": 2},
            scaling_config=self.scaling(),
            name="gpu-custom",
        ).fit(
            train=self.store.table(
                "points", columns=["id", *FEATURES, "y"], where={"split": "train"}
            ),
            register=False,  # its metrics hold strings (backend, devices)
        )
        m = result.metrics
        want = self.backend
        expect(m["backend"] == want, f"process group backend is {m['backend']!r}, not {want}")
        expect(m["device"].startswith(self.device), f"worker device is {m['device']!r}")
        expect(m["weights_device"].startswith(self.device), f"weights on {m['weights_device']}")
        expect(math.isfinite(m["train/loss"]), f"train/loss is {m['train/loss']}")
        return f"backend {m['backend']}, device {m['device']}, train/loss {m['train/loss']:.4f}"

    def hf(self, precision: str) -> str:
        import torch

        if self.on_gpu and precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise SkipCheck(f"{torch.cuda.get_device_name(0)} does not support bf16")
        result = self.pr.HuggingFaceTrainer(
            model=self.bert,
            text_column="text",
            label="label",
            max_length=16,
            training_args={
                precision: True,
                "num_train_epochs": 2,
                "learning_rate": 5e-3,
                "per_device_train_batch_size": 16,
            },
            scaling_config=self.scaling(),
            name=f"gpu-hf-{precision}",
        ).fit(
            train=self.store.table("reviews", where={"split": "train"}),
            valid=self.store.table("reviews", where={"split": "valid"}),
        )
        loss = result.metrics["valid/loss"]
        expect(math.isfinite(loss), f"valid/loss is {loss}")
        expect(result.version is not None, "the run was not registered")
        return f"valid/loss {loss:.4f}, valid/accuracy {result.metrics['valid/accuracy']:.2f}"

    def xgboost(self) -> str:
        result = self.pr.XGBoostTrainer(
            params={"objective": "binary:logistic", "max_depth": 4},
            features=FEATURES,
            label="cls",
            num_boost_round=20,
            scaling_config=self.scaling(),
            name="gpu-xgb",
        ).fit(
            train=self.store.table("points", where={"split": "train"}),
            valid=self.store.table("points", where={"split": "valid"}),
        )
        device = result.record.config.get("params", {}).get("device") if result.record else None
        want = "cuda" if self.on_gpu else None
        expect(device == want, f"the booster's params have device={device!r}, not {want!r}")
        loss = result.metrics.get("valid/logloss")
        expect(loss is not None and math.isfinite(loss), f"valid/logloss is {loss}")
        return f"device {device}, valid/logloss {loss:.4f}"

    def predict(self) -> str:
        query = self.store.table("points", where={"split": "valid"})
        num_gpus = 1 if self.on_gpu else 0
        result = self.pr.predict("gpu-mlp", query, output="gpu_predictions", num_gpus=num_gpus)
        expect(result.rows == 800, f"{result.rows} rows written, not 800")
        model = self.store.models.load("gpu-mlp")
        frame = tabular()
        frame = frame[frame["split"] == "valid"].sort_values("id")
        written = self.store.table("gpu_predictions").to_arrow().to_pandas().sort_values("id")
        gap = float(np.abs(written["prediction"].to_numpy() - model.predict(frame)).max())
        expect(gap < 1e-3, f"the actors' predictions differ from local ones by up to {gap}")
        return f"{result.rows} rows with num_gpus={num_gpus}, max |actor - local| {gap:.2e}"


class SkipCheck(Exception):
    """A check that does not apply to this machine's GPUs (said in its SKIP line)."""


def expect(condition: bool, message: str) -> None:
    """Fail the current check with ``message`` unless ``condition``."""
    if not condition:
        raise AssertionError(message)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--cpu", action="store_true", help="run the checks on CPU workers (tests this script)"
    )
    args = parser.parse_args()

    gpus, why = gpus_here()
    if args.cpu:
        gpus = 0
        print("gpu-check --cpu: the checks on CPU workers; no GPU is checked")
    elif gpus == 0:
        print(f"gpu-check: no GPU on this machine ({why}); nothing was checked.")
        return NO_GPU_EXIT

    import ray

    ray.init(logging_level=logging.WARNING)
    if gpus:
        print(f"gpu-check: {gpus} GPU(s), {ray.cluster_resources().get('GPU', 0):g} seen by Ray")
    folder = Path(tempfile.mkdtemp(prefix="pinnacle-gpu-check-"))
    failed: list[str] = []
    try:
        try:
            checks = Checks(folder, gpus)
        except Exception as exc:  # the data or the tiny model could not be made
            print(f"FAIL setup: {type(exc).__name__}: {exc}")
            return 1
        checks.run("torch-managed", checks.torch_managed)
        checks.run("torch-custom", checks.torch_custom)
        checks.run("hf-fp16", lambda: checks.hf("fp16"))
        checks.run("hf-bf16", lambda: checks.hf("bf16"))
        checks.run("xgboost", checks.xgboost)
        checks.run("predict", checks.predict)
        failed = checks.failed
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        ray.shutdown()
    if failed:
        print(f"gpu-check: {len(failed)} check(s) failed: {', '.join(failed)}")
        return 1
    print("gpu-check: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
