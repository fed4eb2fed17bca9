"""``models list|show|rm|promote|rollback|cleanup``: the registry of a datastore, from a shell."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError, PinnacleError
from ..registry import card_text
from ._output import EXIT_OK, connect, emit_json, metrics_text, table, when

__all__ = [
    "cmd_models_cleanup",
    "cmd_models_list",
    "cmd_models_promote",
    "cmd_models_rm",
    "cmd_models_rollback",
    "cmd_models_show",
]


def cmd_models_list(args: argparse.Namespace) -> int:
    store = connect(args)
    versions = store.models.list(args.name)
    if args.json:
        emit_json([_version_dict(v) for v in versions])
        return EXIT_OK
    if not versions:
        print(f"no models registered in {store.url}")
        return EXIT_OK
    rows = [
        (
            v.name,
            v.version,
            v.framework,
            when(v.created_at),
            ",".join(v.handles),
            metrics_text(v.metrics, first=_listened(store, v)),
        )
        for v in versions
    ]
    print(table(rows, ["name", "version", "framework", "created (UTC)", "handles", "metrics"]))
    return EXIT_OK


def _listened(store: Any, version: Any) -> str | None:
    """The metric the run listened to (its model card says), shown first in lists."""
    try:
        return store.models.card(version.name, version=version.version).get("listen")
    except PinnacleError:  # a version whose card cannot be read still lists
        return None


def cmd_models_show(args: argparse.Namespace) -> int:
    store = connect(args)
    v = store.models.get(args.name, version=args.version)
    card = store.models.card(v.name, version=v.version)
    plotted = None
    if getattr(args, "plot", None):
        from ._plots import plot_history

        frame = store.models.metrics(v.name, version=v.version)
        plotted = plot_history(frame, args.plot, f"{v.name} version {v.version}")
    info = _version_dict(v)
    if args.json:
        emit_json({**info, "card": card, **({"plot": args.plot} if plotted else {})})
        return EXIT_OK
    print(card_text(card))
    print("  files")
    for key in ("handles", "parent_version", "artifact_uri", "size_bytes", "sha256"):
        if info[key] not in (None, []):
            value = ", ".join(info[key]) if isinstance(info[key], list) else info[key]
            print(f"    {key:14} {value}")
    if plotted:
        print(f"curves of {', '.join(plotted)} written to {args.plot}")
    return EXIT_OK


def cmd_models_rm(args: argparse.Namespace) -> int:
    store = connect(args)
    if not args.yes:
        what = f"version {args.version} of" if args.version else "every version of"
        raise ConfigError(f"this removes {what} {args.name!r} and its files; add --yes to confirm")
    removed = store.models.delete(args.name, version=args.version)
    if args.json:
        emit_json({"name": args.name, "removed": removed})
    else:
        print(f"removed {args.name} version(s) {', '.join(map(str, removed))}")
    return EXIT_OK


def cmd_models_cleanup(args: argparse.Namespace) -> int:
    store = connect(args)
    report = store.models.cleanup(older_than=args.older_than)
    if args.json:
        emit_json(
            {
                "pending": [{"name": n, "version": v} for n, v in report.pending],
                "folders": report.folders,
            }
        )
        return EXIT_OK
    print(str(report))
    for n, v in report.pending:
        print(f"  pending version {v} of {n}")
    for folder in report.folders:
        print(f"  folder {folder}")
    return EXIT_OK


def cmd_models_promote(args: argparse.Namespace) -> int:
    store = connect(args)
    v = store.models.promote(args.name, version=args.version, handle=args.handle)
    return _moved(args, v, "promoted")


def cmd_models_rollback(args: argparse.Namespace) -> int:
    store = connect(args)
    v = store.models.rollback(args.name, handle=args.handle)
    return _moved(args, v, "rolled back")


def _moved(args: argparse.Namespace, v: Any, what: str) -> int:
    if args.json:
        emit_json({"name": v.name, "handle": args.handle, "version": v.version})
    else:
        print(f"{what} {v.name}: {args.handle} -> version {v.version}")
    return EXIT_OK


def _version_dict(v: Any) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "framework": v.framework,
        "created_at": v.created_at.isoformat(),
        "handles": list(v.handles),
        "parent_version": v.parent_version,
        "metrics": v.metrics,
        "config": v.config,
        "lineage": v.lineage,
        "artifact_uri": v.artifact_uri,
        "size_bytes": v.size_bytes,
        "sha256": v.sha256,
    }
