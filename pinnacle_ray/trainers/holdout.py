"""A deterministic validation split by hashing the row key: the same rows every run, on
every worker and after a restart, with no extra column in the database."""

from __future__ import annotations

import zlib

import numpy as np
import ray.data

from .._internal.runtime import planned_execution
from ..errors import ConfigError, EmptyResult

__all__ = ["check_fraction", "holdout_mask", "split_by_key"]

_BUCKETS = 10_000


def holdout_mask(keys: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """True for the keys that fall into the ``fraction`` held out for validation."""
    keys = np.asarray(keys)
    if keys.dtype.kind in "iub":
        # splitmix64: a stable integer hash, vectorised (Python's hash() is salted per process).
        with np.errstate(over="ignore"):
            z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15 + seed)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        buckets = z % np.uint64(_BUCKETS)
    else:
        salt = str(seed).encode()
        buckets = np.fromiter(
            (zlib.crc32(salt + str(k).encode()) % _BUCKETS for k in keys),
            dtype=np.uint64,
            count=len(keys),
        )
    return buckets < np.uint64(round(fraction * _BUCKETS))


def check_fraction(fraction: float | None) -> None:
    """ConfigError unless ``fraction`` (a trainer's ``valid_fraction``) is None or in (0, 1)."""
    if fraction is not None and not 0 < fraction < 1:
        raise ConfigError(f"valid_fraction must be between 0 and 1 or None, got {fraction!r}")


def split_by_key(
    dataset: ray.data.Dataset,
    key: str | None,
    fraction: float,
    seed: int = 0,
    *,
    num_cpus: float = 1.0,
) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """(train, valid): ``valid`` holds the rows whose ``key`` hashes into ``fraction``.

    The valid part is materialized once (it is small and read at every validation); the
    train part stays a lazy, streaming dataset whose filter tasks take ``num_cpus`` each
    (what the resource plan leaves beside the training workers).
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"valid_fraction must be between 0 and 1, got {fraction!r}")
    if key is None:
        raise ConfigError(
            "no valid= query was given and the training query has no key to split a "
            "validation set by; pass valid=<query>, a key= on the query, or validation off "
            "(listen=None)"
        )

    def keep(batch: dict[str, np.ndarray], held: bool) -> dict[str, np.ndarray]:
        mask = holdout_mask(batch[key], fraction, seed)
        mask = mask if held else ~mask
        return {name: values[mask] for name, values in batch.items()}

    train = dataset.map_batches(
        keep, fn_kwargs={"held": False}, batch_format="numpy", num_cpus=num_cpus
    )
    valid = dataset.map_batches(
        keep, fn_kwargs={"held": True}, batch_format="numpy", num_cpus=num_cpus
    )
    with planned_execution():
        valid = valid.materialize()
        empty = valid.count() == 0
    if empty:
        raise EmptyResult(
            f"the {fraction:.0%} validation split by key {key!r} is empty (too few rows); pass "
            "valid=<query> or a larger valid_fraction"
        )
    return train, valid
