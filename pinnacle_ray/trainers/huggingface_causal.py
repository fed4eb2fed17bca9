"""Causal-LM fine-tuning for :class:`pinnacle_ray.HuggingFaceTrainer`: texts tokenized for
next-token prediction, and LoRA settings checked in the driver and applied on the workers.

Each row's text becomes its token ids followed by the tokenizer's end-of-text token (so a
fine-tuned model learns where a text ends); the labels are the ids themselves (the model
shifts them), padding gets -100 so the loss skips it. ``peft=`` takes LoRA settings as a
dict of ``peft.LoraConfig`` fields or a ``LoraConfig``; the workers wrap the loaded model
with ``peft.get_peft_model``, so only the adapter trains and only the adapter is saved.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pyarrow as pa

from ..errors import ConfigError
from .huggingface_rows import EMPTY_COLUMN, TRUNCATED_COLUMN

__all__ = ["TokenizeCausal", "lora_settings", "with_lora"]

_TASK_TYPES = {"causal-lm": "CAUSAL_LM"}
# LoraConfig fields the trainer decides (what the model is, where it comes from).
_SET_BY_TRAINER = ("task_type", "base_model_name_or_path", "revision", "inference_mode")


def lora_settings(peft: Any, task: str) -> dict[str, Any] | None:
    """``peft`` (None, a dict of LoraConfig fields, or a ``peft.LoraConfig``) as JSON-able
    LoraConfig fields for ``task``, checked by building the LoraConfig once here."""
    if peft is None:
        return None
    from peft import LoraConfig, PeftConfig

    if task not in _TASK_TYPES:
        raise ConfigError(
            f"peft= (LoRA) is supported with task='causal-lm', got task={task!r}; fine-tune "
            "the whole model for this task (peft=None)"
        )
    if isinstance(peft, LoraConfig):
        fields = {f.name for f in dataclasses.fields(LoraConfig) if f.init}
        default = LoraConfig()
        given = {
            k: getattr(peft, k)
            for k in sorted(fields)
            if k not in _SET_BY_TRAINER and getattr(peft, k) != getattr(default, k)
        }
    elif isinstance(peft, PeftConfig):
        raise ConfigError(
            f"peft= takes LoRA settings (a dict or a peft.LoraConfig), got a "
            f"{type(peft).__name__}; other PEFT methods are not supported"
        )
    elif isinstance(peft, dict):
        given = dict(peft)
        fields = {f.name for f in dataclasses.fields(LoraConfig) if f.init}
        unknown = sorted(k for k in given if k not in fields)
        if unknown:
            raise ConfigError(
                f"peft={{...}} has {unknown}, which are not peft.LoraConfig fields; use e.g. "
                "r, lora_alpha, lora_dropout, target_modules, modules_to_save"
            )
        managed = sorted(k for k in given if k in _SET_BY_TRAINER)
        if managed:
            raise ConfigError(
                f"peft[{managed[0]!r}] is set by the trainer (the task and the base model it "
                "loads); leave it out"
            )
    else:
        raise ConfigError(
            f"peft must be None, a dict of LoRA settings (e.g. {{'r': 8}}) or a "
            f"peft.LoraConfig, got {type(peft).__name__}"
        )
    settings = {k: _plain(v) for k, v in given.items()}
    try:
        LoraConfig(task_type=_TASK_TYPES[task], **settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"peft={peft!r} is not a valid LoraConfig: {exc}") from None
    return settings


def with_lora(model: Any, settings: dict[str, Any], task: str) -> Any:
    """``model`` wrapped for LoRA training (on a worker): only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(task_type=_TASK_TYPES[task], **settings))


def _plain(value: Any) -> Any:
    """A LoraConfig value as JSON holds it (sets as sorted lists, enums as their values)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class TokenizeCausal:
    """Ray Data ``map_batches`` function for causal-LM rows: text -> token ids ending with
    the end-of-text token (when the tokenizer has one), and the check flags.

    Example::

        dataset.map_batches(TokenizeCausal(tokenizer, "text", max_length=128),
                            batch_format="pyarrow")
    """

    def __init__(self, tokenizer: Any, text_column: str, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.text_column = text_column
        self.max_length = max_length

    def __call__(self, table: pa.Table) -> pa.Table:
        values = table.column(self.text_column).to_pylist()
        empty = [v is None or not str(v).strip() for v in values]
        eos = self.tokenizer.eos_token_id
        room = self.max_length - (eos is not None)
        encoded = self.tokenizer(
            ["" if v is None else str(v) for v in values],
            truncation=False,
            add_special_tokens=True,
        )["input_ids"]
        ids = [list(row[:room]) + ([eos] if eos is not None else []) for row in encoded]
        return pa.table(
            {
                "input_ids": pa.array(ids, type=pa.list_(pa.int32())),
                "attention_mask": pa.array([[1] * len(r) for r in ids], type=pa.list_(pa.int32())),
                EMPTY_COLUMN: pa.array(empty, type=pa.bool_()),
                TRUNCATED_COLUMN: pa.array([len(r) > room for r in encoded], type=pa.bool_()),
            }
        )
