"""Documents to Arrow columns: one planned schema for every shard, and the conversion itself.

A column is a field path (``"user.age"`` reads ``{"user": {"age": 31}}``); a path through an
array of documents (``"items.price"``) gives a list per document, as MongoDB's projection
does. Values map to Arrow as follows, and the same way in every shard:

====================  ================================================================
BSON                  Arrow
====================  ================================================================
int32/int64           int64 (float64 when the field also holds doubles: a documented
                      widening, the only coercion)
double, Decimal128    float64
string                string
ObjectId              string (its 24-digit hex form)
date                  timestamp[ms] (UTC wall time, as pymongo returns it)
bool                  bool
binary                binary
array                 list<...> of the element type
embedded document     struct<...> (or select its fields with dotted paths)
missing / null        null
====================  ================================================================

Any other mix of types in one field is refused with :class:`MixedTypes`, naming the field,
the two types and one ``_id`` holding each, so the offending documents can be fixed.

A column whose type the query declares (``schema=``) is not planned: it reads as declared,
taking the BSON kinds that type holds (an int into a float column, an ObjectId into a
string one) and refusing others with :class:`MixedTypes`; nothing is truncated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from bson import Binary, Decimal128, Int64, ObjectId

from ...errors import MixedTypes

__all__ = [
    "PlannedColumns",
    "documents_to_table",
    "field_value",
    "kind_of",
    "kinds_for_type",
    "plan_columns",
    "scalar_type",
    "top_level_fields",
]

_SCALAR_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "objectid": pa.string(),
    "datetime": pa.timestamp("ms"),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}
_NUMBER = {"int", "float"}
_KIND_OF_TYPE = {
    bool: "bool",
    int: "int",
    Int64: "int",
    float: "float",
    Decimal128: "float",
    str: "string",
    ObjectId: "objectid",
    dt.datetime: "datetime",
    bytes: "binary",
    Binary: "binary",
    list: "list",
    dict: "document",
}
_MISSING = object()


def scalar_type(kind: str | None) -> pa.DataType:
    """The Arrow type a scalar BSON ``kind`` (as :func:`kind_of` names it) reads as."""
    return _SCALAR_TYPES.get(kind or "", pa.null())


def kind_of(value: Any) -> str | None:
    """The BSON kind of ``value`` as this module names it (``None`` for null)."""
    if value is None:
        return None
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, Mapping):
        return "document"
    if isinstance(value, dt.datetime):
        return "datetime"
    return type(value).__name__


def field_value(doc: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` in ``doc`` (None when missing); arrays of documents
    on the way give a list, as a MongoDB projection does."""
    value: Any = doc
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list):
            value = [v.get(part) for v in value if isinstance(v, Mapping) and part in v] or _MISSING
        else:
            value = _MISSING
        if value is _MISSING:
            return None
    return value


@dataclass(frozen=True)
class PlannedColumns:
    """The Arrow schema every shard yields, and per column one ``_id`` that holds the planned
    kind (the first example a :class:`MixedTypes` error names); ``declared`` are the columns
    whose type the query declared, ``source`` says which documents the others came from."""

    schema: pa.Schema
    kinds: dict[str, str | None]
    examples: dict[str, Any]
    declared: frozenset[str] = frozenset()
    source: str = "the sample documents"


def plan_columns(
    docs: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    collection: str,
    declared: Mapping[str, pa.DataType] | None = None,
    source: str = "the sample documents",
) -> PlannedColumns:
    """Plan ``columns``' Arrow types from sample documents ``docs`` (described by
    ``source``), except those ``declared`` (field -> Arrow type), which read as declared."""
    declared = declared or {}
    fields, kinds, examples = [], {}, {}
    for column in columns:
        if column in declared:
            fields.append(pa.field(column, declared[column]))
            kinds[column], examples[column] = None, None
            continue
        seen: dict[str, Any] = {}
        values = []
        for doc in docs:
            value = field_value(doc, column)
            kind = kind_of(value)
            if kind is not None:
                seen.setdefault(kind, doc.get("_id"))
                values.append(value)
        kind = _merge_kinds(column, seen, collection)
        arrow_type = _arrow_type(column, kind, values, seen, collection)
        fields.append(pa.field(column, arrow_type))
        kinds[column] = kind
        examples[column] = seen.get(kind) if kind else None
    return PlannedColumns(
        pa.schema(fields), kinds, examples, frozenset(declared) & set(columns), source
    )


def documents_to_table(
    docs: Sequence[Mapping[str, Any]], planned: PlannedColumns, collection: str
) -> pa.Table:
    """Documents as one Arrow table of ``planned.schema``; a value of another kind than
    planned raises :class:`MixedTypes` naming the field and two ``_id``s."""
    arrays = []
    for field in planned.schema:
        values = [field_value(doc, field.name) for doc in docs]
        if field.name in planned.declared:
            arrays.append(_declared_array(values, field, docs, collection))
            continue
        kind = planned.kinds[field.name]
        allowed = _allowed_kinds(kind)
        found = {_KIND_OF_TYPE.get(type(v)) or kind_of(v) for v in values}
        found.discard(None)
        bad = found - allowed
        if bad:
            _raise_mixed(docs, values, field.name, planned, bad, collection)
        arrays.append(_array(values, kind, field.type, docs, planned, collection, field.name))
    return pa.Table.from_arrays(arrays, schema=planned.schema)


def kinds_for_type(arrow_type: pa.DataType) -> set[str] | None:
    """The BSON kinds a column declared as ``arrow_type`` takes without loss (``None``: any
    kind Arrow converts exactly, e.g. a decimal type)."""
    t = pa.types
    if t.is_integer(arrow_type):
        return {"int"}
    if t.is_floating(arrow_type):
        return {"int", "float"}
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return {"string", "objectid"}
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type):
        return {"binary"}
    if t.is_boolean(arrow_type):
        return {"bool"}
    if t.is_timestamp(arrow_type) or t.is_date(arrow_type):
        return {"datetime"}
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return {"list"}
    if t.is_struct(arrow_type) or t.is_map(arrow_type):
        return {"document"}
    return None


