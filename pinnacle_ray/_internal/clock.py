"""The one UTC helper: every time the package stores or compares is timezone-aware UTC."""

from __future__ import annotations

import datetime as dt
from typing import overload

__all__ = ["as_utc", "utc_now"]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.timezone.utc)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` with UTC as its zone when it has none; ``None`` stays ``None``.

    SQLite and MariaDB hand back UTC wall time without a zone; PostgreSQL and MongoDB
    keep it. A value that has a zone is returned as it is.
    """
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
