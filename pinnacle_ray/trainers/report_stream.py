"""Every ``ray.train.report`` of a run, delivered to the driver while the run goes on.

Ray Train calls a ``UserCallback`` in its controller actor, not in the process that called
``fit``. :class:`ReportStream` gives the run such a callback; it forwards each report to a
small mailbox actor (``num_cpus=0``: it never takes a CPU the workers need), and a thread of
the driver drains the mailbox and hands each :class:`Report` to the subscribers, in order.
Nothing is printed by the controller, so no Ray log line reaches the console.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.train import RunConfig
from ray.train.v2.api.callback import UserCallback

from .._internal.runtime import ensure_ray
from .mailbox import Mailbox

__all__ = ["Phase", "Report", "ReportStream"]

logger = logging.getLogger("pinnacle_ray.trainers")

Subscriber = Callable[["Report"], None]
_REPORT, _PHASE = "report", "phase"  # what a mailbox item is (its first value)


@dataclass(frozen=True)
class Report:
    """One ``ray.train.report`` of a run, as worker 0 reported it.

    ``metrics`` are worker 0's metrics as reported; ``step`` and ``epoch`` are read from
    them (``step``, else XGBoost's ``round``; ``epoch``), None when absent; ``time`` is the
    unix time the controller received the report; ``has_checkpoint`` says whether a
    checkpoint came with it.
    """

    metrics: dict[str, Any]
    step: int | None
    epoch: int | None
    time: float
    has_checkpoint: bool

    @classmethod
    def of(cls, metrics: dict[str, Any], has_checkpoint: bool, at: float | None = None) -> Report:
        """A report of ``metrics`` received at ``at`` (now by default)."""
        step = _whole(metrics.get("step"))
        if step is None:
            step = _whole(metrics.get("round"))
        return cls(
            metrics=dict(metrics),
            step=step,
            epoch=_whole(metrics.get("epoch")),
            time=time.time() if at is None else at,
            has_checkpoint=has_checkpoint,
        )


@dataclass(frozen=True)
class Phase:
    """A phase of work (e.g. ``"scoring"``) that started at ``time`` (unix seconds)."""

    name: str
    time: float


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


class _Forward(UserCallback):
    """Runs in Ray Train's controller: sends each report to the mailbox, prints nothing."""

    def __init__(self, mailbox: Any) -> None:
        self._mailbox = mailbox

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        if not metrics:
            return
        # Fire and forget: the controller's event loop must not block on the driver. Plain
        # values only: the mailbox's worker never imports this module.
        self._mailbox.put.remote((_REPORT, dict(metrics[0]), checkpoint is not None, time.time()))


class _Note:
    """Sent into a Ray task (pickled with its mailbox handle): ``note("scoring")`` tells
    the driver that the task's scoring phase started, without waiting for it."""

    def __init__(self, mailbox: Any) -> None:
        self._mailbox = mailbox

    def __call__(self, phase: str) -> None:
        self._mailbox.put.remote((_PHASE, phase, time.time()))


class ReportStream:
    """The reports of one fit, on the driver, as they happen.

    Example::

        stream = ReportStream()
        stream.subscribe(lambda r: print(r.step, r.metrics.get("valid/loss")))
        trainer = ray.train.torch.TorchTrainer(loop, run_config=stream.attach(RunConfig()))
        with stream:
            trainer.fit()
        stream.reports  # every report, in order

    Subscribers are called on a thread of the driver (every ``interval_s``), then once
    more on exit with what is left; one that raises is logged and dropped, never failing
    the fit. Ray must be running before :meth:`callback` or :meth:`attach`.
    """

    def __init__(self, *, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.reports: list[Report] = []
        self._subscribers: list[Subscriber] = []
        self._phase_subscribers: list[Callable[[Phase], None]] = []
        self._mailbox: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one drain at a time: subscribers see reports in order

    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(report)`` for each report, in order, on the driver."""
        self._subscribers.append(fn)

    def subscribe_phases(self, fn: Callable[[Phase], None]) -> None:
        """Call ``fn(phase)`` on the driver for each phase a task announces through
        :meth:`phase_callback`."""
        self._phase_subscribers.append(fn)

    def phase_callback(self) -> Callable[[str], None]:
        """A picklable ``note(phase_name)`` for a Ray task (work outside Ray Train, e.g. a
        scikit-learn fit) to announce its phases to this stream's phase subscribers."""
        return _Note(self._open())

    def callback(self) -> UserCallback:
        """The callback that goes into ``RunConfig(callbacks=[...])`` of the run."""
        return _Forward(self._open())

    def attach(self, run_config: RunConfig) -> RunConfig:
        """``run_config`` with this stream's callback added to its callbacks."""
        callbacks = list(run_config.callbacks or [])
        return dataclasses.replace(run_config, callbacks=[*callbacks, self.callback()])

    def _open(self) -> Any:
        """The mailbox actor, started on first use (on pinnacle_ray's Ray, started if need be)."""
        if self._mailbox is None:
            ensure_ray()
            self._mailbox = Mailbox.remote()
        return self._mailbox

    def __enter__(self) -> ReportStream:
        self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pinnacle-reports", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self._drain()
        except Exception:
            if exc and exc[0] is not None:  # the run's own error matters more
                logger.debug("report stream: last drain failed", exc_info=True)
            else:
                logger.warning("some reports of the run did not reach the driver", exc_info=True)
        finally:
            mailbox, self._mailbox = self._mailbox, None
            if mailbox is not None:
                ray.kill(mailbox)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._drain()
            except Exception:  # a lost mailbox must not kill the fit; exit drains again
                logger.debug("report stream: drain failed", exc_info=True)

    def _drain(self) -> None:
        with self._lock:
            if self._mailbox is None:
                return
            for item in ray.get(self._mailbox.take.remote()):
                if item[0] == _REPORT:
                    _, metrics, has_checkpoint, at = item
                    report = Report.of(metrics, has_checkpoint, at)
                    self.reports.append(report)
                    _deliver(report, self._subscribers)
                else:
                    _deliver(Phase(item[1], item[2]), self._phase_subscribers)


def _deliver(item: Any, subscribers: list[Callable[[Any], None]]) -> None:
    for fn in list(subscribers):
        try:
            fn(item)
        except Exception:
            logger.warning("a report subscriber (%r) failed and was removed", fn, exc_info=True)
            subscribers.remove(fn)
