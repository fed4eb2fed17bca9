"""``train``, ``sweep``, ``predict`` and ``quickstart``: run a spec here, on this Ray."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._output import EXIT_OK, connect, emit_json, stdout_to_stderr, table

__all__ = ["cmd_predict", "cmd_quickstart", "cmd_sweep", "cmd_train"]


def cmd_train(args: argparse.Namespace) -> int:
    from ..jobs import load_spec, run_train

    spec = load_spec(args.spec)
    if not args.json:
        print(f"training {spec.run.name} ({spec.run.trainer.kind}) from {spec.source}", flush=True)
    started = time.perf_counter()
    with stdout_to_stderr(args.json):
        outcome = run_train(spec, progress=not args.json and not args.no_progress)
    seconds = time.perf_counter() - started
    if args.json:
        emit_json({**outcome.to_dict(), "seconds": round(seconds, 2)})
        return EXIT_OK
    where = f"registered as {outcome.name} version {outcome.version}"
    print(
        f"\ntrained {outcome.name} in {seconds:.1f} s; "
        + (where if outcome.version else "not registered")
    )
    rows = [
        (k, f"{v:.6g}" if isinstance(v, float) else v)
        for k, v in sorted(outcome.metrics.items())
        if not k.startswith("timing/") and not isinstance(v, bool)
    ]
    if rows:
        print(table(rows, ["metric", "value"]))
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..jobs import load_spec, run_sweep

    spec = load_spec(args.spec)
    started = time.perf_counter()
    with stdout_to_stderr(args.json):
        outcome = run_sweep(spec)
    seconds = time.perf_counter() - started
    if args.json:
        emit_json({**outcome.to_dict(), "seconds": round(seconds, 2)})
        return EXIT_OK
    where = (
        f"best trial registered as version {outcome.version}"
        if outcome.version
        else "best trial not registered"
    )
    print(f"swept {outcome.name} ({outcome.sweep}) in {seconds:.1f} s; {where}")
    rows = [
        (
            "*" if t["best"] else "",
            t["trial_id"],
            t["status"],
            "" if t["score"] is None else f"{t['score']:.6g}",
            " ".join(f"{k}={_short(v)}" for k, v in sorted(t["params"].items())),
        )
        for t in outcome.trials or []
    ]
    assert spec.run.tune is not None  # run_sweep refused a spec without one
    print(table(rows, ["best", "trial", "status", spec.run.tune.metric, "params"]))
    return EXIT_OK


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_predict(args: argparse.Namespace) -> int:
    from ..jobs import load_spec, run_predict

    kwargs: dict[str, Any] = {}
    for name in ("version", "handle", "batch_size", "concurrency", "num_gpus"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.columns:
        kwargs["columns"] = [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.allow_pickle:
        kwargs["allow_pickle"] = True
    if args.spec:
        spec = load_spec(args.spec)
        if args.store:  # --store wins over the spec's store, as in every other command
            spec = dataclasses.replace(spec, run=spec.run.model_copy(update={"store": args.store}))
        with stdout_to_stderr(args.json):
            outcome = run_predict(spec, model=args.model, output=args.output, **kwargs)
    else:
        if not args.model or not args.output or not (args.table or args.sql):
            raise ConfigError(
                "predict needs MODEL, --output TABLE and a query (--table NAME or --sql TEXT), "
                "or --spec SPEC with a predict: section"
            )
        store = connect(args)
        query = (
            store.table(args.table, key=args.key)
            if args.table
            else store.sql(args.sql, key=args.key)
        )
        with stdout_to_stderr(args.json):
            outcome = run_predict(model=args.model, query=query, output=args.output, **kwargs)
    if args.json:
        emit_json(outcome.to_dict())
    else:
        seconds = outcome.metrics.get("timing/seconds", 0.0)
        print(
            f"wrote {outcome.rows} prediction(s) of {outcome.name} version {outcome.version} "
            f"into {outcome.output} in {seconds:.1f} s"
        )
    return EXIT_OK


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..jobs.quickstart import write_quickstart

    spec_path, rows = write_quickstart(Path(args.dir), epochs=args.epochs)
    if not args.json:
        print(f"wrote {rows} rows into table 'patients' and the spec {spec_path}")
    args.spec, args.no_progress = str(spec_path), False
    code = cmd_train(args)
    if not args.json:
        db = Path(args.dir).resolve() / "quickstart.db"
        print(
            "\nnext:\n"
            f"  pinnacle-ray models list --store sqlite:///{db}\n"
            f"  pinnacle-ray submit {spec_path} --address http://127.0.0.1:8265 --follow"
            "   # on a Ray cluster"
        )
    return code
