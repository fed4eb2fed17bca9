"""The ``pinnacle-ray`` command line: run specs, models in the registry, and Ray jobs.

Human output by default (tables; progress lines while training), ``--json`` for scripts.
Exit codes scripts can trust:

- 0: done (for a job: it SUCCEEDED, or it was submitted without ``--wait``);
- 1: refused or failed, with a one-line reason on stderr (``error: ...``);
- 2: the command line itself is wrong (argparse);
- 3: the job FAILED; 4: the job was STOPPED (``submit --wait``, ``jobs logs --follow``);
- 130: interrupted (Ctrl-C);
- 141: stdout was closed early (e.g. ``| head``): the command stops quietly, as with SIGPIPE.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from .. import __version__
from .._internal.constants import verbose as env_verbose
from ..errors import PinnacleError
from ._jobs import cmd_jobs_list, cmd_jobs_logs, cmd_jobs_status, cmd_jobs_stop, cmd_submit
from ._models import (
    cmd_models_cleanup,
    cmd_models_list,
    cmd_models_promote,
    cmd_models_rm,
    cmd_models_rollback,
    cmd_models_show,
)
from ._output import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, STORE_ENV
from ._run import cmd_predict, cmd_quickstart, cmd_sweep, cmd_train
from ._sweeps import cmd_sweeps_show

__all__ = ["build_parser", "main"]

EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command ended by SIGPIPE


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
    p.set_defaults(func=cmd_train)

    p = _command(sub, "sweep", "run the spec's tune: sweep with Ray Tune; register the best",
                 "pinnacle-ray sweep examples/specs/xgboost.yaml", [out])  # fmt: skip
    p.add_argument("spec", help="the run spec (YAML) with a tune: section")
    p.set_defaults(func=cmd_sweep)

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
    p.add_argument(
        "--num-gpus", type=float, help="GPUs per prediction actor (0.5: two actors share one)"
    )
    p.add_argument("--columns", help="comma-separated input columns to keep in the output")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load models stored as pickle/joblib/torch.save (can run code)",
    )
    p.set_defaults(func=cmd_predict)

    models = _command(sub, "models", "list, show, remove, promote, roll back or clean up models",
                      "pinnacle-ray models list --store sqlite:///shop.db", [])  # fmt: skip
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = _command(msub, "list", "registered versions, newest first",
                 "pinnacle-ray models list --store sqlite:///shop.db", [out, store])  # fmt: skip
    p.add_argument("name", nargs="?", help="only this model")
    p.set_defaults(func=cmd_models_list)
    p = _command(msub, "show", "one version's model card: metrics, data, how to use it; "
                 "--plot draws its metric curves",
                 "pinnacle-ray models show house-price --version 2 --plot curves.png "
                 "--store sqlite:///shop.db", [out, store])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--version", type=int, help="default: the latest")
    p.add_argument("--plot", metavar="PNG", help="draw the train/valid curves into this PNG")
    p.set_defaults(func=cmd_models_show)
    p = _command(msub, "rm", "remove a version (or every version) and its files",
                 "pinnacle-ray models rm house-price --version 1 --yes --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--version", type=int, help="default: every version")
    p.add_argument("--yes", action="store_true", help="confirm the removal")
    p.set_defaults(func=cmd_models_rm)
    p = _command(msub, "promote", "point a handle (default: production) at a version",
                 "pinnacle-ray models promote house-price --version 3 --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--version", type=int, help="default: the latest")
    p.add_argument("--handle", default="production", help="default: production")
    p.set_defaults(func=cmd_models_promote)
    p = _command(msub, "rollback", "point a handle back at the version it had before",
                 "pinnacle-ray models rollback house-price --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--handle", default="production", help="default: production")
    p.set_defaults(func=cmd_models_rollback)
    p = _command(msub, "cleanup", "remove what killed registrations left (pending versions, "
                 "orphan artifact folders)",
                 "pinnacle-ray models cleanup --older-than 3600 --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("--older-than", type=float, default=3600.0, metavar="SECONDS",
                   help="only what is older than this (default: 3600; keep it above the "
                   "longest registration)")  # fmt: skip
    p.set_defaults(func=cmd_models_cleanup)

    sweeps = _command(sub, "sweeps", "show recorded sweeps and plot them",
                      "pinnacle-ray sweeps show house-sweep --store sqlite:///shop.db",
                      [])  # fmt: skip
    ssub = sweeps.add_subparsers(dest="sweeps_command", metavar="ACTION", required=True)
    p = _command(ssub, "show", "a sweep's trials, best first; --plot draws the metric "
                 "against each swept parameter",
                 "pinnacle-ray sweeps show house-sweep --plot sweep.png --store sqlite:///shop.db",
                 [out, store])  # fmt: skip
    p.add_argument("name", help="the sweep's name (pr.sweep(..., name=...))")
    p.add_argument("--plot", metavar="PNG", help="draw the metric against each parameter")
    p.set_defaults(func=cmd_sweeps_show)

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
    p.set_defaults(func=cmd_submit)

    jobs = _command(sub, "jobs", "list jobs, show status and logs, stop a job",
                    "pinnacle-ray jobs list --spec examples/specs/xgboost.yaml", [])  # fmt: skip
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = _command(jsub, "list", "recorded jobs, newest first (status checked with Ray)",
                 "pinnacle-ray jobs list --store sqlite:///shop.db",
                 [out, store, ray_addr])  # fmt: skip
    p.add_argument("--name", help="only jobs of this model")
    p.set_defaults(func=cmd_jobs_list)
    p = _command(jsub, "status", "one job: status, model version produced, error",
                 "pinnacle-ray jobs status pr-house-price-1a2b3c4d5e6f --store sqlite:///shop.db",
                 [out, store, ray_addr])  # fmt: skip
    p.add_argument("id", help="the submission id")
    p.set_defaults(func=cmd_jobs_status)
    p = _command(jsub, "logs", "the job driver's stdout/stderr, from Ray",
                 "pinnacle-ray jobs logs pr-house-price-1a2b3c4d5e6f --follow --address "
                 "http://127.0.0.1:8265", [store, ray_addr])  # fmt: skip
    p.add_argument("id", help="the submission id")
    p.add_argument("--follow", action="store_true",
                   help="stream until the job ends; exit with its status")  # fmt: skip
    p.set_defaults(func=cmd_jobs_logs, json=False)
    p = _command(jsub, "stop", "stop a running job",
                 "pinnacle-ray jobs stop pr-house-price-1a2b3c4d5e6f --address "
                 "http://127.0.0.1:8265", [out, store, ray_addr])  # fmt: skip
    p.add_argument("id", help="the submission id")
    p.set_defaults(func=cmd_jobs_stop)

    p = _command(sub, "quickstart", "write a demo table and spec, then train on it locally",
                 "pinnacle-ray quickstart --dir ./pinnacle-quickstart", [out])  # fmt: skip
    p.add_argument("--dir", default="pinnacle-quickstart", help="where to write db and spec")
    p.add_argument("--epochs", type=int, default=30)
    p.set_defaults(func=cmd_quickstart)
    return parser


def _check_names(args: argparse.Namespace) -> None:
    """Refuse a bad model name, handle or job id before any command connects to anything:
    the same rule and message as the Python API (``pinnacle_ray._internal.names``)."""
    from .._internal.names import MAX_HANDLE_CHARS, validate_name

    for field in ("name", "model"):
        if getattr(args, field, None) is not None:
            validate_name(getattr(args, field), "model name")
    if getattr(args, "handle", None) is not None:
        validate_name(args.handle, "checkpoint handle", MAX_HANDLE_CHARS)
    if getattr(args, "id", None) is not None:
        validate_name(args.id, "job id", ascii_only=True)


def _silence_stdout() -> None:
    """Point stdout at the null device once its reader has gone, so the interpreter's own
    flush at exit does not fail again with a traceback (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a file descriptor (tests' capture)
        pass


def _flush_quietly() -> None:
    """Flush stdout, silencing it if its reader has gone (before argparse's exit)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pinnacle-ray`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # --help, --version and usage errors print here
        if not hasattr(args, "func"):
            parser.print_help()
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except SystemExit:
        _flush_quietly()
        raise
    if not hasattr(args, "func"):
        return EXIT_OK
    try:
        from ..jobs.secrets import load_job_secrets

        # In a submitted job's driver: what `pinnacle-ray submit` kept out of Ray's job view.
        load_job_secrets()
        _check_names(args)
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away (| head) shows here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        from ..jobs import current_submission_id

        # A job's logs keep the whole traceback; at a terminal, one line says it all
        # (PINNACLE_RAY_VERBOSE=1 for the traceback of an unexpected error there too).
        verbose = env_verbose()
        if current_submission_id() or verbose or not isinstance(exc, PinnacleError):
            traceback.print_exc(file=sys.stderr)
        text = " ".join(str(exc).split()) or type(exc).__name__
        name = type(exc).__name__
        print(f"error: {text}" if isinstance(exc, PinnacleError) else f"error: {name}: {text}",
              file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
