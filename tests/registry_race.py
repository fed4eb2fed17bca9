"""What spawned processes run to register versions of one model at the same moment (used by
tests/test_registry.py and tests/test_load.py). Imports no torch: eight processes start
quickly."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.pool
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_start: Any = None


def init_worker(start: Any) -> None:
    """Pool initializer: import the package now and keep the barrier that starts every task
    at the same moment, so registrations really race."""
    global _start
    _start = start
    import pinnacle_ray  # noqa: F401


@contextmanager
def racing_pool(processes: int) -> Iterator[multiprocessing.pool.Pool]:
    """``processes`` spawned processes (package imported once) whose tasks start together:
    give it exactly ``processes`` tasks at a time."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes)
    with ctx.Pool(processes, initializer=init_worker, initargs=(start,)) as pool:
        yield pool


@dataclass(frozen=True)
class Registered:
    """What one process registered: its versions, how often it had to try again, how long."""

    versions: list[int]
    retries: int
    seconds: float


class _CountRetries(logging.Handler):
    """Counts the registry's "trying again" records (a version taken, a transient lock)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "retry", False):
            self.count += 1


def register_many(url: str, prefix: str, root: str, artifact_dir: str, count: int) -> Registered:
    """Register ``count`` versions of model ``m`` (run in a spawned process)."""
    import pinnacle_ray as pr

    counter = _CountRetries()
    loggers = [logging.getLogger(f"pinnacle_ray.{room}") for room in ("registry", "datastore")]
    for log in loggers:
        log.addHandler(counter)
        log.setLevel(logging.DEBUG)
    if _start is not None:
        _start.wait(timeout=120)
    started = time.perf_counter()
    store = pr.connect(url)
    try:
        registry = pr.ModelRegistry(store, prefix=prefix, artifact_root=root)
        versions = [registry.register("m", "torch", artifact_dir).version for _ in range(count)]
    finally:
        store.close()
        for log in loggers:
            log.removeHandler(counter)
    return Registered(versions, counter.count, round(time.perf_counter() - started, 2))
