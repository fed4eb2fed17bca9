"""The Hugging Face flavor: a fine-tuned transformers model loaded to predict on raw text.

A registered folder is what ``save_pretrained`` writes for the model and its tokenizer
(``config.json``, ``model.safetensors``, ``tokenizer.json``, ...) plus ``pinnacle.json``:
the task, the text column(s), the label, ``max_length`` and the label values in id order.
Loading never runs code from the folder: weights are safetensors only, configs and
tokenizers are JSON, and ``trust_remote_code`` is never set.

Example::

    model = store.models.load("sentiment")            # a HuggingFaceModel
    model.predict(["great value", "broke in a day"])  # array(['pos', 'neg'], dtype=object)
    model.predict_proba(frame)                        # one column per label, in model.classes
    model.predict_scores(frame)                       # DataFrame: label, score

    tagger = store.models.load("ner")                 # task="token-classification"
    tagger.predict(["Alice flew to Paris"])           # [['ENTITY', 'O', 'O', 'ENTITY']]
    tagger.predict_scores(["Alice flew to Paris"])    # DataFrame: tags, scores (per word)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..errors import ColumnNotFound, ConfigError, IncompatibleCheckpoint
from .huggingface_lm import CausalLMModel, find_base, is_adapter, load_adapter
from .huggingface_words import first_subtokens, words_of
from .safety import pickle_files, refuse_pickle
from .torch_flavor import read_meta

__all__ = [
    "CAUSAL_LM",
    "CLASSIFICATION",
    "REGRESSION",
    "TASKS",
    "TOKEN",
    "HuggingFaceModel",
    "first_subtokens",
    "load_model",
    "load_pretrained",
    "texts_of",
    "words_of",
]

CLASSIFICATION = "sequence-classification"
REGRESSION = "regression"
TOKEN = "token-classification"
CAUSAL_LM = "causal-lm"
TASKS = (CLASSIFICATION, REGRESSION, TOKEN, CAUSAL_LM)
_PREDICT_BATCH = 64


def load_pretrained(
    directory: str | Path, task: str = CLASSIFICATION, *, allow_pickle: bool = False, **kwargs: Any
) -> Any:
    """A sequence- (``task=TOKEN``: token-) classification model or (``task=CAUSAL_LM``) a
    causal language model from a local ``save_pretrained`` folder, safetensors only
    (``pytorch_model.bin`` too with ``allow_pickle=True``) and no remote code; ``kwargs``
    go to ``from_pretrained`` (num_labels, id2label)."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    folder = Path(directory)
    if folder.is_dir() and not any(folder.glob("*.safetensors*")):
        pickled = [n for n in pickle_files(folder) if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        if pickled and not allow_pickle:
            raise refuse_pickle(folder / pickled[0], "torch.save (pickle) weights")
    auto = {TOKEN: AutoModelForTokenClassification, CAUSAL_LM: AutoModelForCausalLM}.get(
        task, AutoModelForSequenceClassification
    )
    return auto.from_pretrained(
        str(directory),
        local_files_only=True,
        use_safetensors=None if allow_pickle else True,
        trust_remote_code=False,
        **kwargs,
    )


def texts_of(batch: Any, columns: Sequence[str]) -> list[Any]:
    """The texts of ``batch`` (a string, a list of strings or of pairs, or rows as pandas,
    Arrow or a dict of arrays with ``columns``): one string, or one pair, per row."""
    if isinstance(batch, str):
        return [batch]
    if isinstance(batch, (list, tuple)) and not isinstance(batch, Mapping):
        return [tuple(t) if isinstance(t, (list, tuple)) else t for t in batch]
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        names = list(batch.column_names)
        get = lambda c: batch.column(c).to_pylist()  # noqa: E731
    elif isinstance(batch, Mapping):
        names = [str(k) for k in batch]
        get = lambda c: list(batch[c])  # noqa: E731
    elif isinstance(batch, pd.DataFrame):
        names = [str(c) for c in batch.columns]
        get = lambda c: batch[c].tolist()  # noqa: E731
    else:
        raise ConfigError(
            f"cannot predict on a {type(batch).__name__}; pass a string, a list of strings, a "
            "pandas DataFrame, a pyarrow Table or a dict of arrays"
        )
    missing = [c for c in columns if c not in names]
    if missing:
        raise ColumnNotFound(
            f"the batch has no text column(s) {missing}; its columns are {names[:30]}. The "
            f"model reads {list(columns)}"
        )
    values = [get(c) for c in columns]
    return values[0] if len(values) == 1 else list(zip(*values, strict=True))


class HuggingFaceModel:
    """A loaded fine-tuned transformers model that predicts labels (or values) from raw text.

    Example::

        model = store.models.load("sentiment", handle="best")
        model.predict(["loved it", "never again"])     # labels as they were in the table
        model.predict_proba(frame)                     # probabilities, columns = model.classes
        model.predict_scores(frame)                    # DataFrame with label and score
        model.model, model.tokenizer, model.meta       # the transformers objects
    """

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.task: str = meta.get("task") or CLASSIFICATION
        self.text_columns: list[str] = list(meta.get("text_columns") or ["text"])
        self.label: str | None = meta.get("label")
        self.max_length: int | None = meta.get("max_length")
        labels = meta.get("labels")
        self.classes = np.asarray(labels, dtype=object) if labels is not None else None
        # The texts and outputs of the last forward pass: predict then predict_proba on the
        # same rows (as pr.predict calls them) run the model once.
        self._last: tuple[list[Any], torch.Tensor] | None = None

    def __repr__(self) -> str:
        classes = None if self.classes is None else list(self.classes)
        return (
            f"HuggingFaceModel({type(self.model).__name__}, task={self.task!r}, "
            f"text_columns={self.text_columns}, classes={classes})"
        )

    def predict(self, batch: Any) -> np.ndarray:
        """One prediction per text: the label (classification), the value (regression), or
        the list of per-word tags (token classification; words split on whitespace, or the
        row's list of words)."""
        if self.task == TOKEN:
            return _objects([self._tags(p)[0] for p in self._word_probabilities(batch)])
        out = self._forward(batch)
        if self.task == REGRESSION:
            return out[:, 0].numpy()
        ids = out.argmax(dim=-1).numpy()
        return self.classes[ids] if self.classes is not None else ids

    def predict_proba(self, batch: Any) -> np.ndarray:
        """Label probabilities per text, one column per label in ``classes`` order."""
        if self.task == REGRESSION:
            raise ConfigError("predict_proba is for classification models; this one regresses")
        if self.task == TOKEN:
            raise ConfigError(
                "predict_proba gives one row per text; a token-classification model scores "
                "each word: use predict_scores (per-word tags and scores)"
            )
        return torch.softmax(self._forward(batch), dim=-1).numpy()

    def predict_scores(self, batch: Any) -> pd.DataFrame:
        """A ``label`` and ``score`` (its probability) per text, as a text-classification
        pipeline gives them; for token classification, a ``tags`` and a ``scores`` list
        per text, one entry per word."""
        if self.task == TOKEN:
            found = [self._tags(p) for p in self._word_probabilities(batch)]
            return pd.DataFrame(
                {"tags": _objects([t for t, _ in found]), "scores": _objects([s for _, s in found])}
            )
        proba = self.predict_proba(batch)
        ids = proba.argmax(axis=-1)
        labels = self.classes[ids] if self.classes is not None else ids
        return pd.DataFrame({"label": labels, "score": proba[np.arange(len(ids)), ids]})

    def _tags(self, probabilities: np.ndarray) -> tuple[list[Any], list[float]]:
        ids = probabilities.argmax(axis=-1) if len(probabilities) else np.zeros(0, dtype=int)
        tags = self.classes[ids] if self.classes is not None else ids
        scores = probabilities[np.arange(len(ids)), ids] if len(ids) else np.zeros(0)
        return [t.item() if hasattr(t, "item") else t for t in tags], [float(x) for x in scores]

    def _word_probabilities(self, batch: Any) -> list[np.ndarray]:
        """Tag probabilities per word of each row (words x tags), read at each word's first
        sub-token. A row longer than ``max_length`` tokens is read in further windows from
        its first word not yet read, so every word gets a tag."""
        rows = [words_of(t) for t in texts_of(batch, self.text_columns)]
        width = len(self.classes) if self.classes is not None else self.model.config.num_labels
        found: list[list[np.ndarray]] = [[] for _ in rows]
        pending = [(i, 0) for i, words in enumerate(rows) if words]  # (row, first word to read)
        with torch.inference_mode():
            while pending:
                chunk, pending = pending[:_PREDICT_BATCH], pending[_PREDICT_BATCH:]
                encoded = self.tokenizer(
                    [rows[i][start:] for i, start in chunk],
                    is_split_into_words=True,
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**encoded.to(self.model.device)).logits.detach().float().cpu()
                proba = torch.softmax(logits, dim=-1).numpy()
                for j, (i, start) in enumerate(chunk):
                    positions = first_subtokens(encoded.word_ids(j))
                    if not positions:
                        raise ConfigError(
                            f"max_length={self.max_length} leaves no room for a word; raise it"
                        )
                    found[i].append(proba[j, positions])
                    if start + len(positions) < len(rows[i]):
                        pending.append((i, start + len(positions)))
        return [np.concatenate(p) if p else np.zeros((0, width)) for p in found]

    def _forward(self, batch: Any) -> torch.Tensor:
        texts = texts_of(batch, self.text_columns)
        last, self._last = self._last, None
        if last is not None and last[0] == texts:  # the same rows again: same outputs
            return last[1]
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), _PREDICT_BATCH):
                chunk = texts[start : start + _PREDICT_BATCH]
                pairs = bool(chunk) and isinstance(chunk[0], tuple)
                encoded = self.tokenizer(
                    [t[0] for t in chunk] if pairs else [str(t) for t in chunk],
                    [t[1] for t in chunk] if pairs else None,
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                encoded = encoded.to(self.model.device)  # where the weights are
                outputs.append(self.model(**encoded).logits.detach().float().cpu())
        if not outputs:
            width = 1 if self.task == REGRESSION or self.classes is None else len(self.classes)
            return torch.empty((0, width))
        self._last = (texts, torch.cat(outputs))
        return self._last[1]


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-D object array of per-row lists (numpy would make equal-length lists 2-D)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def load_model(
    model_dir: str | Path,
    *,
    weights_dir: str | Path | None = None,
    allow_pickle: bool = False,
    device: str | None = None,
    base_model: str | os.PathLike[str] | None = None,
) -> HuggingFaceModel | CausalLMModel:
    """The model in ``model_dir`` (a handle's checkpoint in ``weights_dir`` when given);
    pickle-based weights (``pytorch_model.bin``) only with ``allow_pickle=True``.
    ``device`` (e.g. ``"cuda"``) is where it predicts; default CPU. A LoRA version (an
    adapter only) is loaded onto its base model: ``base_model=`` (a folder), else the one
    it recorded, found on this machine and checked by its sha256 (see
    :mod:`.huggingface_lm`); the adapter is merged into it for prediction."""
    from transformers import AutoTokenizer

    meta = read_meta(model_dir)
    source = Path(weights_dir or model_dir)
    task = meta.get("task") or CLASSIFICATION
    if is_adapter(source):
        base = find_base(meta, base_model)
        model = load_pretrained(base, task, allow_pickle=allow_pickle)
        model = load_adapter(model, source, allow_pickle=allow_pickle).merge_and_unload()
    elif not (source / "config.json").is_file():
        raise IncompatibleCheckpoint(
            f"{source} holds no config.json; it is not a Hugging Face checkpoint written by "
            "pr.HuggingFaceTrainer"
        )
    else:
        model = load_pretrained(source, task, allow_pickle=allow_pickle)
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    if device is not None:
        model = model.to(torch.device(device))
    if task == CAUSAL_LM:
        return CausalLMModel(model, tokenizer, meta)
    return HuggingFaceModel(model, tokenizer, meta)
