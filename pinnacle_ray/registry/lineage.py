"""Make metrics, config and lineage safe to store: credentials masked, values as JSON text."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from ..datastore.url import mask

__all__ = ["from_json", "mask_secrets", "to_json"]

# Whole words of a key ("db_password", "mongo_pw", "hf_token"), not parts ("tokenizer",
# "max_tokens"); "password" and "secret" anywhere ("dbPassword", "clientSecret").
_SECRET_KEYS = re.compile(
    r"(?:^|[_.\-])(pw|pwd|pass|passphrase|token|credentials?|api[_-]?key|access[_-]?key|"
    r"private[_-]?key)(?:$|[_.\-])|password|passwd|secret",
    re.I,
)
# libpq / ODBC style "password=..." inside connection strings.
_INLINE_SECRET = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|[^\s;&]+)")


def mask_secrets(value: Any) -> Any:
    """``value`` with passwords in URLs, ``password=`` settings and secret-named keys masked."""
    if isinstance(value, Mapping):
        return {
            str(k): "***"
            if _SECRET_KEYS.search(str(k)) and isinstance(v, str) and v
            else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return _INLINE_SECRET.sub(lambda m: f"{m[1]}=***", mask(value))
    return value


def to_json(value: Any) -> str:
    """``value`` as JSON text; numpy scalars, dates, decimals and paths become plain values."""
    return json.dumps(value if value is not None else {}, default=_plain, sort_keys=True)


def from_json(text: str | None) -> dict[str, Any]:
    """The dict stored as JSON ``text`` (empty when NULL)."""
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return value.item()  # numpy / torch scalars
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (PurePath, set, frozenset)):
        return str(value) if isinstance(value, PurePath) else sorted(value, key=str)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)
