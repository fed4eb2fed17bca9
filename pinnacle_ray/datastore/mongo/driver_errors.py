"""Turn pymongo's exceptions into pinnacle_ray's error tree, with credentials removed.

A server error keeps the server's own message (``unknown operator: $foo``) and says what we
were doing (``counting documents of 'reviews' with filter {...}``) so the user sees both.
"""

from __future__ import annotations

from pymongo import errors as mongo_errors

from ..._internal.secrets import mask
from ...errors import (
    DatastoreAuthenticationError,
    DatastoreConnectionError,
    DuplicateKey,
    InvalidURL,
    PinnacleError,
    QueryError,
    WriteError,
)

__all__ = ["is_duplicate_key", "translate"]

# Server error codes: AuthenticationFailed, Unauthorized, and the duplicate-key family.
_AUTH_CODES = {18, 13}
_DUPLICATE_CODES = {11000, 11001, 12582}


def translate(exc: BaseException, *, secrets: tuple[str, ...], context: str) -> PinnacleError:
    """The pinnacle_ray error for pymongo exception ``exc`` raised while doing ``context``."""
    detail = mask(_first_line(exc), secrets)
    if isinstance(exc, (mongo_errors.InvalidURI, mongo_errors.ConfigurationError)):
        return InvalidURL(f"{context}: {detail}; fix the MongoDB URL or its options")
    if isinstance(exc, mongo_errors.ServerSelectionTimeoutError):
        return DatastoreConnectionError(
            f"{context}: no MongoDB server answered within the server selection timeout "
            f"({detail}); check the host and port, that the server runs, and the network. "
            "serverSelectionTimeoutMS=<ms> in the URL sets how long to wait"
        )
    if isinstance(exc, (mongo_errors.ConnectionFailure, mongo_errors.NetworkTimeout)):
        return DatastoreConnectionError(f"{context}: the MongoDB connection failed ({detail})")
    if isinstance(exc, mongo_errors.OperationFailure) and exc.code in _AUTH_CODES:
        return DatastoreAuthenticationError(
            f"{context}: the server refused the credentials ({detail}); check the user, the "
            "password and authSource= (the database that holds the user) in the URL"
        )
    if is_duplicate_key(exc):
        return DuplicateKey(f"{context}: a document with this key already exists ({detail})")
    if isinstance(exc, mongo_errors.BulkWriteError):
        return WriteError(f"{context}: the server refused a write ({detail})")
    if isinstance(exc, (mongo_errors.OperationFailure, mongo_errors.InvalidOperation)):
        return QueryError(f"{context}: the server refused it: {detail}")
    if isinstance(exc, (mongo_errors.InvalidDocument, mongo_errors.DocumentTooLarge)):
        return WriteError(f"{context}: a document cannot be stored ({detail})")
    return QueryError(f"{context}: {type(exc).__name__}: {detail}")


def is_duplicate_key(exc: BaseException) -> bool:
    """True when ``exc`` is (or holds) a duplicate-key error from a unique index."""
    if isinstance(exc, mongo_errors.DuplicateKeyError):
        return True
    if isinstance(exc, mongo_errors.BulkWriteError):
        errors = exc.details.get("writeErrors", []) if exc.details else []
        return any(e.get("code") in _DUPLICATE_CODES for e in errors)
    return isinstance(exc, mongo_errors.OperationFailure) and exc.code in _DUPLICATE_CODES


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, mongo_errors.OperationFailure) and exc.details:
        message = exc.details.get("errmsg")
        if not message and exc.details.get("writeErrors"):
            message = exc.details["writeErrors"][0].get("errmsg")
        if message:
            return str(message).splitlines()[0]
    text = str(exc).split(", full error:", 1)[0].strip().splitlines()
    return text[0] if text else type(exc).__name__
