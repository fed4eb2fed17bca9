"""Short labelled texts, a tiny BERT and a tokenizer built from the rows: no download."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GOOD = ["great", "lovely", "excellent", "superb", "happy", "wonderful", "fine", "perfect"]
BAD = ["awful", "broken", "terrible", "poor", "sad", "horrible", "bad", "useless"]
FILLER = ["the", "product", "was", "really", "quite", "and", "service", "it", "very", "so"]


def sentiment_rows(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    """``n`` rows of id, title, text, label ('pos'/'neg'), score (float) and split."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        positive = rng.random() < 0.5
        words = [*rng.sample(FILLER, 2), *rng.sample(GOOD if positive else BAD, 2)]
        rng.shuffle(words)
        rows.append(
            {
                "id": i,
                "title": FILLER[i % len(FILLER)],
                "text": " ".join(words),
                "label": "pos" if positive else "neg",
                "score": 1.0 if positive else -1.0,
                "split": "valid" if i % 5 == 0 else "train",
            }
        )
    return rows


def word_tokenizer(max_len: int = 64, words: Iterable[str] | None = None):
    """A WordLevel tokenizer over ``words`` (default: this module's vocabulary), as a
    PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    words = set(GOOD + BAD + FILLER) if words is None else set(words)
    vocab = {w: i for i, w in enumerate(specials + sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=max_len,
    )


def tiny_bert(folder: Path, *, with_tokenizer: bool = True, tokenizer: Any = None) -> Path:
    """A 2-layer BERT with hidden size 32, saved with save_pretrained into ``folder`` (with
    ``tokenizer``, default :func:`word_tokenizer`)."""
    from transformers import BertConfig, BertModel

    tokenizer = word_tokenizer() if tokenizer is None else tokenizer
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(folder)
    if with_tokenizer:
        tokenizer.save_pretrained(folder)
    return folder
