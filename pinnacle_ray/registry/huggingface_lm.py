"""Causal language models in the Hugging Face flavor: generation, per-row loss, and LoRA
adapters loaded onto the base model they were trained from.

A LoRA version stores only its adapter (``adapter_model.safetensors`` and
``adapter_config.json``) and, in ``pinnacle.json``, a reference to its base: the folder or
hub name it was trained from, the hub revision when there was one, and the sha256 of the
base's ``config.json`` and safetensors weights. At load time the base is found without any
download, in this order: ``base_model=`` given to ``store.models.load``; the recorded
folder, when it exists on this machine; the recorded hub name at its recorded revision in
the local Hugging Face cache. Whatever is found must have the recorded sha256, otherwise
the load is refused (an adapter on other weights would predict garbage without a sign).

Example::

    lm = store.models.load("support-lm")                 # base found as recorded
    lm = store.models.load("support-lm", base_model="/models/llama-1b")   # or given
    lm.predict(["The parcel arrived"])                   # greedy continuations (text)
    lm.predict_scores(frame)                             # DataFrame: loss, perplexity
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, IncompatibleCheckpoint, PretrainedNotFound
from .safety import refuse_pickle

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "CausalLMModel",
    "base_fingerprint",
    "find_base",
    "is_adapter",
    "load_adapter",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
DEFAULT_NEW_TOKENS = 20
_BATCH = 64
_CHUNK = 1 << 20


def is_adapter(folder: str | Path) -> bool:
    """Whether ``folder`` holds a PEFT adapter (not a whole model)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def base_fingerprint(folder: str | Path) -> str:
    """sha256 over a model folder's ``config.json`` and its safetensors files, by name: what
    an adapter's base must match at load time (reads every weight byte once)."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in [root / "config.json", *sorted(root.glob("*.safetensors"))]:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def find_base(meta: dict[str, Any], given: str | os.PathLike[str] | None = None) -> Path:
    """The local folder of an adapter's base model (see the module docstring for the order),
    checked against the recorded sha256. Never downloads."""
    recorded = meta.get("base_model")
    name = meta.get("base_model_name")
    revision = meta.get("base_revision")
    if given is not None:
        folder = Path(given).expanduser()
        if not folder.is_dir():
            folder = _cached(str(given), None) or folder
        where = f"base_model={str(given)!r}"
    else:
        folder = Path(recorded) if recorded and Path(recorded).is_dir() else None
        if folder is None and name:
            folder = _cached(str(name), revision)
        where = f"the recorded base {name or recorded!r}"
    if folder is None or not (folder / "config.json").is_file():
        raise PretrainedNotFound(
            f"this LoRA adapter needs its base model, and {where} is not a model folder on this "
            f"machine (recorded: folder {recorded!r}, hub name {name!r}, revision {revision!r}); "
            "loading never downloads. Put the base there, or pass store.models.load(..., "
            "base_model=<folder written by save_pretrained>)"
        )
    expected = meta.get("base_sha256")
    if expected and base_fingerprint(folder) != expected:
        raise IncompatibleCheckpoint(
            f"{where} ({folder}) is not the base this adapter was trained on: its config and "
            f"weights have sha256 {base_fingerprint(folder)[:12]}..., the adapter recorded "
            f"{expected[:12]}...; pass base_model=<the folder it was trained from>"
        )
    return folder


def _cached(name: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, local_files_only=True))
    except Exception:  # not in the cache (or not a hub name): the caller says what to do
        return None


def load_adapter(
    base: Any, adapter_dir: str | Path, *, trainable: bool = False, allow_pickle: bool = False
) -> Any:
    """``base`` (a loaded transformers model) with the LoRA adapter in ``adapter_dir``;
    safetensors adapter weights only, unless ``allow_pickle=True``."""
    from peft import PeftModel

    folder = Path(adapter_dir)
    if not (folder / ADAPTER_WEIGHTS).is_file():
        pickled = [p for p in folder.glob("adapter_model.*") if p.suffix != ".safetensors"]
        if pickled and not allow_pickle:
            raise refuse_pickle(pickled[0], "torch.save (pickle) adapter weights")
        if not pickled:
            raise IncompatibleCheckpoint(f"{folder} holds {ADAPTER_CONFIG} but no adapter weights")
    return PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)


class CausalLMModel:
    """A loaded causal language model (fine-tuned, or a base with its LoRA adapter) that
    continues texts and scores them.

    ``predict`` gives each text's greedy continuation (``max_new_tokens`` from the
    version's meta, default 20) without the prompt; ``predict_scores`` gives each text's
    mean token loss and its perplexity. ``pr.predict`` writes the continuation as
    ``prediction``.

    Example::

        lm = store.models.load("support-lm")
        lm.predict(["four five"])                        # array(['six seven eight ...'])
        lm.generate(["four five"], max_new_tokens=3, do_sample=True, top_p=0.9)
        lm.predict_scores(["four five six"])             # DataFrame: loss, perplexity
    """

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        from .huggingface_flavor import texts_of

        self._texts_of = texts_of
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.task = "causal-lm"
        self.text_columns: list[str] = list(meta.get("text_columns") or ["text"])
        self.max_length: int | None = meta.get("max_length")
        self.max_new_tokens = int(
            (meta.get("generation") or {}).get("max_new_tokens", DEFAULT_NEW_TOKENS)
        )
        self.classes = None
        if tokenizer.pad_token_id is None:  # GPT-2 style: pad with end-of-text (masked out)
            tokenizer.pad_token = tokenizer.eos_token

    def __repr__(self) -> str:
        return (
            f"CausalLMModel({type(self.model).__name__}, text_columns={self.text_columns}, "
            f"max_new_tokens={self.max_new_tokens})"
        )

    def predict(self, batch: Any) -> np.ndarray:
        """The greedy continuation of each text (the new text only), one string per row."""
        return np.asarray(self.generate(batch), dtype=object)

    def predict_proba(self, batch: Any) -> np.ndarray:
        """Refused: a language model has no classes; use predict_scores (loss, perplexity)."""
        raise ConfigError(
            "predict_proba is for classification models; a causal language model continues "
            "texts (predict) and scores them (predict_scores: loss and perplexity per text)"
        )

    def generate(
        self, batch: Any, max_new_tokens: int | None = None, **generate_kwargs: Any
    ) -> list[str]:
        """Continue each text of ``batch``; ``generate_kwargs`` go to ``model.generate``
        (greedy by default, so a rerun writes the same text)."""
        texts = [str(t) for t in self._texts_of(batch, self.text_columns[:1])]
        new = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        limit = self._positions()
        room = max(1, limit - new) if limit else None  # prompt tokens that leave room to add
        out: list[str] = []
        sample = generate_kwargs.pop("do_sample", False)
        sides = self.tokenizer.padding_side, self.tokenizer.truncation_side
        # Generation continues from each row's end: pad on the left, and a long prompt keeps
        # its last tokens.
        self.tokenizer.padding_side = self.tokenizer.truncation_side = "left"
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), _BATCH):
                    encoded = self.tokenizer(
                        texts[start : start + _BATCH],
                        truncation=room is not None,
                        max_length=room,
                        padding=True,
                        return_tensors="pt",
                    ).to(self.model.device)
                    generated = self.model.generate(
                        input_ids=encoded["input_ids"],
                        attention_mask=encoded["attention_mask"],
                        max_new_tokens=new,
                        do_sample=sample,
                        pad_token_id=self.tokenizer.pad_token_id,
                        **generate_kwargs,
                    )
                    width = encoded["input_ids"].shape[1]
                    out += self.tokenizer.batch_decode(
                        generated[:, width:], skip_special_tokens=True
                    )
        finally:
            self.tokenizer.padding_side, self.tokenizer.truncation_side = sides
        return [t.strip() for t in out]

    def predict_scores(self, batch: Any) -> pd.DataFrame:
        """Each text's mean next-token loss (nats) and perplexity (``exp(loss)``)."""
        texts = [str(t) for t in self._texts_of(batch, self.text_columns[:1])]
        losses: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), _BATCH):
                encoded = self.tokenizer(
                    texts[start : start + _BATCH],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.model.device)
                logits = self.model(**encoded).logits.float()
                targets = encoded["input_ids"][:, 1:]
                mask = encoded["attention_mask"][:, 1:].float()
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].transpose(1, 2), targets, reduction="none"
                )
                per_row = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
                losses += per_row.cpu().tolist()
        loss = np.asarray(losses, dtype=np.float64)
        return pd.DataFrame({"loss": loss, "perplexity": np.exp(loss)})

    def _positions(self) -> int | None:
        config = getattr(self.model, "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        return limit if isinstance(limit, int) else None
