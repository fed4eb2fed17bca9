"""Which reported checkpoint each registry handle names (a pure function of the reports)."""

from __future__ import annotations

import pytest
from ray.train import Checkpoint

import pinnacle_ray as pr
from pinnacle_ray.trainers.registration import choose_handles


def _reports(*metrics: dict) -> list:
    return [(Checkpoint.from_directory(f"/tmp/c{i}"), m) for i, m in enumerate(metrics)]


def test_latest_is_the_last_and_best_follows_the_listened_metric_and_mode():
    reported = _reports(
        {"step": 1, "valid/loss": 3.0},
        {"step": 2, "valid/loss": 1.0},
        {"step": 3, "valid/loss": 2.0},
    )
    handles = choose_handles(reported, "valid/loss", "min", keep_epochs=3)
    assert handles["latest"] is reported[2] and handles["best"] is reported[1]
    assert choose_handles(reported, "valid/loss", "max", keep_epochs=3)["best"] is reported[0]


def test_epoch_handles_keep_the_last_k_epoch_ends_only():
    reported = _reports(
        {"step": 5, "epoch": 0, "epoch_done": False},
        {"step": 10, "epoch": 0, "epoch_done": True},
        {"step": 20, "epoch": 1, "epoch_done": True},
        {"step": 30, "epoch": 2, "epoch_done": True},
    )
    handles = choose_handles(reported, None, "min", keep_epochs=2)
    assert set(handles) == {"latest", "epoch_1", "epoch_2"}


def test_a_custom_loop_reporting_epochs_gets_epoch_handles():
    reported = _reports({"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.0})
    assert set(choose_handles(reported, None, "min", keep_epochs=5)) == {
        "latest",
        "epoch_0",
        "epoch_1",
    }


def test_a_listen_metric_that_was_never_reported_is_an_error_naming_what_was():
    with pytest.raises(pr.MetricNotReported, match="'loss'"):
        choose_handles(_reports({"loss": 1.0}), "valid/loss", "min", keep_epochs=1)


def test_nothing_reported_names_no_handles():
    assert choose_handles([], "valid/loss", "min", keep_epochs=1) == {}
