"""``sweeps show``: a recorded sweep's trials from the datastore, and its picture."""

from __future__ import annotations

import argparse

from ..errors import ModelNotFound
from ._output import EXIT_OK, connect, emit_json, metrics_text, table, when

__all__ = ["cmd_sweeps_show"]


def cmd_sweeps_show(args: argparse.Namespace) -> int:
    store = connect(args)
    trials = store.models.sweeps(args.name)
    if not trials:
        names = sorted({t.sweep for t in store.models.sweeps()})
        raise ModelNotFound(
            f"no sweep named {args.name!r} in {store.url}; "
            + (f"recorded sweeps: {names}" if names else "no sweep is recorded yet")
        )
    plotted = None
    if args.plot:
        from ._plots import plot_sweep

        plotted = plot_sweep(trials, args.plot, f"sweep {args.name}")
    if args.json:
        emit_json(
            {
                "sweep": args.name,
                "trials": [
                    {
                        "trial_id": t.trial_id,
                        "model": t.model,
                        "status": t.status,
                        "params": t.params,
                        "metrics": t.metrics,
                        "metric": t.metric,
                        "mode": t.mode,
                        "score": t.score,
                        "best": t.best,
                        "version": t.version,
                        "created_at": t.created_at.isoformat() if t.created_at else None,
                    }
                    for t in trials
                ],
                **({"plot": args.plot} if plotted else {}),
            }
        )
        return EXIT_OK
    first = trials[0]
    print(f"sweep {args.name}: {len(trials)} trial(s) of {first.model}, {first.metric} "
          f"({first.mode}), {when(first.created_at)} UTC")  # fmt: skip
    rows = [
        (
            "*" if t.best else "",
            t.trial_id,
            t.status,
            "" if t.score is None else f"{t.score:.6g}",
            " ".join(f"{k}={_short(v)}" for k, v in sorted(t.params.items())),
            t.version or "",
            metrics_text({k: v for k, v in t.metrics.items() if k != t.metric}),
        )
        for t in trials
    ]
    print(table(rows, ["best", "trial", "status", first.metric, "params", "version", "other"]))
    if plotted:
        print(f"{first.metric} against {', '.join(plotted)} written to {args.plot}")
    return EXIT_OK


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
