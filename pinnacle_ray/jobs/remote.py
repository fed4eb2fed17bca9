"""``trainer.submit(...)``: the same fit, started as a Ray job on a cluster, recorded in the
datastore's jobs table; and the entry that runs it there (``python -m pinnacle_ray.jobs.remote``).

How the fit reaches the cluster: the trainer and its queries are pickled *by value*
(cloudpickle, as Ray ships tasks) into one file, the job's only ``working_dir``. Code from
the user's own script (``__main__``) or from a module of their project that is not installed
travels inside the pickle, so ``train_loop_per_worker`` defined in a script just works and
no project folder is uploaded; installed libraries (torch, transformers, pinnacle_ray) are
imported on the cluster, which must have them in compatible versions. A query travels as
what it read (table/SQL, parameters, key) plus its store's URL: the store reconnects by URL
on the cluster, like a Ray Data read task.

What cannot travel is refused here, before anything is submitted or recorded: an object
that does not pickle (a live connection, a lock, an open file; the message names the
argument), a ``ray.data.Dataset`` instead of a query, an in-memory SQLite store, a SQLite
file when the cluster runs on other machines.

Secrets: the store's password is only inside the uploaded pickle (Ray stores it with the
job's package and never shows it), and the job's driver deletes the pickle once it has read
it; on other nodes that unpack the working dir, the job's worker setup hook deletes their
copy (``pinnacle_ray._internal.secrets_hook``). The entrypoint, the job's metadata, its
``runtime_env`` (all shown by Ray's dashboard) and the job record never hold it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .._internal.constants import ray_address
from .._internal.names import ascii_label, validate_name
from .._internal.secrets import mask
from .._internal.secrets_hook import PAYLOAD_ENV
from ..errors import ConfigError, DuplicateJob, JobError, NotShippable
from .build import is_installed
from .handle import Job
from .recording import current_submission_id, mark_finished, recorded
from .records import JobRecord, JobRecords
from .secrets import with_removal_hook
from .tracking import _first_line, connect_client

if TYPE_CHECKING:
    from ..trainers.protocol import Trainer

__all__ = ["PAYLOAD", "main", "run_payload", "submit_fit"]

logger = logging.getLogger("pinnacle_ray.jobs")

PAYLOAD = "pinnacle_fit.pkl"
ENTRYPOINT = f"python -m pinnacle_ray.jobs.remote {PAYLOAD}"


def submit_fit(
    store: Any,
    trainer: Trainer,
    *,
    train: Any,
    valid: Any = None,
    register: bool | str = True,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    **fit_kwargs: Any,
) -> Job:
    """Start ``trainer.fit(train, valid, register=..., **fit_kwargs)`` as a Ray job on the
    cluster at ``address`` (else ``RAY_ADDRESS``, else the local Ray); its :class:`Job`,
    at once. ``register`` may be a model name to register under instead of the trainer's."""
    trainer, name, register_flag = _named(trainer, register)
    _check_queries(train, valid)
    env = _runtime_env(runtime_env)
    target = _address(address)
    _check_reachable_store(store, target)
    payload = _pickled(
        trainer,
        {
            "trainer": trainer,
            "train": train,
            "valid": valid,
            "register": register_flag,
            "fit_kwargs": fit_kwargs,
        },
    )
    client = connect_client(target)
    server = client._address
    records = JobRecords(store)
    submission_id = f"pr-{ascii_label(name)}-{uuid.uuid4().hex[:12]}".lower()  # ASCII for Ray
    record = records.create(
        JobRecord(
            submission_id=submission_id,
            name=name,
            status="PENDING",
            spec={
                "trainer": type(trainer).__name__,
                "train": _lineage(train),
                "valid": _lineage(valid),
                "register": register_flag,
                "fit": sorted(fit_kwargs),
            },
            source="trainer.submit",
            entrypoint=ENTRYPOINT,
            address=mask(server),
        )
    )
    try:
        with tempfile.TemporaryDirectory(prefix="pinnacle-submit-") as folder:
            (Path(folder) / PAYLOAD).write_bytes(payload)
            client.submit_job(
                entrypoint=ENTRYPOINT,
                submission_id=submission_id,
                # Nodes that start the job's workers unpack the working dir too: the hook
                # removes the pickle there.
                runtime_env={
                    **with_removal_hook(env, **{PAYLOAD_ENV: PAYLOAD}),
                    "working_dir": folder,
                },
                metadata={"pinnacle_name": name, "pinnacle_kind": "fit"},
            )
    except Exception as exc:
        records.delete(submission_id)  # nothing half-written: Ray has no such job
        if "already exists" in str(exc):
            raise DuplicateJob(f"Ray already has a job {submission_id}; submit again") from None
        raise JobError(f"Ray refused job {submission_id}: {_first_line(exc)}") from None
    logger.info("submitted %s to %s", submission_id, mask(server))
    job = Job(records, record.submission_id, address)
    job._client = client
    return job


