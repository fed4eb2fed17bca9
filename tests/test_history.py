"""Metric history: every report of a run, kept with the version (and per sweep trial) in the
datastore, read back as a DataFrame, and drawn as curves by the CLI.

The registry tests run on SQLite, PostgreSQL, MariaDB and MongoDB without Ray; the fit,
sweep and plot tests train tiny models on a local Ray and an SQLite file.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
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
        # Stored to the microsecond.
        assert abs(row["time"] - pd.Timestamp(report.time, unit="s", tz="UTC")) < pd.Timedelta(
            "1us"
        )
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


# -- pictures: models show --plot, sweeps show --plot ---------------------------------------
def _png(path: Path) -> tuple[tuple[int, int], list[str]]:
    """The PNG's size and the lines its metadata says were drawn (read back with Pillow)."""
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size, json.loads(image.info["Description"])["lines"]


def test_models_show_plot_draws_one_line_per_metric_when_a_version_has_history(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'plot.db'}"
    store = pr.connect(url)
    reports = [
        Report(
            r.metrics | {"train/rows": 64, "valid/accuracy": 0.5}, r.step, r.epoch, r.time, False
        )
        for r in _reports(6)
    ]
    store.models.register("curves", "torch", _artifact(tmp_path), history=reports)
    out = tmp_path / "curves.png"
    assert cli_main(["models", "show", "curves", "--plot", str(out), "--store", url]) == 0

    size, lines = _png(out)
    # Two panels (loss: train and valid; accuracy), 900 px wide and 320 px per panel.
    assert size == (900, 2 * 320)
    assert lines == ["train/loss", "valid/loss", "valid/accuracy"]
    assert f"written to {out}" in capsys.readouterr().out


def test_plotting_leaves_the_users_matplotlib_state_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    from pinnacle_ray.cli._plots import plot_history

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    params = dict(matplotlib.rcParams)
    drawn = plot_history(history_frame(_reports(4)), tmp_path / "c.png", "c")
    assert drawn == ["train/loss", "valid/loss"]
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures
    assert dict(matplotlib.rcParams) == params


def test_plotting_without_matplotlib_names_the_install_command(tmp_path, monkeypatch):
    from pinnacle_ray.cli._plots import plot_history

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import -> ImportError
    with pytest.raises(pr.ConfigError, match=r'pip install "pinnacle-ray\[plot\]"'):
        plot_history(history_frame(_reports(2)), tmp_path / "c.png", "c")
    assert not (tmp_path / "c.png").exists()


def test_models_show_plot_refuses_with_a_reason_when_there_is_no_history(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    pr.connect(url).models.register("bare", "torch", _artifact(tmp_path))
    out = tmp_path / "none.png"
    assert cli_main(["models", "show", "bare", "--plot", str(out), "--store", url]) == 1
    assert "no metric history to plot" in capsys.readouterr().err
    assert not out.exists()


def test_sweeps_show_plot_draws_the_metric_against_each_swept_parameter(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    store = pr.connect(url)
    trials = [
        pr.SweepTrial("sw", f"t{i}", "m", "completed", {"lr": lr, "depth": d, "opt": "adam"},
                      {"loss": (lr - 0.01) ** 2 + d / 100}, "loss", "min", best=i == 1)
        for i, (lr, d) in enumerate([(0.001, 2), (0.01, 3), (0.1, 4), (1.0, 5)])
    ]  # fmt: skip
    store.models.record_sweep(trials)
    out = tmp_path / "sweep.png"
    assert cli_main(["sweeps", "show", "sw", "--plot", str(out), "--store", url]) == 0
    size, params = _png(out)
    assert size == (900, 2 * 320) and params == ["depth", "lr"]  # "opt" is not a number
    text = capsys.readouterr().out
    assert "t1" in text and "4 trial(s)" in text
    assert cli_main(["sweeps", "show", "nope", "--store", url]) == 1
    assert "recorded sweeps: ['sw']" in capsys.readouterr().err


# -- a real fit and sweep: the report stream's reports, kept -------------------------------
N_REPORTS = 6


def _reporting_loop(config: dict) -> None:
    """Reports every step (a checkpoint every other one): loss = scale / step."""
    import tempfile

    import ray.train

    for i in range(N_REPORTS):
        metrics = {"step": i + 1, "epoch": i // 2, "train/loss": config["scale"] / (i + 1)}
        if i % 2:
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "weights.txt").write_text(str(i))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One fit and one two-trial sweep of a torch loop that reports every step."""
    from ray import tune

    folder = tmp_path_factory.mktemp("history")
    store = pr.connect(folder / "fit.db")
    store.write("rows", pa.table({"id": list(range(20)), "x": [0.0] * 20}), key="id")
    trainer = pr.TorchTrainer(_reporting_loop, train_loop_config={"scale": 2.0}, name="looped")
    result = trainer.fit(train=store.table("rows", key="id"))
    swept = pr.sweep(
        trainer,
        {"train_loop_config__scale": tune.grid_search([1.0, 3.0])},
        train=store.table("rows", key="id"),
        metric="train/loss",
        mode="min",
        name="looped-sweep",
    )
    yield store, result, swept
    store.close()


@pytest.mark.timeout(900)
def test_fit_history_has_every_report_in_order_and_is_stored_with_the_version(fitted):
    store, result, _ = fitted
    frame = result.history
    assert len(frame) == len(result.reports) == N_REPORTS
    assert list(frame["step"]) == list(range(1, N_REPORTS + 1))
    assert list(frame["epoch"]) == [i // 2 for i in range(N_REPORTS)]
    assert list(frame["checkpoint"]) == [i % 2 == 1 for i in range(N_REPORTS)]
    assert list(frame["train/loss"]) == pytest.approx([2.0 / (i + 1) for i in range(N_REPORTS)])
    assert frame["time"].is_monotonic_increasing and frame["time"].notna().all()
    _assert_rows_equal(frame, result.reports)

    stored = store.models.metrics("looped", version=result.version)
    pd.testing.assert_frame_equal(stored, frame)


def test_a_sweep_keeps_every_report_of_each_trial(fitted):
    store, _, swept = fitted
    frame = store.models.trial_metrics("looped-sweep")
    assert sorted(frame["trial_id"].unique()) == sorted(t.trial_id for t in swept.trials)
    for trial in swept.trials:
        rows = frame[frame.trial_id == trial.trial_id]
        scale = trial.params["train_loop_config__scale"]
        assert list(rows["step"]) == list(range(1, N_REPORTS + 1))
        assert list(rows["train/loss"]) == pytest.approx([scale / (i + 1) for i in range(6)])
    # The best trial's registered version has the same history as its trial.
    best = store.models.metrics("looped", version=swept.version)
    assert list(best["train/loss"]) == pytest.approx([1.0 / (i + 1) for i in range(N_REPORTS)])
