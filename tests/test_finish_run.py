"""Every trainer ends a run through ``finish_run``: registered when asked and a datastore is
there, else said why not, and handed back as a ``TrainResult`` (no Ray: a stand-in registry
records what it is given)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from ray.train import Checkpoint

import pinnacle_ray as pr
from pinnacle_ray.trainers.finish import finish_run
from pinnacle_ray.trainers.registration import RunRecord
from pinnacle_ray.trainers.tracking import Tracking

pytestmark = pytest.mark.unit


class _Models:
    """A registry that hands out version 3 (or fails, when told to)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.registered: list[tuple[str, str]] = []

    def register(self, name: str, framework: str, artifact: str, **_: object) -> object:
        if self.fail:
            raise RuntimeError("the database went away")
        self.registered.append((name, framework))
        return SimpleNamespace(version=3)


def _record(tmp_path, listen: str | None = None) -> RunRecord:
    folder = tmp_path / "checkpoint_000000"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    metrics = {"step": 1, "train/loss": 0.5}
    return RunRecord(
        "house",
        "torch",
        [(Checkpoint.from_directory(str(folder)), metrics)],
        meta={"framework": "torch"},
        listen=listen,
        mode="min",
        keep_epochs=0,
        config={},
        lineage={},
        history=[metrics],
    )


def test_a_run_is_registered_and_its_version_returned_when_its_store_is_given(tmp_path):
    store = SimpleNamespace(models=_Models())
    record = _record(tmp_path)
    cleaned: list[bool] = []
    result = finish_run(
        record,
        store,
        Tracking.of(),
        register=True,
        metrics={"train/loss": 0.5},
        checkpoint=record.reported[0][0],
        after_register=lambda: cleaned.append(True),
    )
    assert store.models.registered == [("house", "torch")]
    assert (result.name, result.version, result.metrics) == ("house", 3, {"train/loss": 0.5})
    assert result.record is record and result.reports == [{"step": 1, "train/loss": 0.5}]
    assert cleaned == [True]


def test_the_clean_up_after_registering_runs_when_registering_fails(tmp_path):
    cleaned: list[bool] = []
    with pytest.raises(RuntimeError, match="went away"):
        finish_run(
            _record(tmp_path),
            SimpleNamespace(models=_Models(fail=True)),
            Tracking.of(),
            register=True,
            metrics={},
            checkpoint=None,
            after_register=lambda: cleaned.append(True),
        )
    assert cleaned == [True]


def test_a_run_on_a_plain_dataset_is_not_registered_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pinnacle_ray.trainers"):
        result = finish_run(
            _record(tmp_path), None, Tracking.of(), register=True, metrics={}, checkpoint=None
        )
    assert result.version is None
    assert "house: train= is not a datastore query; the run is not registered" in caplog.text


def test_a_run_not_registered_still_refuses_a_listened_metric_it_never_reported(tmp_path):
    store = SimpleNamespace(models=_Models())
    with pytest.raises(pr.MetricNotReported, match=r"listen='valid/loss' was never reported"):
        finish_run(
            _record(tmp_path, listen="valid/loss"),
            store,
            Tracking.of(),
            register=False,
            metrics={},
            checkpoint=None,
        )
    assert store.models.registered == []
