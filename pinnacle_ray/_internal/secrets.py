"""The one secret masker: credentials never reach logs, errors, job records or the registry.

:func:`mask` is used wherever a value leaves the package's hands (an error message, a stored
config or lineage, a job record, a printed address). It masks, as ``***``:

- a URL's password (``postgresql://u:***@host/db``), in a SQLAlchemy ``URL`` or in any text;
- ``password=...`` settings of libpq/ODBC connection strings (``password=***``);
- any of the literal ``secrets`` it is given, as written and as percent-encoded in a URL;
- in a mapping, the string value of every secret-named key (``db_password``, ``hf_token``,
  ``clientSecret``), and recursively everything inside mappings and sequences.

Standard library only, so every room (and a Ray worker) can import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "is_secret_name", "is_secret_variable", "mask"]

MASK = "***"
# scheme://user:password@ -> scheme://user:***@
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
# libpq / ODBC style "password=..." inside connection strings.
_INLINE_SECRET = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|[^\s;&]+)")
# Whole words of a key ("db_password", "mongo_pw", "hf_token"), not parts ("tokenizer",
# "max_tokens"); "password" and "secret" anywhere ("dbPassword", "clientSecret").
_SECRET_KEYS = re.compile(
    r"(?:^|[_.\-])(pw|pwd|pass|passphrase|token|credentials?|api[_-]?key|access[_-]?key|"
    r"private[_-]?key)(?:$|[_.\-])|password|passwd|secret",
    re.I,
)
# Environment variable names hold a secret by any part (DB_PASSWORD, HF_TOKEN, MYAPIKEY).
_SECRET_VARIABLE = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY", re.I
)


def mask(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """``value`` with every credential in it replaced by ``***``: URL passwords,
    ``password=`` settings, the given literal ``secrets`` and secret-named keys' values.

    Text (or a SQLAlchemy ``URL``) comes back as text; a mapping as a ``dict`` with string
    keys; a list, tuple or set as a list; anything else as it is.

    >>> mask("postgresql://ann:p%40ss@db:5432/shop")
    'postgresql://ann:***@db:5432/shop'
    >>> mask({"db_password": "hunter2", "lr": 0.1})
    {'db_password': '***', 'lr': 0.1}
    >>> mask("login failed for p@ss", secrets=["p@ss"])
    'login failed for ***'
    """
    forms = _literal_forms(secrets)
    return _mask(value, forms)


def is_secret_name(name: str) -> bool:
    """Whether a key or variable called ``name`` holds a secret by its name alone."""
    return bool(_SECRET_KEYS.search(name))


def is_secret_variable(name: str) -> bool:
    """Whether environment variable ``name`` holds a secret by its name alone (any part of
    it: ``DB_PASSWORD``, ``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``)."""
    return bool(_SECRET_VARIABLE.search(name))


def _mask(value: Any, forms: list[str]) -> Any:
    if hasattr(value, "render_as_string"):  # a SQLAlchemy URL (a tuple), not imported here
        value = value.render_as_string(hide_password=True)
    if isinstance(value, Mapping):
        return {
            str(k): MASK if is_secret_name(str(k)) and isinstance(v, str) and v else _mask(v, forms)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask(v, forms) for v in value]
    if isinstance(value, str):
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
        text = _INLINE_SECRET.sub(lambda m: f"{m[1]}={MASK}", text)
        for form in forms:
            text = text.replace(form, MASK)
        return text
    return value


def _literal_forms(secrets: Iterable[str | None]) -> list[str]:
    # Longest first, so a secret that contains another is replaced whole.
    forms = {f for s in secrets if s for f in (s, quote(s, safe=""), quote_plus(s, safe=""))}
    return sorted(forms, key=len, reverse=True)