def _declared_array(
    values: list[Any], field: pa.Field, docs: Sequence[Mapping[str, Any]], collection: str
) -> pa.Array:
    """``values`` as an array of the declared ``field.type``; :class:`MixedTypes` naming the
    first document whose value that type does not hold."""
    allowed = kinds_for_type(field.type)
    plain = [_plain(v) for v in values]
    pairs = list(zip(docs, values, strict=True))
    bad = None
    if allowed is not None:
        bad = next(((d, v) for d, v in pairs if v is not None and kind_of(v) not in allowed), None)
    if bad is None:
        try:
            return pa.array(plain, type=field.type, from_pandas=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            fits = [_converts(one, field.type) for one in plain]
            bad = next((pair for pair, ok in zip(pairs, fits, strict=True) if not ok), None)
            if bad is None:
                raise MixedTypes(
                    f"field {field.name!r} of collection {collection!r} is declared as "
                    f"{field.type} in schema= but its values do not convert "
                    f"({str(exc).splitlines()[0]})"
                ) from None
    doc, value = bad
    raise MixedTypes(
        f"field {field.name!r} of collection {collection!r} is declared as {field.type} in "
        f"schema= but _id {_show(doc.get('_id'))} holds a {kind_of(value)} value "
        f"({_short(value)}); fix that document, or declare a type that holds both"
    )


def _converts(value: Any, arrow_type: pa.DataType) -> bool:
    try:
        pa.array([value], type=arrow_type, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False
    return True


def _short(value: Any) -> str:
    text = repr(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_kinds(kind: str | None) -> set[str]:
    if kind is None:
        return set()
    if kind == "float":
        return {"int", "float"}
    return {kind}


def _merge_kinds(column: str, seen: Mapping[str, Any], collection: str) -> str | None:
    kinds = set(seen)
    if not kinds:
        return None
    if kinds <= _NUMBER:
        return "float" if "float" in kinds else "int"
    if len(kinds) == 1:
        return next(iter(kinds))
    others, numbers = sorted(kinds - _NUMBER), sorted(kinds & _NUMBER)
    a, b = (others[0], others[1]) if len(others) >= 2 else (numbers[0], others[0])
    raise MixedTypes(
        f"field {column!r} of collection {collection!r} holds {a} and {b} values (e.g. _id "
        f"{_show(seen[a])} and _id {_show(seen[b])}); store one type per field, or convert "
        "the field in the documents before training"
    )


def _arrow_type(
    column: str, kind: str | None, values: list[Any], seen: Mapping[str, Any], collection: str
) -> pa.DataType:
    if kind is None:
        return pa.null()
    if kind in _SCALAR_TYPES:
        return _SCALAR_TYPES[kind]
    try:
        return pa.array([_plain(v) for v in values]).type
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MixedTypes(
            f"field {column!r} of collection {collection!r} holds {kind} values whose elements "
            f"differ in type (e.g. _id {_show(seen[kind])}: {str(exc).splitlines()[0]}); store "
            "one element type per field"
        ) from None


def _array(
    values: list[Any],
    kind: str | None,
    arrow_type: pa.DataType,
    docs: Sequence[Mapping[str, Any]],
    planned: PlannedColumns,
    collection: str,
    name: str,
) -> pa.Array:
    if kind == "objectid":
        values = [None if v is None else str(v) for v in values]
    elif kind == "float":
        values = [float(v.to_decimal()) if type(v) is Decimal128 else v for v in values]
    elif kind in ("list", "document"):
        values = [_plain(v) for v in values]
    try:
        return pa.array(values, type=arrow_type, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        for doc, value in zip(docs, values, strict=True):
            try:
                pa.array([value], type=arrow_type, from_pandas=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise MixedTypes(
                    f"field {name!r} of collection {collection!r} was planned as {arrow_type} "
                    f"(e.g. _id {_show(planned.examples.get(name))}) but _id "
                    f"{_show(doc.get('_id'))} holds a value that does not fit "
                    f"({str(exc).splitlines()[0]}); store one type per field"
                ) from None
        raise


def _raise_mixed(
    docs: Sequence[Mapping[str, Any]],
    values: list[Any],
    name: str,
    planned: PlannedColumns,
    bad: set[str],
    collection: str,
) -> None:
    kind = planned.kinds[name]
    for doc, value in zip(docs, values, strict=True):
        found = kind_of(value)
        if found in bad:
            planned_as = kind or "missing/null (no document had a value when the read was planned)"
            raise MixedTypes(
                f"field {name!r} of collection {collection!r} holds {planned_as} and {found} "
                f"values (e.g. _id {_show(planned.examples.get(name))} and _id "
                f"{_show(doc.get('_id'))}); its type was planned from {planned.source}. "
                f"Declare it with schema={{{name!r}: '<type>'}} when the type widens (int to "
                "float) or starts as null, else store one type per field or convert the field "
                "in the documents before training"
            )


def _plain(value: Any) -> Any:
    """``value`` with BSON-only types turned into what Arrow infers (ObjectId -> str)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return float(value.to_decimal())
    return value


def _show(value: Any) -> str:
    return repr(str(value)) if isinstance(value, ObjectId) else repr(value)


def top_level_fields(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Top-level field names of ``docs`` in first-seen order, ``_id`` first."""
    names: dict[str, None] = {"_id": None}
    for doc in docs:
        for name in doc:
            names.setdefault(name, None)
    return list(names)
