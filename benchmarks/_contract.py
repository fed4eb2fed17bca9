"""The row every ``benchmarks/<name>.py --json PATH`` writes, and ``benchmarks/all.py`` reads.

Standard library only: ``all.py`` checks the rows its benchmarks wrote without importing Ray
or numpy (``_common`` re-exports ``write_json_rows`` for the benchmark scripts).

A row is one comparison: ``{"benchmark": str, "ours_s": float, "baseline": str,
"baseline_s": float, "ratio": float, "ratio_kind": "time"|"throughput"|"speedup",
"target": str, "met": bool|None, "note": str}``. ``ratio`` is ours/baseline for "time",
ours_thr/baseline_thr for "throughput" and baseline/ours for "speedup"; ``target`` is text
such as ``"<= 0.5x"`` or ``">= 8x"`` (empty when there is none, and then ``met`` is None).
A figure that could not be measured (a method that failed) is None.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

JSON_ROW_KEYS: dict[str, type | tuple[type, ...]] = {
    "benchmark": str,
    "ours_s": (int, float),
    "baseline": str,
    "baseline_s": (int, float),
    "ratio": (int, float),
    "ratio_kind": str,
    "target": str,
    "met": (bool, type(None)),
    "note": str,
}
RATIO_KINDS = ("time", "throughput", "speedup")
_FIGURES = ("ours_s", "baseline_s", "ratio")


def check_rows(rows: Any) -> list[dict[str, Any]]:
    """Return ``rows`` checked against the contract, figures as floats (None where missing).

    Raises ``ValueError`` naming the row, the key and the value when a row has a missing or
    unknown key, a value of the wrong type, or a ``ratio_kind`` outside ``RATIO_KINDS``.
    Non-finite figures (NaN, inf) become None, since JSON has no spelling for them.
    """
    if not isinstance(rows, list):
        raise ValueError(f"expected a JSON list of rows, got a {type(rows).__name__}")
    checked: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"row {i} is a {type(row).__name__}, not a dict")
        name = row.get("benchmark")
        missing = sorted(set(JSON_ROW_KEYS) - set(row))
        extra = sorted(set(row) - set(JSON_ROW_KEYS))
        if missing or extra:
            raise ValueError(
                f"row {i} ({name!r}): missing keys {missing}, unknown keys {extra}; "
                f"the contract is {list(JSON_ROW_KEYS)}"
            )
        out: dict[str, Any] = {}
        for key, kind in JSON_ROW_KEYS.items():
            value = row[key]
            if key in _FIGURES and value is None:
                out[key] = None
                continue
            # bool is an int subclass: True is no figure, and only `met` may be a bool.
            if (isinstance(value, bool) and key != "met") or not isinstance(value, kind):
                raise ValueError(
                    f"row {i} ({name!r}): {key}={value!r} is a {type(value).__name__}; "
                    f"expected {kind}"
                )
            if key in _FIGURES:
                value = float(value) if math.isfinite(value) else None
            out[key] = value
        if out["ratio_kind"] not in RATIO_KINDS:
            raise ValueError(
                f"row {i} ({name!r}): ratio_kind={out['ratio_kind']!r}; use one of {RATIO_KINDS}"
            )
        checked.append(out)
    return checked


def write_json_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Check ``rows`` against the benchmark contract and write them to ``path`` as a JSON list.

    Every row is checked (``check_rows``) before anything is written, so ``./dev bench all``
    never reads half a file: a bad row raises ``ValueError`` and leaves ``path`` untouched.
    """
    checked = check_rows(rows)
    Path(path).write_text(json.dumps(checked, indent=2) + "\n")


def read_json_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read and check the rows a benchmark wrote to ``path`` (``ValueError`` when bad)."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON: {e}") from None
    return check_rows(data)
