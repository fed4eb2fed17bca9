"""Progress while things run: every Ray Train report reaches the driver (the report
stream), a live line at a terminal for fit, sweep and predict, nothing when stderr is not a
terminal; and the CLI ends quietly when its reader goes away and lists the listened metric.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import ray
import torch
from ray.train import ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.cli import main
from pinnacle_ray.errors import ConfigError

HERE = Path(__file__).parent
ROOT = HERE.parent
ROWS = 240


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, pr.SqlDatastore]:
    """A tiny regression table (y = 2a - b) in a fresh SQLite file."""
    db = tmp_path_factory.mktemp("progress") / "points.db"
    store = pr.connect(f"sqlite:///{db}")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=ROWS), rng.normal(size=ROWS)
    store.write(
        "points", pa.table({"id": np.arange(ROWS), "a": a, "b": b, "y": 2 * a - b}), key="id"
    )
    return f"sqlite:///{db}", store


def reporting_loop(config: dict) -> None:
    """Four reports with checkpoints; the listened metric sorts last by name."""
    model = torch.nn.Linear(2, 1)
    for step in range(4):
        pr.report(
            {
                "step": step,
                "a_metric": float(step),
                "b_metric": 1.0,
                "c_metric": 2.0,
                "valid/zz_score": 1.0 / (step + 1),
            },
            model=model,
        )


@pytest.fixture(scope="module")
def fitted(points) -> tuple[pr.TrainResult, str]:
    """A registered fit of ``reporting_loop`` with stderr (the Python object and file
    descriptor 2) in a file, not a terminal; (its result, what reached stderr)."""
    _, store = points
    trainer = pr.TorchTrainer(
        reporting_loop,
        listen="valid/zz_score",
        mode="min",
        scaling_config=ScalingConfig(num_workers=1),
        name="streamed",
    )
    text = io.StringIO()
    with tempfile.TemporaryFile() as raw, contextlib.redirect_stderr(text):
        saved = os.dup(2)
        os.dup2(raw.fileno(), 2)
        try:
            result = trainer.fit(train=store.table("points", key="id"))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        raw.seek(0)
        shown = raw.read().decode(errors="replace") + text.getvalue()
    return result, shown


@pytest.fixture(scope="module")
def streamed(fitted) -> pr.TrainResult:
    return fitted[0]


@pytest.mark.timeout(600)
def test_every_report_reaches_the_driver_in_order_when_a_run_reports(streamed):
    reports = streamed.reports
    assert [r.step for r in reports] == [0, 1, 2, 3]
    assert [r.metrics["a_metric"] for r in reports] == [0.0, 1.0, 2.0, 3.0]
    assert all(r.has_checkpoint and r.epoch is None for r in reports)
    times = [r.time for r in reports]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 600
    # Ray Train's record keeps the checkpoints a handle still names (keep_checkpoints bounds
    # the rest during the run): those reports, in order, the best one (min) among them.
    kept = [m["valid/zz_score"] for _, m in streamed.record.reported]
    values = [r.metrics["valid/zz_score"] for r in reports]
    assert kept == [v for v in values if v in kept] and min(values) in kept, (kept, values)


def test_nothing_is_shown_when_stderr_is_not_a_terminal(fitted):
    _, shown = fitted
    assert "streamed:" not in shown and "starting Ray Train workers" not in shown, shown


def test_progress_must_be_true_false_or_none(points):
    _, store = points
    query = store.table("points", key="id")
    trainer = pr.SklearnTrainer(_ridge(), features=["a", "b"], label="y", name="bad-progress")
    with pytest.raises(ConfigError, match=r"progress must be True, False or None.*'yes'"):
        trainer.fit(train=query, progress="yes")
    with pytest.raises(ConfigError, match=r"progress must be True, False or None.*1"):
        pr.TorchTrainer(reporting_loop, name="bad").fit(train=query, progress=1)
    with pytest.raises(ConfigError, match="progress must be True, False or None"):
        pr.sweep(trainer, {"estimator__alpha": 1.0}, query, metric="valid/rmse", progress="on")
    with pytest.raises(ConfigError, match="progress must be True, False or None"):
        pr.predict("bad-progress", query, output="never_written", progress="on")
    assert "never_written" not in store.tables()
    assert not store.models.list("bad-progress")


# -- in a pseudo-terminal ------------------------------------------------------------------
def _run_in_pty(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """Run ``argv`` with its stderr on a pseudo-terminal (200 columns) and stdout on a
    pipe; (exit code, what the terminal showed, stdout)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    child = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, cwd=HERE
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                shown += data
            elif child.poll() is not None:
                break
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)
    child.wait(timeout=30)
    return child.returncode, shown.decode(errors="replace"), child.stdout.read().decode()


