"""Model cards: a short, readable account of a registered version, stored with it.

A card says what the model is (framework, features, label), how good it is (metrics, the
listened one first), what it was trained on (query, row count, key watermark, the
datastore URL with its password masked), when, and how to load and predict with it. It is
built once at registration from what the registry stores anyway, plus the facts only the
trainer knows (``features``, ``label``, ``listen``, ``mode``), and kept in
``<prefix>_model_cards`` as JSON; ``card_text`` renders it for a terminal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from .._internal.secrets import mask

__all__ = ["CARDS", "CARD_FACTS", "CARD_KEY", "build_card", "card_text"]

CARDS = pa.schema(
    [("name", pa.string()), ("version", pa.int64()), ("card", pa.string())]  # card: JSON
)
CARD_KEY = ["name", "version"]
# What a caller of ``register(card=...)`` may add; everything else comes from the version.
CARD_FACTS = ("features", "label", "listen", "mode", "description")
# Where in the run the metrics were taken, shown apart from them; loop flags, not metrics.
_POSITION = ("step", "epoch", "round")
_FLAGS = ("epoch_done", "improved")


def build_card(
    *,
    name: str,
    version: int,
    framework: str,
    created_at: dt.datetime,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    facts: Mapping[str, Any] | None = None,
    tracking: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of version ``version`` of ``name`` as JSON-able data (credentials masked)."""
    facts = dict(facts or {})
    listen = facts.get("listen")
    shown = [
        k
        for k in metrics
        if not str(k).startswith("timing/")
        and k not in _POSITION
        and k not in _FLAGS
        and not isinstance(metrics[k], bool)
    ]
    ordered = sorted(shown, key=lambda k: (k != listen, k))
    card: dict[str, Any] = {
        "name": name,
        "version": version,
        "framework": framework,
        "created_at": created_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "features": list(facts.get("features") or []),
        "label": facts.get("label"),
        "listen": listen,
        "mode": facts.get("mode"),
        "metrics": [{"name": k, "value": metrics[k]} for k in ordered],
        "at": {k: metrics[k] for k in _POSITION if metrics.get(k) is not None},
        "data": {
            role: _data(lineage.get(role))
            for role in ("train", "valid")
            if isinstance(lineage.get(role), Mapping)
        },
        "usage": {
            "load": f"model = store.models.load({name!r}, version={version})",
            "predict": f"model.predict(batch)  # or pr.predict({name!r}, query, "
            f"output='{name.replace('-', '_').replace('.', '_')}_predictions', "
            f"version={version})",
            "cli": f"pinnacle-ray predict {name} --version {version} --table TABLE "
            "--output OUTPUT --store URL",
        },
    }
    if facts.get("description"):
        card["description"] = str(facts["description"])
    if lineage.get("sweep"):
        card["sweep"] = lineage["sweep"]
    if tracking:
        card["tracking"] = dict(tracking)
    return mask(card)


def _data(lineage: Mapping[str, Any]) -> dict[str, Any]:
    """A query's lineage as the card shows it: what was read, how many rows, up to which key."""
    if "sql" in lineage:
        query = " ".join(str(lineage["sql"]).split())
    elif "table" in lineage or "collection" in lineage:
        source = lineage.get("table") or lineage.get("collection")
        where = lineage.get("where") or lineage.get("filter")
        columns = lineage.get("columns")
        query = f"{'table' if 'table' in lineage else 'collection'} {source}"
        if columns:
            query += f" columns={list(columns)}"
        if where:
            query += f" where={json.dumps(where, default=str, sort_keys=True)}"
    elif "fraction" in lineage or "holdout" in str(lineage):
        query = f"held out from train: {json.dumps(dict(lineage), default=str, sort_keys=True)}"
    else:
        query = json.dumps(dict(lineage), default=str, sort_keys=True)
    out: dict[str, Any] = {"query": query, "rows": lineage.get("rows")}
    if lineage.get("key") is not None and lineage.get("key_max") is not None:
        out["watermark"] = {"key": lineage["key"], "value": lineage["key_max"]}
    if lineage.get("store"):
        out["store"] = lineage["store"]
    if lineage.get("since"):
        out["since"] = lineage["since"]
    return out


def card_text(card: Mapping[str, Any]) -> str:
    """The card as a few readable lines for a terminal."""
    lines = [f"{card['name']} version {card['version']} ({card['framework']})"]
    lines.append(f"  created   {card.get('created_at', '')}")
    if card.get("description"):
        lines.append(f"  about     {card['description']}")
    if card.get("features") or card.get("label"):
        lines.append(f"  features  {', '.join(map(str, card.get('features') or [])) or '-'}")
        lines.append(f"  label     {card.get('label') or '-'}")
    metrics = card.get("metrics") or []
    if metrics:
        notes = (
            [f"listened: {card['listen']}, {card.get('mode') or 'min'}"]
            if card.get("listen")
            else []
        )
        notes += [f"{k} {v}" for k, v in (card.get("at") or {}).items()]
        lines.append("  metrics" + (f" ({'; '.join(notes)})" if notes else ""))
        width = max(len(str(m["name"])) for m in metrics)
        for m in metrics:
            lines.append(f"    {str(m['name']).ljust(width)}  {_value(m['value'])}")
    for role, data in (card.get("data") or {}).items():
        lines.append(f"  {role} data")
        lines.append(f"    query   {data.get('query')}")
        if data.get("rows") is not None:
            lines.append(f"    rows    {data['rows']}")
        if data.get("watermark"):
            mark = data["watermark"]
            lines.append(f"    through {mark['key']} = {mark['value']}")
        if data.get("store"):
            lines.append(f"    store   {data['store']}")
    if card.get("sweep"):
        lines.append(f"  sweep     {card['sweep']}")
    tracking = card.get("tracking") or {}
    if tracking.get("mlflow_run_id"):
        lines.append(f"  mlflow    run {tracking['mlflow_run_id']}")
    usage = card.get("usage") or {}
    if usage:
        lines.append("  use")
        lines.extend(f"    {usage[k]}" for k in ("load", "predict", "cli") if k in usage)
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