def main(argv: list[str] | None = None) -> int:
    """The job's driver on the cluster: load the payload, fit, record the outcome."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else PAYLOAD)
    from ray import cloudpickle

    try:
        data = path.read_bytes()
    finally:
        # It holds the store's URL with its password: read once, then gone from this
        # node's copy of the job's working dir (Ray keeps that folder after the job).
        path.unlink(missing_ok=True)
    payload = cloudpickle.loads(data)  # the store reconnects by its URL
    result = run_payload(payload)
    print(
        f"pinnacle_ray: {result.name} trained"
        + (f", registered as version {result.version}" if result.version is not None else ""),
        flush=True,
    )
    return 0


def run_payload(payload: dict[str, Any]) -> Any:
    """Fit as the payload says, keeping the job's record in step (RUNNING, then SUCCEEDED
    with the version, FAILED with the error, STOPPED when Ray stops it)."""
    trainer = payload["trainer"]
    train, valid = payload["train"], payload["valid"]

    def fit() -> Any:
        return trainer.fit(train, valid, register=payload["register"], **payload["fit_kwargs"])

    submission_id = current_submission_id()
    if submission_id is None:  # run by hand, e.g. to debug a payload
        return fit()
    records = JobRecords(train.store)

    def new_record(now: dt.datetime) -> JobRecord:  # its record was removed meanwhile
        return JobRecord(submission_id, trainer.name, "RUNNING", started_at=now)

    with recorded(records, submission_id, new_record):
        result = fit()
        mark_finished(
            records,
            submission_id,
            name=result.name,
            version=result.version,
            metrics=dict(result.metrics or {}),
        )
    return result


def _named(trainer: Trainer, register: bool | str) -> tuple[Trainer, str, bool]:
    """The trainer to ship (renamed when ``register`` is a name), its name, and whether the
    run registers."""
    if isinstance(register, bool):
        return trainer, validate_name(trainer.name), register
    if not isinstance(register, str):
        raise ConfigError(
            f"register= must be True, False or a model name, got {register!r} "
            f"({type(register).__name__})"
        )
    name = validate_name(register)
    if name == trainer.name:
        return trainer, name, True
    get_params = getattr(trainer, "get_params", None)
    if not callable(get_params):
        raise ConfigError(
            f"register={name!r}: {type(trainer).__name__} cannot be renamed (it has no "
            "get_params() giving back its arguments); build it with name=... instead"
        )
    return type(trainer)(**{**get_params(), "name": name}), name, True


def _check_queries(train: Any, valid: Any) -> None:
    for role, query in (("train", train), ("valid", valid)):
        if query is None and role == "valid":
            continue
        if not callable(getattr(query, "lineage", None)) or getattr(query, "store", None) is None:
            raise NotShippable(
                f"{role}= must be a datastore query (store.table / store.sql / store.find) to "
                f"submit a fit, got {type(query).__name__}: a query is re-read on the cluster, "
                "a ray.data.Dataset built here cannot travel. Pass the query, or call "
                "trainer.fit(...) here"
            )


def _runtime_env(runtime_env: dict[str, Any] | None) -> dict[str, Any]:
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise ConfigError(
            f"runtime_env= must be a dict as Ray takes it, got {type(runtime_env).__name__}"
        )
    if "working_dir" in runtime_env:
        raise ConfigError(
            "runtime_env= may not set working_dir: the submitted fit's working_dir holds its "
            "pickled trainer. Ship your own code with runtime_env={'py_modules': [folder]} or "
            "define it in your script (it travels by value)"
        )
    return dict(runtime_env)


def _address(address: str | None) -> str:
    """Where to submit: ``address``, else ``RAY_ADDRESS``, else the Ray this process is
    connected to, else ``auto`` (the cluster started on this machine with ``ray start``)."""
    if address:
        return address
    if ray_address():
        return ray_address()
    import ray

    if ray.is_initialized():
        url = ray._private.worker.global_worker.node.address_info.get("webui_url")
        if url:
            return f"http://{url}"
    return "auto"


def _check_reachable_store(store: Any, server: str) -> None:
    """Refuse a store the cluster's driver cannot open."""
    if getattr(store, "backend", None) != "sqlite":
        return
    if getattr(store, "is_memory", False):
        raise NotShippable(
            "the datastore is an in-memory SQLite database, which exists only in this "
            "process; a submitted fit reads its data on the cluster. Use a SQLite file "
            "(pr.connect('shop.db')) or a database server"
        )
    host = urlparse(server if "://" in server else f"http://{server}").hostname or ""
    if server != "auto" and not _this_machine(host):
        raise NotShippable(
            f"the datastore is the SQLite file {store.url!r} on this machine, but the Ray "
            f"cluster at {mask(server)} runs elsewhere and cannot read it. Use a database "
            "server the cluster reaches (postgresql://, mysql://, mongodb://), or submit to "
            "a cluster on this machine"
        )


