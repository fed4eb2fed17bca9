"""Submit a spec as a Ray job with Ray's ``JobSubmissionClient``, recorded in the datastore.

The job runs ``pinnacle-ray train SPEC`` on the cluster with a ``runtime_env`` holding the
working directory, optional pip requirements and only the environment variables that are
named (the ones the spec uses as ``${NAME}`` and those passed with ``--env``): nothing else
from the submitting shell reaches the cluster. Of those, a secret one (a password in a URL
such as ``${PINNACLE_RAY_STORE}``, a secret-named variable) is never in ``env_vars``, which Ray
displays: it travels in a file read and deleted by the job's driver (``jobs/secrets.py``).

The submission id comes from the spec's content (``pr-<name>-<digest>``, then ``-2``,
``-3`` for later runs of the same spec), so a second submission while one runs is refused
(``DuplicateJob``) unless forced; Ray itself refuses an id it already has, which settles
two submitters racing for the same one. The job is Ray's: it runs on after the submitting
process exits.

Example::

    spec = load_spec("examples/specs/xgboost.yaml")
    record = submit_spec(spec, "http://127.0.0.1:8265")
    record.submission_id                          # e.g. 'pr-tumour-xgb-3f2a9c0d1b7e'
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._internal.names import ascii_label
from ..errors import ConfigError, DuplicateJob, JobError, SpecError
from .build import connect_store
from .records import JobRecord, JobRecords
from .secrets import (
    SECRETS_ENV,
    is_secret,
    package_name,
    secrets_package,
    with_removal_hook,
)
from .spec import LoadedSpec
from .tracking import _first_line, connect_client, reconcile

__all__ = ["DEFAULT_EXCLUDES", "build_runtime_env", "secret_env", "submit_spec"]

# Never shipped in the working dir: environments, VCS data, caches, databases and models.
DEFAULT_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
    "*.db",
    "*.db-journal",
    "*.db-wal",
    "*.artifacts",
]


def build_runtime_env(
    spec: LoadedSpec,
    working_dir: str | os.PathLike[str] | None = None,
    env_names: list[str] | tuple[str, ...] = (),
    pip: list[str] | str | None = None,
) -> dict[str, Any]:
    """Ray's ``runtime_env`` for the spec's job (see the module docstring for what goes)."""
    section = spec.run.runtime_env
    folder = Path(working_dir or (section.working_dir if section else None) or os.getcwd())
    if not folder.is_dir():
        raise ConfigError(f"working dir {str(folder)!r} is not a folder")
    runtime_env: dict[str, Any] = {
        "working_dir": str(folder.resolve()),
        "excludes": DEFAULT_EXCLUDES + list(section.excludes if section else []),
    }
    requirements = pip if pip is not None else (section.pip if section else None)
    if requirements:
        if not isinstance(requirements, str) and len(requirements) == 1:
            only = requirements[0]
            requirements = only if only.endswith(".txt") else requirements
        if isinstance(requirements, str):
            path = Path(requirements)
            if not path.is_file():
                raise ConfigError(f"pip requirements file {requirements!r} does not exist")
            requirements = [
                line.strip()
                for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
        runtime_env["pip"] = list(requirements)
    # Secret values travel apart (secret_env), never in env_vars: Ray displays those.
    env_vars = {k: v for k, v in _env_values(spec, env_names).items() if not is_secret(k, v)}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return runtime_env


def secret_env(spec: LoadedSpec, env_names: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The variables passed to the job whose values are secret (see ``jobs/secrets.py``):
    shipped in a file Ray does not display, read and deleted by the job's driver."""
    return {k: v for k, v in _env_values(spec, env_names).items() if is_secret(k, v)}


