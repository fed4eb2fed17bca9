"""``--ray-runs`` (tests/ray_runs.py): runs are counted against the test that started them,
summed per module, and the wrapped methods are given back."""

from __future__ import annotations

import pytest
from ray_runs import RayRuns, Run, by_module, summary_lines


class _Trainer:
    def fit(self, value: int) -> int:
        return value * 2


def test_each_call_is_counted_against_the_test_running_then_the_method_is_given_back():
    plugin = RayRuns()
    original = _Trainer.__dict__["fit"]
    plugin.watch(_Trainer, "fit", "train")
    plugin._current = "tests/test_a.py::test_one"
    assert _Trainer().fit(21) == 42  # the wrapped method still returns what it returned
    plugin._current = "tests/test_b.py::test_two"
    _Trainer().fit(1)
    assert [(r.nodeid, r.kind) for r in plugin.runs] == [
        ("tests/test_a.py::test_one", "train"),
        ("tests/test_b.py::test_two", "train"),
    ]
    assert all(r.seconds >= 0 for r in plugin.runs)
    plugin.unwatch()
    assert _Trainer.__dict__["fit"] is original


def test_a_run_that_raises_is_counted_too():
    class Failing:
        def fit(self) -> None:
            raise ValueError("worker died")

    plugin = RayRuns()
    plugin.watch(Failing, "fit", "tune")
    with pytest.raises(ValueError, match="worker died"):
        Failing().fit()
    plugin.unwatch()
    assert [r.kind for r in plugin.runs] == ["tune"]


def test_modules_are_summed_and_listed_most_seconds_first():
    runs = [
        Run("tests/test_a.py::test_one", "train", 10.0),
        Run("tests/test_b.py::test_x[sqlite]", "tune", 30.0),
        Run("tests/test_a.py::test_two", "train", 12.5),
        Run("tests/test_a.py::test_two", "tune", 4.0),
    ]
    modules = by_module(runs)
    assert [m.module for m in modules] == ["tests/test_b.py", "tests/test_a.py"]
    a = modules[1]
    assert a.counts == {"train": 2, "tune": 1} and a.total_seconds == 26.5
    lines = summary_lines(runs)
    assert lines[0].startswith("2 Ray Train run(s) and 2 Ray Tune run(s) in this process, 56 s")
    assert lines[2].split() == ["tests/test_b.py", "0", "1", "30.0"]
    assert lines[3].split() == ["tests/test_a.py", "2", "1", "26.5"]


def test_no_runs_gives_one_line():
    assert summary_lines([]) == [
        "0 Ray Train run(s) and 0 Ray Tune run(s) in this process, 0 s in all (runs in child "
        "processes are not counted)"
    ]