def _this_machine(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return True
    names = {socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(OSError):
        names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    return host in names


def _pickled(trainer: Trainer, payload: dict[str, Any]) -> bytes:
    """The payload as cloudpickle bytes, the user's own (not installed) modules by value;
    ``NotShippable`` naming the argument that cannot be pickled."""
    from ray import cloudpickle

    with _by_value(_modules_of(trainer)):
        try:
            return cloudpickle.dumps(payload)
        except Exception as exc:
            culprit = _culprit(trainer, payload, cloudpickle)
            raise NotShippable(
                f"cannot send the fit to the cluster: {culprit} does not pickle "
                f"({type(exc).__name__}: {_first_line(exc)}). Everything a submitted fit "
                "uses travels pickled: create connections, clients and open files inside "
                "the function that uses them (e.g. in train_loop_per_worker), or run "
                "trainer.fit(...) here"
            ) from None


def _culprit(trainer: Trainer, payload: dict[str, Any], cloudpickle: Any) -> str:
    for name, value in _params_of(trainer).items():
        try:
            cloudpickle.dumps(value)
        except Exception:
            return f"{type(trainer).__name__}({name}=...)"
    for role in ("train", "valid"):
        try:
            cloudpickle.dumps(payload[role])
        except Exception:
            return f"the {role}= query"
    return f"the {type(trainer).__name__}"


def _params_of(trainer: Trainer) -> dict[str, Any]:
    """The trainer's constructor arguments as given (``get_params()``), what travels."""
    get_params = getattr(trainer, "get_params", None)
    return dict(get_params()) if callable(get_params) else {}


def _modules_of(trainer: Trainer) -> list[Any]:
    """The modules that define the trainer's code arguments (a loop, a model class, an
    estimator) and are not installed: the user's project files, sent by value."""
    found: dict[str, Any] = {}

    def visit(value: Any, depth: int = 0) -> None:
        if depth > 3:
            return
        if isinstance(value, dict):
            for v in value.values():
                visit(v, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v, depth + 1)
        else:
            owner = value if callable(value) and hasattr(value, "__module__") else type(value)
            module = sys.modules.get(getattr(owner, "__module__", "") or "")
            if module is not None and module.__name__ != "__main__" and not is_installed(module):
                found[module.__name__] = module

    visit(_params_of(trainer))
    return list(found.values())


@contextlib.contextmanager
def _by_value(modules: list[Any]) -> Iterator[None]:
    """Pickle these modules' code by value for the block only (no lasting global change)."""
    from ray import cloudpickle

    added = []
    for module in modules:
        try:
            cloudpickle.register_pickle_by_value(module)
            added.append(module)
        except ValueError:  # already registered (e.g. by a spec's import): keep it so
            pass
    try:
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


def _lineage(query: Any) -> dict[str, Any] | None:
    return query.lineage() if query is not None else None


if __name__ == "__main__":
    raise SystemExit(main())