def _env_values(spec: LoadedSpec, env_names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The values of the variables the job gets: the spec's ``${NAME}``s, the spec's
    ``runtime_env.env`` and ``env_names``, as set here."""
    section = spec.run.runtime_env
    names = list(dict.fromkeys([*spec.env_names, *(section.env if section else []), *env_names]))
    values = {}
    for name in names:
        if name in os.environ:
            values[name] = os.environ[name]
        elif name not in spec.env_names:  # spec variables may have a ${NAME:-default}
            raise ConfigError(
                f"environment variable {name} is to be passed to the job but is not set here; "
                f"export {name}=... or drop it from --env"
            )
    return values


def submit_spec(
    spec: LoadedSpec,
    address: str,
    *,
    force: bool = False,
    working_dir: str | os.PathLike[str] | None = None,
    env_names: list[str] | tuple[str, ...] = (),
    pip: list[str] | str | None = None,
    command: str = "train",
) -> JobRecord:
    """Submit ``spec`` to the Ray cluster at ``address`` to run ``pinnacle-ray <command>``
    (train, sweep or predict) on it; its PENDING job record."""
    runtime_env = build_runtime_env(spec, working_dir, env_names, pip)
    secrets = secret_env(spec, env_names)
    entrypoint = _entrypoint(spec, Path(runtime_env["working_dir"]), command)
    client = connect_client(address)
    store = connect_store(spec.run)
    records = JobRecords(store)
    kind = "" if command == "train" else f"{command}-"
    base = f"pr-{kind}{ascii_label(spec.run.name)}-{spec.digest[:12]}"  # Ray ids are ASCII
    # This command's earlier runs of the spec, and runs by plain `ray job submit`
    taken = {
        r.submission_id: r
        for r in records.list(digest=spec.digest)
        if r.submission_id.startswith(base) or not r.submission_id.startswith("pr-")
    }
    for job in _ray_jobs_with_prefix(client, base):
        taken.setdefault(job.submission_id, None)
    for submission_id, record in taken.items():
        if record is not None:
            record = reconcile(records, record, client)
            status = record.status
        else:
            status = _ray_status(client, submission_id)
        if status in ("PENDING", "RUNNING") and not force:
            raise DuplicateJob(
                f"{spec.source} is already running as job {submission_id} ({status}); wait "
                f"for it (pinnacle-ray jobs status {submission_id}), stop it (pinnacle-ray "
                "jobs stop ...), or submit again with --force to run it twice"
            )
    submission_id = base
    n = 1
    while submission_id in taken:
        n += 1
        submission_id = f"{base}-{n}"
    record = records.create(
        JobRecord(
            submission_id=submission_id,
            name=spec.run.name,
            status="PENDING",
            spec_digest=spec.digest,
            spec=spec.masked,
            source=spec.source,
            entrypoint=entrypoint,
            address=address,
        )
    )
    try:
        with _with_secrets(runtime_env, secrets) as shipped:
            client.submit_job(
                entrypoint=entrypoint,
                submission_id=submission_id,
                runtime_env=shipped,
                metadata={"pinnacle_name": spec.run.name, "pinnacle_spec_digest": spec.digest},
            )
    except Exception as exc:
        records.delete(submission_id)  # nothing half-written: Ray has no such job
        if "already exists" in str(exc):
            raise DuplicateJob(
                f"job {submission_id} was just submitted by someone else; see pinnacle-ray "
                f"jobs status {submission_id}"
            ) from None
        raise JobError(f"Ray refused job {submission_id}: {_first_line(exc)}") from None
    return record


COMMANDS = ("train", "sweep", "predict")


@contextlib.contextmanager
def _with_secrets(runtime_env: dict[str, Any], secrets: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``runtime_env`` plus, when there are secrets, the package that carries them (uploaded
    by ``submit_job``, deleted here after) and its name for the job's driver."""
    if not secrets:
        yield runtime_env
        return
    with secrets_package(secrets) as folder:
        # Every node that starts a worker for the job unpacks the package: the hook removes
        # the file there (the driver's node: once the driver has read it).
        shipped = with_removal_hook(runtime_env, **{SECRETS_ENV: package_name(folder)})
        shipped["py_modules"] = [*runtime_env.get("py_modules", []), folder]
        yield shipped


def _entrypoint(spec: LoadedSpec, working_dir: Path, command: str = "train") -> str:
    path = Path(spec.source).resolve()
    try:
        relative = path.relative_to(working_dir)
    except ValueError:
        raise SpecError(
            f"spec {spec.source!r} is outside the working dir {str(working_dir)!r} that is "
            "shipped to the cluster; move it there or pass --working-dir"
        ) from None
    if command not in COMMANDS:
        raise ConfigError(f"a job runs one of {', '.join(COMMANDS)}, not {command!r}")
    path_arg = shlex.quote(relative.as_posix())
    return f"pinnacle-ray {command} {'--spec ' if command == 'predict' else ''}{path_arg}"


def _ray_jobs_with_prefix(client: Any, prefix: str) -> list[Any]:
    try:
        jobs = client.list_jobs()
    except Exception as exc:
        raise JobError(f"cannot list the cluster's jobs: {_first_line(exc)}") from None
    return [j for j in jobs if (j.submission_id or "").startswith(prefix)]


def _ray_status(client: Any, submission_id: str) -> str:
    status = client.get_job_status(submission_id)
    return str(getattr(status, "value", status))
