"""What every command shares: tables and JSON on stdout, exit codes, and which datastore."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .._internal.constants import STORE_ENV, env_text
from ..errors import ConfigError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "STORE_ENV",
    "connect",
    "emit_json",
    "metrics_text",
    "stdout_to_stderr",
    "store_url",
    "table",
    "when",
]

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def metrics_text(metrics: dict[str, Any], limit: int = 3, first: str | None = None) -> str:
    """Up to ``limit`` metrics as ``name=value``, ``first`` (the listened metric) leading,
    the others by name."""
    shown = []
    for k in sorted(metrics, key=lambda name: (name != first, name)):
        v = metrics[k]
        if k.startswith("timing/"):
            continue
        if isinstance(v, float):
            shown.append(f"{k}={v:.4g}")
        elif isinstance(v, int) and not isinstance(v, bool):
            shown.append(f"{k}={v}")
    return " ".join(shown[:limit]) + (" ..." if len(shown) > limit else "")


def emit_json(value: Any) -> None:
    print(json.dumps(value, default=str, sort_keys=True))


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """With ``--json``, whatever Ray forwards from its workers goes to stderr, so stdout holds
    only the JSON (Ray looks ``sys.stdout`` up each time it prints)."""
    if not enabled:
        yield
        return
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved


def store_url(args: argparse.Namespace, required: bool = True) -> str | None:
    if getattr(args, "store", None):
        return args.store
    if getattr(args, "spec", None):
        from ..jobs import load_spec

        return load_spec(args.spec).run.store
    if env_text(STORE_ENV):
        return env_text(STORE_ENV)
    if required:
        raise ConfigError(
            f"which datastore? pass --store URL (e.g. sqlite:///shop.db), --spec SPEC, or set "
            f"{STORE_ENV}"
        )
    return None


def connect(args: argparse.Namespace, required: bool = True) -> Any:
    url = store_url(args, required)
    if url is None:
        return None
    import pinnacle_ray as pr

    return pr.connect(url)
