"""``--ray-runs``: how many Ray Train and Ray Tune runs each test module starts, and their time.

A Ray Train run has seconds of fixed start-up on 2 cores (a controller, a placement-group
cleaner and each worker are fresh processes importing Ray Train and the framework; see
docs/testing.md), so the suite's time follows how many runs it starts more than how many
tests it has. With ``./dev test --ray-runs`` (or ``PYTEST_ADDOPTS=--ray-runs ./dev test`` for
the whole CI run), every ``fit()`` of a Ray Train trainer (``DataParallelTrainer``: our torch,
XGBoost and Hugging Face trainers, and plain Ray Train loops) and every ``Tuner.fit()``
started in the pytest process is counted against the test that was running, a module
fixture's fit against the first test that used it; the terminal summary lists the modules,
most seconds first. Runs started in child processes (submitted jobs, a test's own cluster)
are not seen here: ``--durations`` shows those tests.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["RayRuns", "Run", "by_module", "summary_lines"]

KINDS = ("train", "tune")


@dataclass(frozen=True)
class Run:
    """One run: the test it ran in (its pytest node id), ``train`` or ``tune``, its seconds."""

    nodeid: str
    kind: str
    seconds: float


@dataclass
class ModuleRuns:
    """A module's runs: counts and seconds per kind."""

    module: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def by_module(runs: Iterable[Run]) -> list[ModuleRuns]:
    """The runs summed per test module (the node id's file), most seconds first."""
    modules: dict[str, ModuleRuns] = {}
    for run in runs:
        name = run.nodeid.split("::", 1)[0] or "(outside any test)"
        entry = modules.setdefault(name, ModuleRuns(name))
        entry.counts[run.kind] += 1
        entry.seconds[run.kind] += run.seconds
    return sorted(modules.values(), key=lambda m: (-m.total_seconds, m.module))


def summary_lines(runs: list[Run]) -> list[str]:
    """The terminal summary: a total line, then one line per module."""
    modules = by_module(runs)
    count = {k: sum(m.counts[k] for m in modules) for k in KINDS}
    seconds = sum(m.total_seconds for m in modules)
    lines = [
        f"{count['train']} Ray Train run(s) and {count['tune']} Ray Tune run(s) in this "
        f"process, {seconds:.0f} s in all (runs in child processes are not counted)"
    ]
    if modules:
        width = max(len(m.module) for m in modules)
        lines.append(f"{'module':<{width}}  train  tune  seconds")
        lines += [
            f"{m.module:<{width}}  {m.counts['train']:5d}  {m.counts['tune']:4d}  "
            f"{m.total_seconds:7.1f}"
            for m in modules
        ]
    return lines


class RayRuns:
    """The ``--ray-runs`` plugin: wraps the ``fit`` methods while the session lasts."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self._current = ""
        self._restore: list[Callable[[], None]] = []

    def watch(self, owner: type, method: str, kind: str) -> None:
        """Count every call of ``owner.method`` as a ``kind`` run of the current test."""
        original = owner.__dict__[method]

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            nodeid, started = self._current, time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.runs.append(Run(nodeid, kind, time.perf_counter() - started))

        setattr(owner, method, counted)
        self._restore.append(lambda: setattr(owner, method, original))

    def unwatch(self) -> None:
        """Give every wrapped method back as it was."""
        while self._restore:
            self._restore.pop()()

    def pytest_configure(self, config: pytest.Config) -> None:
        from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
        from ray.tune import Tuner

        self.watch(DataParallelTrainer, "fit", "train")
        self.watch(Tuner, "fit", "tune")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.unwatch()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator:
        self._current = item.nodeid  # setup included: a module fixture's fit counts here
        try:
            return (yield)
        finally:
            self._current = ""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_sep("=", "Ray Train and Ray Tune runs (--ray-runs)")
        for line in summary_lines(self.runs):
            terminalreporter.write_line(line)