def _renderings(shown: str, label: str) -> list[str]:
    """Every drawing of the line that starts with ``label`` (tqdm redraws it after \\r, or
    after a cursor move when another bar or a log line shares the terminal)."""
    pieces = re.split(r"[\r\n]|\x1b\[[0-9;]*[A-Za-z]", shown)
    return [p.strip() for p in pieces if p.strip().startswith(label)]


@pytest.fixture(scope="module")
def terminal_run(points) -> tuple[int, str, str]:
    url, _ = points
    argv = [sys.executable, str(HERE / "progress_child.py"), _address(), url, "points"]
    return _run_in_pty(argv, timeout=540)


def _address() -> str:
    return ray.get_runtime_context().gcs_address


@pytest.mark.timeout(600)
def test_a_fit_shows_one_live_line_that_updates_at_a_terminal(terminal_run):
    code, shown, out = terminal_run
    assert code == 0 and "done" in out.splitlines(), shown[-3000:]
    lines = _renderings(shown, "torchy:")
    assert any("starting Ray Train workers" in line for line in lines), lines[:5]
    last = lines[-1]
    assert "3/3" in last and "epoch 3/3" in last and "100%" in last, last
    assert re.search(r"valid/loss=\d", last), last
    assert len(set(lines)) >= 3  # it moved: elapsed time, then epochs


def test_a_scikit_learn_fit_names_its_phases_at_a_terminal(terminal_run):
    _, shown, _ = terminal_run
    lines = _renderings(shown, "skl:")
    # "in", not endswith: Ray Data's own INFO lines (a Ray the script started itself keeps
    # its loggers) may follow a drawing on the same terminal line.
    assert any("reading]" in line for line in lines), lines[:5]
    assert any("fitting" in line for line in lines), lines
    assert "3/3" in lines[-1] and "done" in lines[-1], lines[-1]


def test_predict_shows_rows_written_of_the_total_at_a_terminal(terminal_run):
    _, shown, _ = terminal_run
    lines = _renderings(shown, "predict skl v1:")
    assert lines, shown[-3000:]
    assert f"{ROWS}/{ROWS}" in lines[-1] and "row/s" in lines[-1], lines[-1]
    assert any(f"0/{ROWS}" in line for line in lines)  # shown before the first rows


def test_a_sweep_shows_trials_done_and_the_best_so_far_at_a_terminal(terminal_run):
    _, shown, _ = terminal_run
    lines = _renderings(shown, "sweep swp:")
    assert any("0/2" in line and "running" in line for line in lines), lines[:5]
    last = lines[-1]
    assert "2/2" in last and "running 0" in last, last
    assert re.search(r"best valid/rmse=[\d.e-]+ \(estimator__alpha=0\.1\)", last), last


# -- the CLI -------------------------------------------------------------------------------
def test_models_list_shows_the_listened_metric_first(streamed, points, capsys):
    url, _ = points
    code = main(["models", "list", "--store", url])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("streamed"))
    # Alphabetically it would come after a_metric, b_metric and c_metric and be cut off.
    assert row.split()[-4:] == ["valid/zz_score=0.25", "a_metric=3", "b_metric=1", "..."], row


@pytest.mark.parametrize(
    "args",
    [["models", "show", "streamed"], ["models", "list"], ["models", "list", "--json"], ["--help"]],
)
def test_a_command_ends_quietly_when_its_reader_goes_away(streamed, points, args):
    url, _ = points
    store_args = ["--store", url] if args[0] == "models" else []
    child = subprocess.Popen(
        [sys.executable, "-m", "pinnacle_ray.cli", *args, *store_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    child.stdout.close()  # the reader is gone before the command prints anything
    err = child.stderr.read().decode()
    code = child.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code in (0, 141), (code, err)  # 141: as a shell reports SIGPIPE


def _ridge():
    from sklearn.linear_model import Ridge

    return Ridge()
