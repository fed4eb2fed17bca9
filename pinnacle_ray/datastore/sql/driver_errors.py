"""Turn driver exceptions (sqlite3, psycopg, PyMySQL, ADBC) into PinnacleError subclasses.

Classification uses SQLSTATE / server error codes where the driver exposes them and the
message text otherwise. Every message is scrubbed of the connection's password.
"""

from __future__ import annotations

import re

from ..._internal.secrets import mask
from ...errors import (
    ColumnNotFound,
    DatastoreAuthenticationError,
    DatastoreConnectionError,
    PinnacleError,
    QueryError,
    TableNotFound,
)

__all__ = ["is_duplicate_key", "translate"]

_MYSQL_CODES: dict[int, type[PinnacleError]] = {
    1045: DatastoreAuthenticationError,  # access denied
    1044: DatastoreAuthenticationError,  # access denied to database
    1049: DatastoreConnectionError,  # unknown database
    2003: DatastoreConnectionError,  # can't connect
    2005: DatastoreConnectionError,  # unknown host
    2013: DatastoreConnectionError,  # lost connection
    1146: TableNotFound,
    1054: ColumnNotFound,
}
_SQLSTATE_PREFIX: list[tuple[str, type[PinnacleError]]] = [
    ("28", DatastoreAuthenticationError),  # invalid authorization
    ("08", DatastoreConnectionError),  # connection exception
    ("3D", DatastoreConnectionError),  # invalid catalog (database) name
    ("57P", DatastoreConnectionError),  # admin shutdown, cannot connect now
    ("42P01", TableNotFound),
    ("42703", ColumnNotFound),
]
_TEXT_PATTERNS: list[tuple[re.Pattern[str], type[PinnacleError]]] = [
    (
        re.compile(
            r"password authentication failed|access denied|role \".*\" does not exist", re.I
        ),
        DatastoreAuthenticationError,
    ),
    (re.compile(r"no such table|relation .* does not exist|doesn't exist", re.I), TableNotFound),
    (re.compile(r"no such column|column .* does not exist|unknown column", re.I), ColumnNotFound),
    (
        re.compile(
            r"connection refused|could not connect|timeout expired|can't connect|"
            r"unable to open database|could not translate host|server closed|"
            r"connection .* failed|name or service not known",
            re.I,
        ),
        DatastoreConnectionError,
    ),
]
_HINTS: dict[type[PinnacleError], str] = {
    DatastoreAuthenticationError: "check the user name and password in the URL",
    DatastoreConnectionError: "check that the server is running and the host, port and "
    "database in the URL are right",
    TableNotFound: "check the table name (store.tables() lists them)",
    ColumnNotFound: "check the column names in the query",
    QueryError: "fix the query and try again",
}


def translate(
    exc: BaseException, *, secrets: tuple[str, ...] = (), context: str = ""
) -> PinnacleError:
    """A PinnacleError of the right kind for a driver/SQLAlchemy exception ``exc``."""
    if isinstance(exc, PinnacleError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    kind = _classify(orig)
    detail = _message(orig)
    prefix = f"{context}: " if context else ""
    text = f"{prefix}{detail} ({_HINTS[kind]})"
    return kind(mask(text, secrets))


def is_duplicate_key(exc: BaseException) -> bool:
    """Whether ``exc`` is a unique/primary key violation (SQLite, PostgreSQL, MySQL/MariaDB)."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "sql_state", None)
    if sqlstate == "23505":
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in (1062, 1586)  # ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
    return bool(_UNIQUE_TEXT.search(str(orig)))


_UNIQUE_TEXT = re.compile(r"UNIQUE constraint failed|PRIMARY KEY must be unique", re.I)


def _classify(orig: BaseException) -> type[PinnacleError]:
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "sql_state", None)
    if isinstance(sqlstate, str):
        for prefix, kind in _SQLSTATE_PREFIX:
            if sqlstate.startswith(prefix):
                return kind
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return _MYSQL_CODES[args[0]]
    text = str(orig)
    for pattern, kind in _TEXT_PATTERNS:
        if pattern.search(text):
            return kind
    return QueryError


def _message(orig: BaseException) -> str:
    args = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        return f"{args[1]} (error {args[0]})"
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    # psycopg appends LINE/HINT lines; the first line (+ a HINT) is what a person needs.
    keep = lines[:1] + [line for line in lines[1:] if line.startswith("HINT")]
    return " ".join(keep) if keep else type(orig).__name__
