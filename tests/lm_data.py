"""Counting sentences and tiny causal language models built from a config: no download.

Every row counts on from a random number word ("four five six seven"), wrapping after
"twelve", so the next word is always a function of the last one: a 2-layer model learns it
in a few steps, and a prompt's greedy continuation can be checked word by word.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

NUMBERS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
SPECIALS = ["<pad>", "<unk>", "<eos>"]


def counting_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of id, text (5-8 consecutive number words) and split (every 5th: valid)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        start, length = rng.randrange(len(NUMBERS)), rng.randint(5, 8)
        words = [NUMBERS[(start + k) % len(NUMBERS)] for k in range(length)]
        rows.append({"id": i, "text": " ".join(words), "split": "valid" if i % 5 == 0 else "train"})
    return rows


def next_words(prompt: str, count: int) -> str:
    """The ``count`` number words that follow ``prompt``'s last word."""
    last = NUMBERS.index(prompt.split()[-1])
    return " ".join(NUMBERS[(last + k) % len(NUMBERS)] for k in range(1, count + 1))


def lm_tokenizer():
    """A WordLevel tokenizer over the number words with pad, unk and eos tokens (no
    special tokens added around a text, as GPT-2's), as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + NUMBERS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<eos>",
        model_max_length=32,
    )


def tiny_causal_lm(folder: Path, kind: str = "gpt2", *, seed: int = 0) -> Path:
    """A 2-layer GPT-2 (``kind="gpt2"``) or Llama (``"llama"``) with hidden size 32 and this
    module's tokenizer, saved with save_pretrained into ``folder``. The Llama's weights are
    drawn wider than transformers' default (std 0.2, not 0.02), so that its frozen
    embeddings and head tell the words apart and a LoRA adapter alone can learn to count."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tokenizer = lm_tokenizer()
    ids: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    torch.manual_seed(seed)
    if kind == "gpt2":
        config = GPT2Config(
            n_positions=32, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0, **ids,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
    elif kind == "llama":
        config = LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=32, initializer_range=0.2, **ids,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"kind must be 'gpt2' or 'llama', got {kind!r}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
