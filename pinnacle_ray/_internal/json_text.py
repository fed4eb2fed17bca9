"""Values as JSON text for the datastore's text columns (metrics, config, lineage, job specs),
and back; credentials are masked before, by ``pinnacle_ray._internal.secrets.mask``."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import PurePath
from typing import Any

__all__ = ["from_json", "to_json"]


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
