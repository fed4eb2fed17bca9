"""Where a model version's training data ended: the largest key it was trained on.

Every registered version's lineage records the key range its training query read
(``key_min``/``key_max``). ``q.since("mlp")`` reads the rows past that watermark, so a
model can continue training on what came in since, without reading the old rows again.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import ConfigError, InvalidKey

if TYPE_CHECKING:
    from .base import ModelVersions

__all__ = ["Watermark", "watermark_of"]


class Watermark:
    """The key value a version's training rows ended at, and which version that was."""

    def __init__(self, model: str, version: int, key: str, value: Any) -> None:
        self.model, self.version, self.key, self.value = model, version, key, value

    def lineage(self) -> dict[str, Any]:
        """How the rows were chosen, for the next version's lineage."""
        return {"model": self.model, "version": self.version, "key": self.key, "after": self.value}


def watermark_of(
    models: ModelVersions,
    name: str,
    version: int | None,
    key: str | None,
    key_type: pa.DataType,
) -> Watermark:
    """The watermark of model ``name`` (its latest version when ``version`` is None) for a
    query sharded by ``key`` of Arrow type ``key_type``; InvalidKey when the query has no
    key or another one than the version was trained with, ConfigError when the version
    records no key range."""
    record = models.get(name, version=version)
    train = (record.lineage or {}).get("train") or {}
    if key is None:
        raise InvalidKey(
            f"since({name!r}) needs a query with a key to compare with the watermark; pass "
            f"key='{train.get('key') or '<column>'}' to store.table/store.sql"
        )
    trained_key = train.get("key")
    if trained_key is not None and trained_key != key:
        raise InvalidKey(
            f"{name} version {record.version} was trained on key {trained_key!r}, but this "
            f"query's key is {key!r}; the watermark only means something for the same key. "
            f"Use key={trained_key!r}"
        )
    if trained_key is None or train.get("key_max") is None:
        raise ConfigError(
            f"{name} version {record.version} records no key watermark (its training data "
            f"was {_what(train)}); since() needs a version trained on a datastore query with "
            "a key"
        )
    return Watermark(name, record.version, key, _typed(train["key_max"], key_type))


def _what(train: dict[str, Any]) -> str:
    if not train:
        return "not a datastore query"
    return "a query without a key" if train.get("key") is None else "never planned by key"


def _typed(value: Any, kind: pa.DataType) -> Any:
    """A watermark from the JSON lineage as the key column's own Python type."""
    if isinstance(value, str):
        if pa.types.is_timestamp(kind):
            return dt.datetime.fromisoformat(value)
        if pa.types.is_date(kind):
            return dt.date.fromisoformat(value)
        if pa.types.is_decimal(kind):
            return Decimal(value)
    return value
