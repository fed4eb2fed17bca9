"""Check the values of a ``where={column: value}`` filter before they reach a database.

A value is one scalar (``None`` for NULL) or a list/tuple/set of scalars (IN). Anything else
(a dict, a nested list, NaN, an integer past 64 bits) has no single meaning on every backend:
MongoDB reads a dict as operators, a SQL driver fails or converts it. Refusing it here gives
one answer everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["INT64_MAX", "INT64_MIN", "check_where_value", "is_in_list"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LISTS = (list, tuple, set, frozenset)


def is_in_list(value: Any) -> bool:
    """Whether ``value`` is a list of values (an IN condition) rather than one value."""
    return isinstance(value, _LISTS)


def check_where_value(column: str, value: Any) -> Any:
    """Return ``value`` if it is a usable where value for ``column``, else raise ConfigError."""
    if is_in_list(value):
        for item in value:
            if is_in_list(item) or isinstance(item, Mapping):
                raise ConfigError(
                    f"where[{column!r}] holds the nested value {item!r}; a where value is one "
                    "value or a flat list of values (column IN list)"
                )
            _check_scalar(column, item)
        return value
    _check_scalar(column, value)
    return value


def _check_scalar(column: str, value: Any) -> None:
    if isinstance(value, Mapping):
        raise ConfigError(
            f"where[{column!r}] is a dict ({value!r}); a where value is one value or a list of "
            "values. For MongoDB operators use store.find(filter=...)"
        )
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(
            f"where[{column!r}] is NaN, which equals nothing in SQL; use None for NULL"
        )
    big = isinstance(value, int) and not isinstance(value, bool)
    if big and not INT64_MIN <= value <= INT64_MAX:
        raise ConfigError(
            f"where[{column!r}] is {value}, outside the 64-bit integer range no database "
            "column here stores; no row can hold it"
        )
