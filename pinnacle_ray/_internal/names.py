"""The one place user-given names are checked, before they reach a path, a Ray run, a table.

Two rules, each with one message wherever the name is given:

- :func:`validate_name` for what becomes a folder or a Ray run/job name: model names
  (``name=`` of a trainer, ``register=``), checkpoint handles, sweep, job and run names.
  Letters of any script, digits and ``-_.``, starting with a letter or digit, in Unicode
  NFKC form, bounded in characters and in UTF-8 bytes: nothing that could leave a folder
  (``..``, ``/``, ``\\``, ``~``, an absolute path) or look like another name (a fullwidth ``f``).
- :func:`validate_identifier` for table, collection and column names, which SQL quotes and
  MongoDB takes as given: anything but empty, NUL or other control characters, lone
  surrogates, surrounding spaces or a length past the backend's limit
  (:data:`IDENTIFIER_LIMITS`, :data:`FIELD_LIMITS`).

:func:`ascii_label` turns any name into the ASCII text Ray's metrics tags need.
"""

from __future__ import annotations

import hashlib
import unicodedata

from ..errors import InvalidIdentifier, InvalidName

__all__ = [
    "FIELD_LIMITS",
    "IDENTIFIER_LIMITS",
    "MAX_HANDLE_CHARS",
    "MAX_IDENTIFIER_BYTES",
    "MAX_NAME_BYTES",
    "MAX_NAME_CHARS",
    "ascii_label",
    "default_name",
    "validate_identifier",
    "validate_name",
]

MAX_NAME_CHARS = 128
# A checkpoint handle ("latest", "best", "epoch_3") names a row and a folder under its version.
MAX_HANDLE_CHARS = 64
# A Ray Train run folder is "<name>-<YYYYmmdd-HHMMSS>-<6 hex>" and a file name holds 255
# bytes on Linux and macOS file systems: 128 CJK characters (384 bytes) would not fit.
MAX_NAME_BYTES = 200
_NAME_PUNCTUATION = "-_."
_EXAMPLES = {
    "model name": "e.g. 'house-price', 'mlp_v2' or 'größe-表'",
    "checkpoint handle": "e.g. 'latest', 'best', 'epoch_3'",
}

# PostgreSQL silently truncates identifiers past 63 bytes; refusing keeps names distinct.
MAX_IDENTIFIER_BYTES = 63
# (limit, unit, why) per SQLAlchemy dialect name; None: the portable limit above.
IDENTIFIER_LIMITS: dict[str | None, tuple[int, str, str]] = {
    None: (MAX_IDENTIFIER_BYTES, "bytes", "PostgreSQL truncates longer names"),
    "postgresql": (63, "bytes", "PostgreSQL truncates longer names"),
    "mysql": (64, "characters", "MySQL and MariaDB hold at most 64"),
    "mariadb": (64, "characters", "MySQL and MariaDB hold at most 64"),
    # SQLite has no limit of its own; a name that long is a mistake, not a table.
    "sqlite": (1024, "characters", "a name that long is surely a mistake"),
    # MongoDB before 4.4 holds "<database>.<collection>" in 120 bytes (4.4+: 255).
    "mongodb": (120, "bytes", "MongoDB before 4.4 holds no longer collection names"),
}
# Column (field) names where they differ from table names: a MongoDB field has no limit of
# its own (a document's size bounds it).
FIELD_LIMITS: dict[str | None, tuple[int, str, str]] = {
    "mongodb": (1024, "characters", "a name that long is surely a mistake"),
}


def validate_name(
    value: object,
    what: str = "model name",
    limit: int = MAX_NAME_CHARS,
    *,
    ascii_only: bool = False,
) -> str:
    """Return ``value`` if it can name a model, handle, sweep, job or run, else raise
    ``InvalidName`` (a ``ConfigError``) saying why and what is allowed. ``ascii_only``
    for what Ray itself takes as ASCII (a ``RunConfig`` name, a job's submission id).

    Example::

        validate_name("größe-表")        # fine: letters of any script
        validate_name("../x")            # InvalidName: ... it holds the path separator '/'
    """
    if not isinstance(value, str):
        raise InvalidName(
            f"{what} {value!r} is not allowed: it must be a string, got {type(value).__name__}"
            f"; {_rule(what, limit, ascii_only)}"
        )
    problem = _name_problem(value, limit)
    if problem is None and ascii_only and not value.isascii():
        problem = "Ray takes it as ASCII text (its metrics tags)"
    if problem:
        raise InvalidName(
            f"{what} {_shown(value)} is not allowed: {problem}; {_rule(what, limit, ascii_only)}"
        )
    return value


def default_name(candidate: object, fallback: str) -> str:
    """A model name made from ``candidate`` (a function's ``__name__``, a model folder's
    name) when the user gave none: its disallowed characters as ``-``, else ``fallback``."""
    text = unicodedata.normalize("NFKC", candidate) if isinstance(candidate, str) else ""
    if _has_surrogate(text):
        return fallback
    cleaned = "".join(
        c if c.isalnum() or c in _NAME_PUNCTUATION or _is_mark(c) else "-" for c in text
    )
    cleaned = cleaned.lstrip("-_.")[:MAX_NAME_CHARS].rstrip("-")
    return cleaned if cleaned and _name_problem(cleaned, MAX_NAME_CHARS) is None else fallback


def _rule(what: str, limit: int, ascii_only: bool = False) -> str:
    example = _EXAMPLES.get(what, "e.g. 'house-price' or 'run_2'")
    letters = "ASCII letters" if ascii_only else "letters (any script)"
    return (
        f"use {letters}, digits and '-', '_', '.', starting with a letter or digit, "
        f"at most {limit} characters and {MAX_NAME_BYTES} bytes in UTF-8 ({example})"
    )


