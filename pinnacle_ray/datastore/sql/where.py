"""One ``where={column: value}`` condition as SQL: equality, ``IS NULL`` or ``IN``.

Values are checked against the column's type first. Databases disagree on a comparison of
mismatched types (MariaDB finds ``'1; DROP TABLE x' = 1`` true, PostgreSQL refuses it,
SQLite compares by affinity), so a value whose kind the column cannot hold is refused here
and every backend returns exactly the rows whose value equals it.
"""

from __future__ import annotations

import decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from ...errors import ConfigError
from ..where_values import check_where_value, is_in_list
from .column_types import arrow_type

__all__ = ["match"]


def match(column: sa.Column, value: Any) -> Any:
    """The SQL condition ``column`` matches ``value``: ``None`` is NULL, a list is IN (a
    ``None`` in it matches NULL too); raises ConfigError for a value the column cannot hold."""
    check_where_value(column.name, value)
    if value is None:
        return column.is_(None)
    if is_in_list(value):
        items = list(value)
        for item in items:
            if item is not None:
                _check_kind(column, item)
        present = [v for v in items if v is not None]
        condition = column.in_(present)
        return sa.or_(condition, column.is_(None)) if len(present) < len(items) else condition
    _check_kind(column, value)
    return column == value


def _kind(column: sa.Column) -> str | None:
    try:
        t = arrow_type(column.type)
    except Exception:  # an exotic dialect type: leave the comparison to the database
        return None
    if t is None:
        return None
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t):
        return "text"
    if pa.types.is_binary(t):
        return "binary"
    return None  # dates and times: the drivers accept several forms


_ACCEPTS: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "number": (int, float, decimal.Decimal),
    "text": (str,),
    "binary": (bytes, bytearray, memoryview),
}


def _check_kind(column: sa.Column, value: Any) -> None:
    kind = _kind(column)
    if kind is None:
        return
    ok = isinstance(value, _ACCEPTS[kind])
    if kind == "number" and isinstance(value, bool):
        ok = False  # True == 1 in Python, not in PostgreSQL: say which is meant
    if not ok:
        raise ConfigError(
            f"where[{column.name!r}] is {_show(value)} ({type(value).__name__}), but column "
            f"{column.name!r} holds {kind} values ({column.type}); pass a {kind} value (or None "
            "for NULL)"
        )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
