"""Validate table and column names before they reach SQL; quoting is SQLAlchemy's job."""

from __future__ import annotations

from ..errors import InvalidIdentifier

__all__ = ["MAX_IDENTIFIER_BYTES", "validate_identifier"]

# PostgreSQL silently truncates identifiers past 63 bytes; refusing keeps names distinct.
MAX_IDENTIFIER_BYTES = 63


def validate_identifier(name: object, what: str = "identifier") -> str:
    """Return ``name`` if it can be a quoted identifier on every backend, else raise."""
    if not isinstance(name, str):
        raise InvalidIdentifier(f"{what} must be a string, got {type(name).__name__}: {name!r}")
    if not name or not name.strip():
        raise InvalidIdentifier(f"{what} is empty; pass a non-empty name")
    if "\x00" in name:
        raise InvalidIdentifier(f"{what} {name!r} contains a NUL character; remove it")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise InvalidIdentifier(
            f"{what} {name[:20]!r}... is {len(name.encode('utf-8'))} bytes long; "
            f"the limit is {MAX_IDENTIFIER_BYTES} bytes (PostgreSQL truncates longer names)"
        )
    if name != name.strip():
        raise InvalidIdentifier(f"{what} {name!r} has leading or trailing spaces; remove them")
    return name