def _name_problem(value: str, limit: int) -> str | None:
    """Why ``value`` cannot be a name (the first reason found), or None."""
    if not value:
        return "it is empty"
    if len(value) > limit:
        return f"it is {len(value)} characters long"
    if _has_surrogate(value):
        return "it holds a lone surrogate, which is not Unicode text"
    size = len(value.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long in UTF-8"
    for char in value:
        if char == "\x00":
            return "it holds a NUL character"
        if char in "/\\":
            return f"it holds the path separator {char!r}"
        if not (char.isalnum() or char in _NAME_PUNCTUATION or _is_mark(char)):
            return f"it holds {char!r} ({unicodedata.name(char, f'U+{ord(char):04X}')})"
    if not value[0].isalnum():
        return f"it starts with {value[0]!r}"
    if unicodedata.normalize("NFKC", value) != value:
        return (
            f"it is not in Unicode NFKC form (it would read as "
            f"{unicodedata.normalize('NFKC', value)!r}); pass that form"
        )
    return None


def _is_mark(char: str) -> bool:
    # Vowel signs and accents that NFKC keeps (Devanagari, Thai, ...) are parts of words.
    return unicodedata.category(char) in ("Mn", "Mc")


def validate_identifier(
    name: object, what: str = "identifier", dialect: str | None = None, *, table: bool = False
) -> str:
    """Return ``name`` if it can be a quoted identifier (a table or collection name with
    ``table=True``, else a column or field name) on ``dialect`` (a SQLAlchemy dialect name,
    ``"mongodb"``, or None for every backend), else raise ``InvalidIdentifier``. Quoting is
    SQLAlchemy's job: quotes, spaces, reserved words and any script are fine."""
    if not isinstance(name, str):
        raise InvalidIdentifier(f"{what} must be a string, got {type(name).__name__}: {name!r}")
    if not name or not name.strip():
        raise InvalidIdentifier(f"{what} is empty; pass a non-empty name")
    if "\x00" in name:
        raise InvalidIdentifier(f"{what} {_shown(name)} contains a NUL character; remove it")
    if _has_surrogate(name):
        raise InvalidIdentifier(
            f"{what} {_shown(name)} holds a lone surrogate, which is not Unicode text; "
            "pass the name as text decoded from UTF-8"
        )
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise InvalidIdentifier(
            f"{what} {_shown(name)} holds the control character {control!r}, which tools "
            "cannot show and MariaDB's table definitions cannot be read back with; remove it"
        )
    if not table and dialect in FIELD_LIMITS:
        limit, unit, why = FIELD_LIMITS[dialect]
    else:
        limit, unit, why = IDENTIFIER_LIMITS.get(dialect, IDENTIFIER_LIMITS[None])
    size = len(name.encode("utf-8")) if unit == "bytes" else len(name)
    if size > limit:
        raise InvalidIdentifier(
            f"{what} {_shown(name)} is {size} {unit} long; the limit is {limit} {unit} "
            f"({why}); shorten it"
        )
    if dialect in ("mysql", "mariadb") and any(ord(c) > 0xFFFF for c in name):
        raise InvalidIdentifier(
            f"{what} {_shown(name)} holds a character beyond Unicode's Basic Multilingual "
            "Plane (e.g. an emoji), which MySQL and MariaDB identifiers cannot hold; "
            "remove it"
        )
    if name != name.strip():
        raise InvalidIdentifier(
            f"{what} {_shown(name)} has leading or trailing spaces; remove them"
        )
    if table and dialect in ("mysql", "mariadb") and _mysql_file_name_length(name) > 250:
        raise InvalidIdentifier(
            f"{what} {_shown(name)} is too long for a MySQL/MariaDB table although it has "
            f"{len(name)} characters: the server keeps a table in a file named after it, "
            "each CJK or other non-Latin character taking 5 bytes of that name (at most 250), "
            "so at most 50 such characters fit; shorten it"
        )
    return name


def _mysql_file_name_length(name: str) -> int:
    """The length of the file name MySQL/MariaDB keep table ``name`` in (its "filename"
    character set): ASCII letters, digits and '_' as themselves; letters of Latin, Greek,
    Cyrillic, Armenian, Hebrew and a few other blocks as '@' and two characters; anything
    else as '@' and four hex digits."""
    size = 0
    for char in name:
        code = ord(char)
        if code < 128 and (char.isalnum() or char == "_"):
            size += 1
        elif char.isalpha() and any(lo <= code <= hi for lo, hi in _MYSQL_SHORT_RANGES):
            size += 3
        else:
            size += 5
    return size


# The blocks whose letters MySQL's filename character set writes in 3 bytes (my_wc_mb_filename).
_MYSQL_SHORT_RANGES = [
    (0x00C0, 0x05FF),
    (0x1E00, 0x1FFF),
    (0x2160, 0x217F),
    (0x24B0, 0x24EF),
    (0xFF20, 0xFF5F),
]


def ascii_label(text: str) -> str:
    """``text`` as printable ASCII, for what Ray encodes as ASCII (metrics tags, operator
    names): unchanged when it already is, else accents dropped, other characters as
    ``_`` and a short hash of the original so different names stay different.

    Example::

        ascii_label("ünïcödé 表")    # 'unicode _-1b2c3d4e'
    """
    if text.isascii() and text.isprintable():
        return text
    folded = []
    for char in unicodedata.normalize("NFKD", text):
        if char.isascii() and char.isprintable():
            folded.append(char)
        elif not _is_mark(char):
            folded.append("_")
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{''.join(folded)}-{digest}"


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _shown(value: str, limit: int = 40) -> str:
    """``value`` as repr, shortened: a 10,000-character name would fill the terminal."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"
