"""Text rows -> token ids, in Ray Data, for :class:`pinnacle_ray.HuggingFaceTrainer`: the
tokenizing map and the names of the check columns it adds beside the model inputs.

Kept apart from the training loop on purpose: Ray Data runs the map in its own worker
processes and imports the module the map is defined in there. This one imports numpy and
pyarrow only (unpickling the tokenizer adds transformers' tokenizer code), where the
trainer's and the loop's modules import torch, Ray Train and transformers' ``Trainer``:
measured on the 2-core test machine, 0.8 CPU s against 5.6 CPU s per fresh process, paid
by every process that tokenizes, on the way to a run's first step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["EMPTY_COLUMN", "IGNORED_LABEL", "TRUNCATED_COLUMN", "Tokenize"]

# Columns the tokenizing map adds for checks; not model inputs.
EMPTY_COLUMN = "_pinnacle_empty"
TRUNCATED_COLUMN = "_pinnacle_truncated"
IGNORED_LABEL = -100  # token classification: tokens no tag goes to (the loss skips them)


class Tokenize:
    """Ray Data ``map_batches`` function: text rows -> token ids, label ids and check flags.

    Runs in Ray Data's tasks, so tokenizing is spread over the cluster next to the reads.
    """

    def __init__(
        self,
        tokenizer: Any,
        text_columns: list[str],
        label: str,
        labels: list[Any] | None,
        max_length: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.text_columns = text_columns
        self.label = label
        self.label2id = {v: i for i, v in enumerate(labels)} if labels is not None else None
        self.max_length = max_length

    def __call__(self, table: pa.Table) -> pa.Table:
        columns = [table.column(c).to_pylist() for c in self.text_columns]
        empty = [
            any(t is None or not str(t).strip() for t in row) for row in zip(*columns, strict=False)
        ]
        texts = [["" if t is None else str(t) for t in c] for c in columns]
        encoded = self.tokenizer(
            texts[0],
            texts[1] if len(texts) > 1 else None,
            truncation=True,
            max_length=self.max_length,
        )
        encodings = getattr(encoded, "encodings", None)
        if encodings:
            truncated = [bool(e.overflowing) for e in encodings]
        else:  # a slow tokenizer keeps no encodings: a full-length row was (probably) cut
            truncated = [len(ids) >= self.max_length for ids in encoded["input_ids"]]
        out: dict[str, Any] = {}
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in encoded:
                out[name] = pa.array(encoded[name], type=pa.list_(pa.int32()))
        values = table.column(self.label).to_pylist()
        if self.label2id is None:
            labels = [np.nan if v is None else float(v) for v in values]
        else:
            labels = [float(self.label2id[v]) if v in self.label2id else np.nan for v in values]
        out["labels"] = pa.array(labels, type=pa.float64())
        out[EMPTY_COLUMN] = pa.array(empty, type=pa.bool_())
        out[TRUNCATED_COLUMN] = pa.array(truncated, type=pa.bool_())
        return pa.table(out)
