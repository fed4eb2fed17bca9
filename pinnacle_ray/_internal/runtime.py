"""Start or join Ray on demand, quietly, and report what the cluster has."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from .constants import PYTHONWARNINGS_ENV, RAY_WORKERS_SOFT_LIMIT_ENV, ray_address
from .constants import verbose as env_verbose
from .quiet_logging import worker_env

__all__ = [
    "cluster_cpus",
    "cluster_gpus",
    "ensure_ray",
    "keep_idle_workers",
    "planned_execution",
    "quiet_execution",
    "wait_for_cpus",
]

logger = logging.getLogger("pinnacle_ray.runtime")

# Ray Data logs every execution plan at INFO; users see Ray's progress bars instead.
_NOISY_LOGGERS = ("ray.data", "ray.train", "ray.tune", "ray.air")


def ensure_ray() -> None:
    """Join the Ray cluster in ``RAY_ADDRESS`` (or one already initialised), else start one.

    When this call starts Ray (or connects to ``RAY_ADDRESS``), the console shows only
    warnings (Ray's, Ray Data's in the workers of a local instance too), so a script's
    output stays readable; Ray's log files keep everything. Set ``PINNACLE_RAY_VERBOSE=1``
    to keep Ray's INFO logging. When you started Ray yourself, your ``ray.*`` loggers are
    left as you set them.
    """
    if ray.is_initialized():
        return
    verbose = env_verbose()
    if not verbose:
        for name in _NOISY_LOGGERS:
            log = logging.getLogger(name)
            if log.level == logging.NOTSET or log.level < logging.WARNING:
                log.setLevel(logging.WARNING)
        # "Progress bars disabled": we turn them off for training datasets on purpose.
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    dataset_log = logging.getLogger("ray.data.dataset")
    if not any(isinstance(f, _NoCpuFalseAlarm) for f in dataset_log.filters):
        dataset_log.addFilter(_NoCpuFalseAlarm())
    address = ray_address() or None
    kwargs: dict = {
        "address": address,
        "logging_level": logging.INFO if verbose else logging.WARNING,
        "log_to_driver": True,
    }
    raylet_env: dict[str, str] = {}
    if address is None:
        # The dashboard serves Ray's State API, which Ray Train's placement-group cleaner
        # polls; without it that actor logs a warning every few seconds.
        kwargs["include_dashboard"] = True
        # A local instance we start keeps Ray's token auth; its banner is noise here.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        if RAY_WORKERS_SOFT_LIMIT_ENV not in os.environ:
            raylet_env[RAY_WORKERS_SOFT_LIMIT_ENV] = _idle_worker_limit()
        if not verbose:
            raylet_env.update(_joined(worker_env()))
    logger.info("starting Ray (address=%s)", address or "local")
    with _raylet_environment(raylet_env):
        ray.init(**kwargs)
    wait_for_cpus()


@contextmanager
def _raylet_environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment only while ``ray.init`` starts a local
    instance: its raylet reads them (the soft limit) and hands them to every worker process
    it starts (Ray Data's logging config, the warnings filter). Given as a job
    ``runtime_env`` instead, each of those would make every worker start through Ray's
    ``setup_worker.py`` (one more Python process importing Ray, per worker) and wait for
    the runtime-env agent: measured on 2 CPUs, part of why the first read of a fresh
    process took seconds. The user's environment is given back as it was."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _joined(env: dict[str, str]) -> dict[str, str]:
    """``env`` with PYTHONWARNINGS after the user's own filters (the last one given wins
    for the messages it matches, so ours hides only Ray's own notice)."""
    own = os.environ.get(PYTHONWARNINGS_ENV)
    if own and env.get(PYTHONWARNINGS_ENV):
        return {**env, PYTHONWARNINGS_ENV: f"{own},{env[PYTHONWARNINGS_ENV]}"}
    return env


def _idle_worker_limit() -> str:
    return str(3 * (os.cpu_count() or 1))


def keep_idle_workers() -> bool:
    """Let a Ray instance started after this keep more idle worker processes alive.

    Ray kills idle workers beyond one per CPU within a second. A fit alternates read tasks
    (one worker each) with a training task or actors of another shape, so on a small
    machine every read and every fit started fresh processes, each importing Ray, Arrow
    and the framework again: measured on 2 CPUs, a 1M-row read 3-4 s instead of 1.0-1.4 s.
    Applies only to instances started from this process; a value you set is kept. Returns
    whether it set the variable. (``ensure_ray`` sets it by itself, only while Ray starts;
    this is for a caller that starts Ray on its own, e.g. the tests and benchmarks.)
    """
    if RAY_WORKERS_SOFT_LIMIT_ENV in os.environ:
        return False
    os.environ[RAY_WORKERS_SOFT_LIMIT_ENV] = _idle_worker_limit()
    return True


def wait_for_cpus(timeout_s: float = 10.0) -> None:
    """Return once the cluster reports available CPUs (a fresh node takes a moment).

    Ray Data warns that a dataset "will hang" when it starts before the node's CPUs are
    reported; waiting here keeps that false alarm out of a user's first run.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU"):
            return
        time.sleep(0.05)


def cluster_cpus() -> int:
    """CPUs in the cluster (at least 1), starting Ray if needed."""
    ensure_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> float:
    """GPUs in the cluster, starting Ray if needed."""
    ensure_ray()
    return float(ray.cluster_resources().get("GPU", 0.0))


class _NoCpuFalseAlarm(logging.Filter):
    """Drops Ray Data's "no available CPUs, the Dataset job will hang" warning when it is
    a false alarm: Ray Data looks at one instant, and ``materialize()`` looks again right
    after its own read tasks finish, before their CPUs are given back (seen in one of two
    quickstart runs on 2 CPUs). The warning stays when no CPU frees up within a second."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "does not have any available CPUs" not in record.getMessage():
            return True
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if ray.is_initialized() and ray.available_resources().get("CPU"):
                return False
            time.sleep(0.05)
        return True


@contextmanager
def planned_execution() -> Iterator[None]:
    """Run a Ray Data execution whose resources pinnacle_ray planned, without Ray Data's
    "no available CPUs, the job will hang" heuristic: it checks the instant the execution
    starts, when the CPUs of tasks that just finished are not yet given back."""
    wait_for_cpus()
    with quiet_execution():
        yield


@contextmanager
def quiet_execution() -> Iterator[None]:
    """Without Ray Data's "no available CPUs, the job will hang" warning, and without
    waiting for a CPU: for handing on a dataset read already (its blocks are in the object
    store; a sweep's trials fill every CPU while they do it)."""
    log = logging.getLogger("ray.data.dataset")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
