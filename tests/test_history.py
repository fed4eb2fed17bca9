"""Metric history: every report of a run, kept with the version (and per sweep trial) in the
datastore, read back as a DataFrame, and drawn as curves by the CLI.

The registry tests run on SQLite, PostgreSQL, MariaDB and MongoDB without Ray; the fit,
sweep and plot tests train tiny models on a local Ray and an SQLite file.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import pinnacle_ray as pr
from pinnacle_ray.cli import main as cli_main
from pinnacle_ray.registry.history import HISTORY_COLUMNS, history_frame
from pinnacle_ray.trainers.report_stream import Report

T0 = 1_767_000_000.0  # a fixed unix time for the hand-made reports


def _reports(n: int = 5) -> list[Report]:
    return [
        Report(
            metrics={"step": 10 * (i + 1), "epoch": i // 2, "train/loss": 1.0 / (i + 1)}
            | ({"valid/loss": 2.0 / (i + 1)} if i % 2 else {}),
            step=10 * (i + 1),
            epoch=i // 2,
            time=T0 + i,
            has_checkpoint=i % 2 == 1,
        )
        for i in range(n)
    ]


def _artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "weights.bin").write_bytes(b"w" * 64)
    return folder


def _registry(store, tables, tmp_path) -> pr.ModelRegistry:
    for name in (
        "pinnacle_models",
        "pinnacle_checkpoints",
        "pinnacle_registry_meta",
        "pinnacle_metric_history",
        "pinnacle_model_cards",
        "pinnacle_sweeps",
        "pinnacle_trial_history",
    ):
        tables(name)  # dropped after the test
    return pr.ModelRegistry(store, prefix=f"{tables.prefix}_pinnacle", artifact_root=tmp_path / "a")


def _assert_rows_equal(frame: pd.DataFrame, reports: list[Report]) -> None:
    assert list(frame.columns[: len(HISTORY_COLUMNS)]) == HISTORY_COLUMNS
    assert len(frame) == len(reports)
    for (_, row), report in zip(frame.iterrows(), reports, strict=True):
        assert row["step"] == report.step
        assert row["epoch"] == report.epoch
        assert row["checkpoint"] == report.has_checkpoint
        assert row["time"] == pd.Timestamp(report.time, unit="s", tz="UTC")
        for name, value in report.metrics.items():
            assert row[name] == pytest.approx(value)
        for name in set(frame.columns) - set(HISTORY_COLUMNS) - set(report.metrics):
            assert math.isnan(row[name])  # not reported at this step


# -- registry: stored with the version, on every backend ------------------------------------
@pytest.mark.with_mongo
def test_metrics_returns_every_report_in_order_when_registered_with_history(
    store, tables, tmp_path
):
    registry = _registry(store, tables, tmp_path)
    reports = _reports(5)
    registry.register("hist", "torch", _artifact(tmp_path), history=reports)
    registry.register("hist", "torch", _artifact(tmp_path), history=reports[:2])

    _assert_rows_equal(registry.metrics("hist", version=1), reports)
    _assert_rows_equal(registry.metrics("hist"), reports[:2])  # latest version by default


@pytest.mark.with_mongo
def test_metrics_is_empty_and_history_gone_when_version_has_none_or_is_deleted(
    store, tables, tmp_path
):
    registry = _registry(store, tables, tmp_path)
    registry.register("plain", "torch", _artifact(tmp_path))
    empty = registry.metrics("plain")
    assert list(empty.columns) == HISTORY_COLUMNS and empty.empty

    registry.register("plain", "torch", _artifact(tmp_path), history=_reports(3))
    registry.delete("plain", version=2)
    rows = store.table(registry.tables.history).to_arrow().to_pylist()
    assert [r for r in rows if r["name"] == "plain"] == []


@pytest.mark.with_mongo
def test_trial_metrics_keep_each_trials_reports_when_a_sweep_records_them(store, tables, tmp_path):
    registry = _registry(store, tables, tmp_path)
    reports = _reports(4)
    registry.record_trial_history("sw", "t1", reports)
    registry.record_trial_history("sw", "t2", reports[:1])
    registry.record_sweep(
        [
            pr.SweepTrial("sw", t, "m", "completed", {"lr": lr}, {"loss": lr}, "loss", "min")
            for t, lr in (("t1", 0.1), ("t2", 0.2))
        ]
    )
    frame = registry.trial_metrics("sw")
    assert list(frame["trial_id"]) == ["t1"] * 4 + ["t2"]
    _assert_rows_equal(frame[frame.trial_id == "t1"].drop(columns="trial_id"), reports)
    one = registry.trial_metrics("sw", "t2").drop(columns="trial_id")
    _assert_rows_equal(one.dropna(axis=1, how="all"), reports[:1])


def test_history_frame_takes_plain_metric_dicts_and_keeps_nan_as_missing():
    frame = history_frame([{"step": 1, "loss": 0.5}, {"step": 2, "loss": float("nan")}])
    assert list(frame["step"]) == [1, 2]
    assert frame["loss"].iloc[0] == 0.5 and math.isnan(frame["loss"].iloc[1])
    assert frame["time"].isna().all()
