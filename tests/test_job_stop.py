"""A job that Ray stops (SIGTERM to its driver) is recorded STOPPED, not FAILED, wherever
the signal finds the driver: in its own Python code, or blocked inside a Ray call (where
Ray turns the interrupted wait into an exception of its own)."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest
import ray

import pinnacle_ray as pr
from pinnacle_ray.jobs import JobRecords, runner


@ray.remote(num_cpus=0)
def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _wait_in_python() -> None:
    time.sleep(60)


def _wait_in_ray_get() -> None:
    # Ray runs the handler only once the wait ends, inside its own code, which turns the
    # handler's exception into a SystemError (seen with Ray 2.60).
    ray.get(_sleep.remote(4))
    time.sleep(60)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("wait", [_wait_in_python, _wait_in_ray_get], ids=["python", "ray.get"])
def test_sigterm_records_the_job_stopped_and_exits_143(tmp_path, monkeypatch, wait):
    store = pr.connect(tmp_path / "jobs.db")
    monkeypatch.setattr(runner, "current_submission_id", lambda: "pr-stop-1")
    spec = SimpleNamespace(
        run=SimpleNamespace(name="slow"), digest="d", masked={}, source="slow.yaml", env_names=[]
    )
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(SystemExit) as exited, runner._recorded(spec, store):
            wait()
    finally:
        timer.cancel()
    record = JobRecords(store).get("pr-stop-1")
    assert exited.value.code == 143
    assert (record.status, record.error) == ("STOPPED", runner._STOPPED)
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back
