"""Words and their first sub-tokens, for token classification: what the registered model's
predictions and the trainer's tokenizing map (run in Ray Data's worker processes) share.

Apart from the flavor on purpose: this module imports numpy and pyarrow only, so a process
that tokenizes token-classification rows does not import torch to split words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ConfigError

__all__ = ["first_subtokens", "words_of"]


def words_of(value: Any) -> list[str]:
    """The words of one row of a token-classification text or tag column: a string split on
    whitespace, or a list (or array) of strings as a list column holds them; NULL is no words."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple, np.ndarray, pa.ListScalar)):
        items = value.as_py() if isinstance(value, pa.ListScalar) else list(value)
        return [str(w) for w in items if w is not None]
    raise ConfigError(
        f"a token-classification row must be whitespace-separated text or a list of words, got "
        f"a {type(value).__name__}: {value!r}"[:300]
    )


def first_subtokens(word_ids: Sequence[int | None]) -> list[int]:
    """The position of each word's first sub-token, in word order (the positions a
    token-classification model is trained and read at)."""
    positions, previous = [], None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            positions.append(position)
        previous = word
    return positions
