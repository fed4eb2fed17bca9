"""The ``pinnacle-ray`` command line: run specs, models in the registry, and Ray jobs.

Human output by default (tables; progress lines while training), ``--json`` for scripts.
Exit codes scripts can trust:

- 0: done (for a job: it SUCCEEDED, or it was submitted without ``--wait``);
- 1: refused or failed, with a one-line reason on stderr (``error: ...``);
- 2: the command line itself is wrong (argparse);
- 3: the job FAILED; 4: the job was STOPPED (``submit --wait``, ``jobs logs --follow``);
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, PinnacleError

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
STORE_ENV = "PINNACLE_STORE"


# -- output ----------------------------------------------------------------------------------
def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _metrics_text(metrics: dict[str, Any], limit: int = 3) -> str:
    shown = []
    for k, v in sorted(metrics.items()):
        if k.startswith("timing/"):
            continue
        if isinstance(v, float):
            shown.append(f"{k}={v:.4g}")
        elif isinstance(v, int) and not isinstance(v, bool):
            shown.append(f"{k}={v}")
    return " ".join(shown[:limit]) + (" ..." if len(shown) > limit else "")


def _emit_json(value: Any) -> None:
    print(json.dumps(value, default=str, sort_keys=True))


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
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


# -- shared lookups ----------------------------------------------------------------------------
def _store_url(args: argparse.Namespace, required: bool = True) -> str | None:
    if getattr(args, "store", None):
        return args.store
    if getattr(args, "spec", None):
        from .jobs import load_spec

        return load_spec(args.spec).run.store
    if os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    if required:
        raise ConfigError(
            f"which datastore? pass --store URL (e.g. sqlite:///shop.db), --spec SPEC, or set "
            f"{STORE_ENV}"
        )
    return None


def _connect(args: argparse.Namespace, required: bool = True) -> Any:
    url = _store_url(args, required)
    if url is None:
        return None
    import pinnacle_ray as pr

    return pr.connect(url)


# -- train / sweep / predict ---------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from .jobs import load_spec, run_train

    spec = load_spec(args.spec)
    if not args.json:
        print(f"training {spec.run.name} ({spec.run.trainer.kind}) from {spec.source}", flush=True)
    started = time.perf_counter()
    with _stdout_to_stderr(args.json):
        outcome = run_train(spec, progress=not args.json and not args.no_progress)
    seconds = time.perf_counter() - started
    if args.json:
        _emit_json({**outcome.to_dict(), "seconds": round(seconds, 2)})
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
        print(_table(rows, ["metric", "value"]))
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .jobs import load_spec, run_sweep

    spec = load_spec(args.spec)
    started = time.perf_counter()
    with _stdout_to_stderr(args.json):
        outcome = run_sweep(spec)
    seconds = time.perf_counter() - started
    if args.json:
        _emit_json({**outcome.to_dict(), "seconds": round(seconds, 2)})
    else:
        print(
            f"swept {outcome.name} in {seconds:.1f} s; best trial registered as version "
            f"{outcome.version}: {_metrics_text(outcome.metrics, 6)}"
        )
    return EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    from .jobs import load_spec, run_predict

    kwargs: dict[str, Any] = {}
    for name in ("version", "handle", "batch_size", "concurrency"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.columns:
        kwargs["columns"] = [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.spec:
        outcome = run_predict(load_spec(args.spec), model=args.model, output=args.output, **kwargs)
    else:
        if not args.model or not args.output or not (args.table or args.sql):
            raise ConfigError(
                "predict needs MODEL, --output TABLE and a query (--table NAME or --sql TEXT), "
                "or --spec SPEC with a predict: section"
            )
        store = _connect(args)
        query = (
            store.table(args.table, key=args.key)
            if args.table
            else store.sql(args.sql, key=args.key)
        )
        with _stdout_to_stderr(args.json):
            outcome = run_predict(model=args.model, query=query, output=args.output, **kwargs)
    if args.json:
        _emit_json(outcome.to_dict())
    else:
        print(f"wrote {outcome.rows} prediction(s) of {outcome.name}")
    return EXIT_OK


# -- models ----------------------------------------------------------------------------------------
def _cmd_models_list(args: argparse.Namespace) -> int:
    store = _connect(args)
    versions = store.models.list(args.name)
    if args.json:
        _emit_json([_version_dict(v) for v in versions])
        return EXIT_OK
    if not versions:
        print(f"no models registered in {store.url}")
        return EXIT_OK
    rows = [
        (
            v.name,
            v.version,
            v.framework,
            _when(v.created_at),
            ",".join(v.handles),
            _metrics_text(v.metrics),
        )
        for v in versions
    ]
    print(_table(rows, ["name", "version", "framework", "created (UTC)", "handles", "metrics"]))
    return EXIT_OK


def _cmd_models_show(args: argparse.Namespace) -> int:
    store = _connect(args)
    v = store.models.get(args.name, version=args.version)
    info = _version_dict(v)
    if args.json:
        _emit_json(info)
        return EXIT_OK
    for key in ("name", "version", "framework", "created_at", "handles", "parent_version",
                "artifact_uri", "size_bytes", "sha256"):  # fmt: skip
        print(f"{key:15} {info[key]}")
    for section in ("metrics", "config", "lineage"):
        print(f"{section}:")
        print(
            "  "
            + json.dumps(info[section], indent=2, default=str, sort_keys=True).replace("\n", "\n  ")
        )
    return EXIT_OK


def _cmd_models_rm(args: argparse.Namespace) -> int:
    store = _connect(args)
    if not args.yes:
        what = f"version {args.version} of" if args.version else "every version of"
        raise ConfigError(f"this removes {what} {args.name!r} and its files; add --yes to confirm")
    removed = store.models.delete(args.name, version=args.version)
    if args.json:
        _emit_json({"name": args.name, "removed": removed})
    else:
        print(f"removed {args.name} version(s) {', '.join(map(str, removed))}")
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


# -- jobs ------------------------------------------------------------------------------
def _cmd_submit(args: argparse.Namespace) -> int:
    from .jobs import load_spec, submit_spec
    from .jobs.tracking import connect_client, resolve_address

    spec = load_spec(args.spec)
    address = resolve_address(args.address)
    record = submit_spec(
        spec,
        address,
        force=args.force,
        working_dir=args.working_dir,
        env_names=args.env,
        pip=args.pip,
        command=args.run,
    )
    sid = record.submission_id
    if not (args.wait or args.follow):
        if args.json:
            _emit_json(record.to_dict())
        else:
            print(f"submitted {sid} to {address}")
            print(f"  status: pinnacle-ray jobs status {sid} --address {address}")
            print(f"  logs:   pinnacle-ray jobs logs {sid} --follow --address {address}")
        return EXIT_OK
    if not args.json:
        print(f"submitted {sid} to {address}", flush=True)
    client = connect_client(address)
    return _finish_job(args, client, sid, spec_store=spec.run.store)


def _finish_job(args: argparse.Namespace, client: Any, sid: str, spec_store: str | None) -> int:
    """Wait for (or follow) a job, then report its reconciled record; exit with its status."""
    from .jobs.tracking import EXIT_CODES, follow_logs, wait_for

    if args.follow:
        out = sys.stderr if args.json else sys.stdout
        for chunk in follow_logs(client, sid):
            out.write(chunk)
            out.flush()
        status = wait_for(client, sid)
    else:
        status = wait_for(
            client,
            sid,
            on_status=None if args.json else lambda s: print(f"  {sid}: {s}", flush=True),
        )
    record = _job_record(args, sid, client, store_url=spec_store)
    _print_record(args, record)
    return EXIT_CODES.get(status, EXIT_ERROR)


def _job_record(
    args: argparse.Namespace, sid: str, client: Any, store_url: str | None = None
) -> Any:
    """The job's record from the datastore (reconciled with Ray), or Ray's view alone."""
    from .errors import JobNotFound
    from .jobs import JobRecords
    from .jobs.tracking import ray_record, reconcile

    url = store_url or _store_url(args, required=False)
    if url is not None:
        import pinnacle_ray as pr

        records = JobRecords(pr.connect(url))
        record = records.find(sid)
        if record is not None:
            return reconcile(records, record, client) if client is not None else record
    if client is not None:
        record = ray_record(client, sid)
        if record is not None:
            return record
    where = f"in {url} " if url else ""
    where += f"or on the Ray cluster at {client._address}" if client is not None else ""
    raise JobNotFound(f"no job {sid!r} {where}".rstrip() + "; see `pinnacle-ray jobs list`")


def _print_record(args: argparse.Namespace, record: Any) -> None:
    if args.json:
        _emit_json(record.to_dict())
        return
    produced = (
        f"model {record.model_name} version {record.model_version}" if record.model_version else ""
    )
    print(f"{record.submission_id}: {record.status}" + (f" ({produced})" if produced else ""))
    for key, value in (
        ("name", record.name),
        ("spec", record.source),
        ("address", record.address),
        ("entrypoint", record.entrypoint),
        ("submitted", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("ended", _when(record.ended_at)),
        ("metrics", _metrics_text(record.metrics or {}, 6)),
        ("error", record.error),
    ):
        if value:
            print(f"  {key:10} {value}")


def _client_for(args: argparse.Namespace, record_address: str | None = None) -> Any:
    from .jobs.tracking import connect_client

    address = args.address or os.environ.get("RAY_ADDRESS") or record_address
    if not address:
        return None
    return connect_client(address)


def _cmd_jobs_status(args: argparse.Namespace) -> int:
    client = _client_for(args, _recorded_address(args, args.id))
    if client is None and _store_url(args, required=False) is None:
        raise ConfigError("pass --address (or set RAY_ADDRESS) and/or --store / --spec")
    _print_record(args, _job_record(args, args.id, client))
    return EXIT_OK


def _recorded_address(args: argparse.Namespace, sid: str) -> str | None:
    url = _store_url(args, required=False)
    if url is None:
        return None
    import pinnacle_ray as pr

    from .jobs import JobRecords

    record = JobRecords(pr.connect(url)).find(sid)
    return record.address if record is not None else None


def _cmd_jobs_list(args: argparse.Namespace) -> int:
    from .jobs import JobRecords
    from .jobs.tracking import ray_record, reconcile

    url = _store_url(args, required=False)
    records_table = None
    if url is not None:
        import pinnacle_ray as pr

        records_table = JobRecords(pr.connect(url))
        records = records_table.list(args.name)
    else:
        client = _client_for(args)
        if client is None:
            raise ConfigError("pass --store / --spec (job records) or --address (Ray's jobs)")
        records = [
            ray_record(client, j.submission_id) for j in client.list_jobs() if j.submission_id
        ]
        records = [r for r in records if r is not None]
    clients: dict[str, Any] = {}
    shown, unverified = [], set()
    for record in records:
        address = args.address or os.environ.get("RAY_ADDRESS") or record.address
        if record.active and records_table is not None:
            if address and address not in clients:
                try:
                    clients[address] = _client_for(args, address)
                except PinnacleError:
                    clients[address] = None  # unreachable: shown as recorded
            if address and clients[address] is not None:
                record = reconcile(records_table, record, clients[address])
            else:
                unverified.add(record.submission_id)
        shown.append(record)
    if args.json:
        _emit_json([{**r.to_dict(), "verified": r.submission_id not in unverified} for r in shown])
        return EXIT_OK
    if not shown:
        print("no jobs recorded" + (f" in {url}" if url else ""))
        return EXIT_OK
    rows = [
        (
            r.submission_id,
            r.name,
            r.status
            + (" (unverified: cluster unreachable)" if r.submission_id in unverified else ""),
            r.model_version or "",
            _when(r.created_at or r.started_at),
            _when(r.ended_at),
            (r.error or "")[:60],
        )
        for r in shown
    ]
    print(_table(rows, ["id", "name", "status", "version", "submitted (UTC)", "ended", "error"]))
    return EXIT_OK


def _cmd_jobs_logs(args: argparse.Namespace) -> int:
    from .jobs.tracking import EXIT_CODES, TERMINAL, job_logs

    client = _client_for(args, _recorded_address(args, args.id))
    if client is None:
        raise ConfigError("pass --address http://<head>:8265 (or set RAY_ADDRESS)")
    if not args.follow:
        sys.stdout.write(job_logs(client, args.id))
        return EXIT_OK
    record = _job_record(args, args.id, client)
    if record.status in TERMINAL:
        sys.stdout.write(job_logs(client, args.id))
        sys.stdout.flush()
        print(f"{args.id}: {record.status}", file=sys.stderr)
        return EXIT_CODES.get(record.status, EXIT_ERROR)
    args.json = False
    return _finish_job(args, client, args.id, spec_store=None)


def _cmd_jobs_stop(args: argparse.Namespace) -> int:
    from .jobs.tracking import stop_job

    client = _client_for(args, _recorded_address(args, args.id))
    if client is None:
        raise ConfigError("pass --address http://<head>:8265 (or set RAY_ADDRESS)")
    stop_job(client, args.id)
    record = _job_record(args, args.id, client)
    _print_record(args, record)
    return EXIT_OK


# -- quickstart ------------------------------------------------------------------------------------
def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .jobs.quickstart import write_quickstart

    spec_path, rows = write_quickstart(Path(args.dir), epochs=args.epochs)
    if not args.json:
        print(f"wrote {rows} rows into table 'patients' and the spec {spec_path}")
    args.spec, args.no_progress = str(spec_path), False
    code = _cmd_train(args)
    if not args.json:
        db = Path(args.dir).resolve() / "quickstart.db"
        print(
            "\nnext:\n"
            f"  pinnacle-ray models list --store sqlite:///{db}\n"
            f"  pinnacle-ray submit {spec_path} --address http://127.0.0.1:8265 --follow"
            "   # on a Ray cluster"
        )
    return code


# -- parser ----------------------------------------------------------------------------
def _command(
    sub: Any, name: str, summary: str, example: str, parents: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``pinnacle-ray`` argument parser (every command has ``--help`` with an example)."""
    parser = argparse.ArgumentParser(
        prog="pinnacle-ray",
        description="Train models on Ray directly on the data in your database.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pinnacle-ray {__version__}")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", help=f"datastore URL (default: ${STORE_ENV})")
    store.add_argument("--spec", help="take the datastore URL from this spec")
    ray_addr = argparse.ArgumentParser(add_help=False)
    ray_addr.add_argument(
        "--address", help="Ray job server, e.g. http://127.0.0.1:8265 (default: $RAY_ADDRESS)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(sub, "train", "train the model a spec describes (registered in its store)",
                 "pinnacle-ray train examples/specs/xgboost.yaml", [out])  # fmt: skip
    p.add_argument("spec", help="the run spec (YAML)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_train)

    p = _command(sub, "sweep", "run the spec's tune: sweep with Ray Tune; register the best",
                 "pinnacle-ray sweep examples/specs/xgboost.yaml", [out])  # fmt: skip
    p.add_argument("spec", help="the run spec (YAML) with a tune: section")
    p.set_defaults(func=_cmd_sweep)

    p = _command(sub, "predict", "write a registered model's predictions on a query to a table",
                 "pinnacle-ray predict house-price --store sqlite:///shop.db --table houses "
                 "--output price_predictions", [out, store])  # fmt: skip
    p.add_argument("model", nargs="?", help="registered model name (default: the spec's)")
    p.add_argument("--table", help="predict on this table")
    p.add_argument("--sql", "--query", dest="sql", help="predict on this SELECT")
    p.add_argument("--key", help="the query's key column (shards the read)")
    p.add_argument("--output", help="table to write the predictions to")
    p.add_argument("--version", type=int)
    p.add_argument("--handle", help="checkpoint handle, e.g. best")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--columns", help="comma-separated input columns to keep in the output")
    p.set_defaults(func=_cmd_predict)

    models = _command(sub, "models", "list, show or remove registered models",
                      "pinnacle-ray models list --store sqlite:///shop.db", [])  # fmt: skip
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = _command(msub, "list", "registered versions, newest first",
                 "pinnacle-ray models list --store sqlite:///shop.db", [out, store])  # fmt: skip
    p.add_argument("name", nargs="?", help="only this model")
    p.set_defaults(func=_cmd_models_list)
    p = _command(msub, "show", "one version: metrics, config, lineage, files",
                 "pinnacle-ray models show house-price --version 2 --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--version", type=int, help="default: the latest")
    p.set_defaults(func=_cmd_models_show)
    p = _command(msub, "rm", "remove a version (or every version) and its files",
                 "pinnacle-ray models rm house-price --version 1 --yes --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--version", type=int, help="default: every version")
    p.add_argument("--yes", action="store_true", help="confirm the removal")
    p.set_defaults(func=_cmd_models_rm)

    p = _command(sub, "submit", "run a spec as a Ray job (recorded in the spec's store)",
                 "pinnacle-ray submit examples/specs/xgboost.yaml --address "
                 "http://127.0.0.1:8265 --follow", [out, ray_addr])  # fmt: skip
    p.add_argument("spec", help="the run spec (YAML), inside the working dir")
    p.add_argument("--wait", action="store_true", help="wait for the job; exit with its status")
    p.add_argument("--follow", action="store_true", help="stream its logs until it ends")
    p.add_argument("--force", action="store_true", help="submit even if the spec is running")
    p.add_argument("--env", action="append", default=[], metavar="NAME",
                   help="pass this environment variable to the job (repeatable)")  # fmt: skip
    p.add_argument("--working-dir", help="folder shipped to the cluster (default: .)")
    p.add_argument("--pip", nargs="+", help="pip requirements, or a requirements.txt path")
    p.add_argument("--run", choices=["train", "sweep", "predict"], default="train",
                   help="what the job runs from the spec (default: train)")  # fmt: skip
    p.set_defaults(func=_cmd_submit)

    jobs = _command(sub, "jobs", "list jobs, show status and logs, stop a job",
                    "pinnacle-ray jobs list --spec examples/specs/xgboost.yaml", [])  # fmt: skip
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = _command(jsub, "list", "recorded jobs, newest first (status checked with Ray)",
                 "pinnacle-ray jobs list --store sqlite:///shop.db",
                 [out, store, ray_addr])  # fmt: skip
    p.add_argument("--name", help="only jobs of this model")
    p.set_defaults(func=_cmd_jobs_list)
    p = _command(jsub, "status", "one job: status, model version produced, error",
                 "pinnacle-ray jobs status pr-house-price-1a2b3c4d5e6f --store sqlite:///shop.db",
                 [out, store, ray_addr])  # fmt: skip
    p.add_argument("id", help="the submission id")
    p.set_defaults(func=_cmd_jobs_status)
    p = _command(jsub, "logs", "the job driver's stdout/stderr, from Ray",
                 "pinnacle-ray jobs logs pr-house-price-1a2b3c4d5e6f --follow --address "
                 "http://127.0.0.1:8265", [store, ray_addr])  # fmt: skip
    p.add_argument("id", help="the submission id")
    p.add_argument("--follow", action="store_true",
                   help="stream until the job ends; exit with its status")  # fmt: skip
    p.set_defaults(func=_cmd_jobs_logs, json=False)
    p = _command(jsub, "stop", "stop a running job",
                 "pinnacle-ray jobs stop pr-house-price-1a2b3c4d5e6f --address "
                 "http://127.0.0.1:8265", [out, store, ray_addr])  # fmt: skip
    p.add_argument("id", help="the submission id")
    p.set_defaults(func=_cmd_jobs_stop)

    p = _command(sub, "quickstart", "write a demo table and spec, then train on it locally",
                 "pinnacle-ray quickstart --dir ./pinnacle-quickstart", [out])  # fmt: skip
    p.add_argument("--dir", default="pinnacle-quickstart", help="where to write db and spec")
    p.add_argument("--epochs", type=int, default=30)
    p.set_defaults(func=_cmd_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pinnacle-ray`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        from .jobs import current_submission_id

        # A job's logs keep the whole traceback; at a terminal, one line says it all
        # (PINNACLE_RAY_VERBOSE=1 for the traceback of an unexpected error there too).
        verbose = os.environ.get("PINNACLE_RAY_VERBOSE", "") not in ("", "0")
        if current_submission_id() or verbose or not isinstance(exc, PinnacleError):
            traceback.print_exc(file=sys.stderr)
        text = " ".join(str(exc).split()) or type(exc).__name__
        name = type(exc).__name__
        print(f"error: {text}" if isinstance(exc, PinnacleError) else f"error: {name}: {text}",
              file=sys.stderr)  # fmt: skip
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
