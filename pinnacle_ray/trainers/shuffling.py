"""Shuffled training batches: a new, reproducible row order every epoch, through Ray Data.

Tables are usually stored in time or id order, often correlated with the label; read in
key order, SGD sees all of one class and then all of the other. Each worker therefore draws
its training batches through Ray Data's local shuffle buffer (``iter_torch_batches(
local_shuffle_buffer_size=..., local_shuffle_seed=...)``): rows are mixed within a window of
at least ``buffer`` rows (and always within each whole block Ray hands over), with a seed
derived from the trainer's ``seed``, the epoch and the worker's rank. The same seed gives
the same order; each epoch gets a different one; a run resumed at epoch ``e`` draws
exactly the order a straight run draws at epoch ``e``.

Reproducible needs one more thing: Ray Data collates batches in a thread pool and, unless
told to preserve order, hands them on as they finish. ``trainers/ingest.py`` gives Ray
Train a ``DataConfig`` that sets ``preserve_order`` on the training dataset's shards (Ray's
own advice for a deterministic order); other datasets keep Ray Train's default options.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = [
    "DEFAULT_SHUFFLE_BUFFER_ROWS",
    "check_shuffle",
    "epoch_seed",
    "shuffle_kwargs",
]

# Rows mixed at a time (at least): about 1 MB of 16 float64 features, small beside a
# worker's memory, large beside a batch. Ray rounds it up to the batch size.
DEFAULT_SHUFFLE_BUFFER_ROWS = 10_000


def check_shuffle(shuffle: Any) -> bool:
    """``shuffle`` when it is True or False, else ConfigError (before any worker starts)."""
    if not isinstance(shuffle, bool):
        raise ConfigError(
            f"shuffle must be True (a new row order every epoch, the default) or False (key "
            f"order), got {shuffle!r}"
        )
    return shuffle


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 32-bit seed for ``epoch`` on worker ``rank``, derived from the trainer's ``seed``
    (independent streams for different epochs and ranks, the same for the same triple)."""
    entropy = [seed % 2**64, epoch, rank]  # SeedSequence takes non-negative integers
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def shuffle_kwargs(
    shuffle: bool, seed: int, epoch: int, rank: int, buffer: int | None = None
) -> dict[str, Any]:
    """The ``iter_torch_batches`` arguments for one epoch's training batches: none when
    ``shuffle`` is off, else Ray Data's local shuffle buffer with this epoch's seed."""
    if not shuffle:
        return {}
    return {
        "local_shuffle_buffer_size": buffer or DEFAULT_SHUFFLE_BUFFER_ROWS,
        "local_shuffle_seed": epoch_seed(seed, epoch, rank),
    }
