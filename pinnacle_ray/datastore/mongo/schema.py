"""Declared column types for a MongoDB query (``schema=`` on ``find``/``table``).

Without a declaration, a column's Arrow type is planned from the first documents of the
query; a later document of another type then fails its read. A declaration fixes the type
up front, as pymongoarrow's ``Schema`` does: a ``pyarrow.Schema``, or a dict of field to an
Arrow type or a type name (``"int64"``, ``"float64"``, ``"string"``, ``"timestamp[ms]"``,
or this package's BSON kinds ``"int"``, ``"float"``, ``"objectid"``, ``"datetime"``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from .bson_arrow import scalar_type

__all__ = ["SchemaLike", "declared_types"]

SchemaLike = pa.Schema | Mapping[str, "pa.DataType | str"]
_KIND_NAMES = ("int", "float", "string", "objectid", "datetime", "bool", "binary")
_EXAMPLES = "'int64', 'float64', 'string', 'bool', 'timestamp[ms]', 'binary', pa.list_(pa.int64())"


def declared_types(schema: SchemaLike | None) -> dict[str, pa.DataType]:
    """The Arrow type of each field ``schema`` declares (empty when ``None``); a
    ``ConfigError`` naming the field and the value when a type is not one."""
    if schema is None:
        return {}
    if isinstance(schema, pa.Schema):
        return {f.name: f.type for f in schema}
    if not isinstance(schema, Mapping):
        raise ConfigError(
            f"schema must be a pyarrow.Schema or a dict of field name to type, got {schema!r}; "
            "e.g. schema={'stars': 'int64', 'text': 'string'}"
        )
    if not schema:
        raise ConfigError("schema is empty; pass None to plan every type from the documents")
    out: dict[str, pa.DataType] = {}
    for name, value in schema.items():
        if not isinstance(name, str) or not name or name.startswith("$"):
            raise ConfigError(
                f"schema names field {name!r}; fields are non-empty strings such as 'stars' "
                "or 'user.age' (no leading '$')"
            )
        out[name] = _arrow_type(name, value)
    return out


def _arrow_type(name: str, value: Any) -> pa.DataType:
    if isinstance(value, pa.DataType):
        return value
    if isinstance(value, str):
        if value in _KIND_NAMES:
            return scalar_type(value)
        try:
            return pa.type_for_alias(value)
        except (ValueError, KeyError):
            pass
    raise ConfigError(
        f"schema declares field {name!r} as {value!r}, which is not an Arrow type or a type "
        f"name; use one of {_EXAMPLES}"
    )
