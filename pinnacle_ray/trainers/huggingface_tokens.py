"""Token classification rows for :class:`pinnacle_ray.HuggingFaceTrainer`: words and one tag
per word, checked in the driver and aligned to sub-tokens in Ray Data.

A row's words are its text column split on whitespace (or its list of strings, on backends
with list columns); its tags are the label column split the same way. Each word's tag goes to
its first sub-token; the other sub-tokens and the special tokens get -100, which the loss and
the accuracy skip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import ray.data

from .._internal.runtime import planned_execution
from ..errors import DataError, EmptyText, NonFiniteValues
from ..registry.huggingface_words import first_subtokens, words_of
from .huggingface_rows import EMPTY_COLUMN, IGNORED_LABEL, TRUNCATED_COLUMN
from .tabular import MAX_DISTINCT

__all__ = ["TokenizeWords", "scan_tags"]


def scan_tags(
    dataset: ray.data.Dataset, text_column: str, label: str, key: str | None, role: str
) -> list[str]:
    """The sorted distinct tags of ``dataset``'s rows, after checking in one pass that every
    row has words, tags, and as many tags as words (DataError naming the first bad row)."""

    def block(table: pa.Table) -> pa.Table:
        named = key if key in table.column_names else None
        keys = table.column(named).to_pylist() if named else [None] * table.num_rows
        tags: set[str] = set()
        bad: list[str] = []
        empty = missing = 0
        for k, text, labels in zip(
            keys,
            table.column(text_column).to_pylist(),
            table.column(label).to_pylist(),
            strict=True,
        ):
            words, row_tags = words_of(text), words_of(labels)
            if not words:
                empty += 1
            elif labels is None:
                missing += 1
            elif len(words) != len(row_tags) and not bad:
                row = (
                    f"the row with {named}={k!r}" if named else f"the row {' '.join(words)[:80]!r}"
                )
                bad.append(
                    f"{row} has {len(words)} word(s) in {text_column!r} but {len(row_tags)} "
                    f"tag(s) in {label!r}"
                )
            tags.update(row_tags)
        return pa.table(
            {
                "tags": [sorted(tags)[: MAX_DISTINCT + 1]],
                "bad": [bad[0] if bad else None],
                "empty": [empty],
                "missing": [missing],
            }
        )

    parts = dataset.map_batches(block, batch_format="pyarrow", batch_size=None)
    found: set[str] = set()
    empty = missing = 0
    with planned_execution():
        for row in parts.iter_rows():
            if row["bad"]:
                raise DataError(
                    f"in the {role} query, {row['bad']}; token classification needs one tag "
                    "per word (words and tags both separated by whitespace, or list columns "
                    "of equal length). Fix or filter that row"
                )
            found.update(row["tags"])
            empty += int(row["empty"])
            missing += int(row["missing"])
    if empty:
        raise EmptyText(
            f"{empty} row(s) of the {role} query have no words in {text_column!r} (empty or "
            f"NULL); filter them out in the query (e.g. where {text_column} <> '')"
        )
    if missing:
        raise NonFiniteValues(
            f"label column {label!r} is NULL in {missing} row(s) of the {role} query; filter "
            f"them out in the query (WHERE {label} IS NOT NULL) before training"
        )
    return sorted(found)


class TokenizeWords:
    """Ray Data ``map_batches`` function for token classification: rows of words and tags ->
    token ids and per-token label ids (the tag at each word's first sub-token, else -100).

    Example::

        tokenize = TokenizeWords(tokenizer, "text", "tags", ["ENTITY", "O"], max_length=64)
        dataset.map_batches(tokenize, batch_format="pyarrow")
    """

    def __init__(
        self, tokenizer: Any, text_column: str, label: str, labels: list[Any], max_length: int
    ) -> None:
        self.tokenizer = tokenizer
        self.text_column = text_column
        self.label = label
        self.label2id = {str(v): i for i, v in enumerate(labels)}
        self.max_length = max_length

    def __call__(self, table: pa.Table) -> pa.Table:
        words = [words_of(v) for v in table.column(self.text_column).to_pylist()]
        tags = [words_of(v) for v in table.column(self.label).to_pylist()]
        encoded = self.tokenizer(
            [w or [""] for w in words],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
        )
        labels, truncated = [], []
        for i, row_tags in enumerate(tags):
            word_ids = encoded.word_ids(i)
            row = np.full(len(word_ids), IGNORED_LABEL, dtype=np.int32)
            positions = first_subtokens(word_ids)
            for position, tag in zip(positions, row_tags, strict=False):
                row[position] = self.label2id.get(tag, IGNORED_LABEL)
            labels.append(row)
            truncated.append(len(positions) < len(words[i]))
        out: dict[str, Any] = {}
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in encoded:
                out[name] = pa.array(encoded[name], type=pa.list_(pa.int32()))
        out["labels"] = pa.array(labels, type=pa.list_(pa.int32()))
        out[EMPTY_COLUMN] = pa.array([not w for w in words], type=pa.bool_())
        out[TRUNCATED_COLUMN] = pa.array(truncated, type=pa.bool_())
        return pa.table(out)
