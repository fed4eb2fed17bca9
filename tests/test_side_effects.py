"""No lasting side effect on what the user owns: their SQLite file's journal mode, the
environment of pooled Ray workers, the environment and ``ray.*`` loggers of their process.

The Ray checks run in a child process of their own (tests/side_effects_child.py): one where
the user starts Ray, one where pinnacle_ray does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pinnacle_ray as pr
from pinnacle_ray.trainers.hub_offline import hub_offline

HERE = Path(__file__).parent


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _user_file(path: Path, n: int = 50) -> Path:
    """An SQLite file made by the user's own tools (rollback journal, SQLite's default)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, i / 2) for i in range(n)])
    assert _journal_mode(path) == "delete"
    return path


# -- SQLite journal mode ------------------------------------------------------------------
def test_a_users_sqlite_file_keeps_its_journal_mode_when_read_written_and_registered(tmp_path):
    path = _user_file(tmp_path / "mine.db")
    store = pr.connect(path)
    assert store.table("t").to_arrow().num_rows == 50
    store.write("t", pd.DataFrame({"id": [1, 99], "x": [5.0, 6.0]}), key="id")
    store.models.list()  # creates the registry's tables
    store.close()
    assert _journal_mode(path) == "delete"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*), MAX(x) FROM t").fetchone() == (51, 24.5)


def test_a_sqlite_file_created_by_connect_is_in_wal_mode(tmp_path):
    path = tmp_path / "new.db"
    store = pr.connect(path)
    store.write("t", pd.DataFrame({"id": np.arange(3), "x": [1.0, 2.0, 3.0]}), key="id")
    store.close()
    assert _journal_mode(path) == "wal"


def test_sqlite_wal_switches_an_existing_file_only_when_asked(tmp_path):
    path = _user_file(tmp_path / "mine.db")
    pr.connect(path, sqlite_wal=False).close()
    assert _journal_mode(path) == "delete"
    pr.connect(path, sqlite_wal=True).close()
    assert _journal_mode(path) == "wal"


def test_sqlite_wal_is_refused_for_a_server_url_before_connecting():
    with pytest.raises(pr.ConfigError, match=r"sqlite_wal=True applies to SQLite files only"):
        pr.connect("postgresql://nobody@127.0.0.1:1/none", sqlite_wal=True)
    with pytest.raises(pr.ConfigError, match=r"sqlite_wal='yes'; pass True, False or None"):
        pr.connect("sqlite:///:memory:", sqlite_wal="yes")


# -- Hugging Face Hub offline, for one task ----------------------------------------------
def test_hub_offline_is_restored_after_the_task_and_after_an_error(monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    with hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and hub.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and hub.HF_HUB_OFFLINE is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(RuntimeError), hub_offline():
        raise RuntimeError("the loop failed")
    assert os.environ["HF_HUB_OFFLINE"] == "0" and hub.HF_HUB_OFFLINE is False


def test_hub_offline_leaves_a_fresh_worker_online_when_the_hub_is_first_imported_inside():
    code = (
        "import os\n"
        "from pinnacle_ray.trainers.hub_offline import hub_offline\n"
        "with hub_offline():\n"
        "    import transformers.utils.hub\n"
        "    assert transformers.utils.hub.is_offline_mode()\n"
        "import huggingface_hub.constants as hub\n"
        "print(os.environ.get('HF_HUB_OFFLINE'), hub.HF_HUB_OFFLINE, hub.is_offline_mode())\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "False", "False"]


def test_the_huggingface_loop_runs_inside_hub_offline():
    import inspect

    from pinnacle_ray.trainers import huggingface_loop

    source = inspect.getsource(huggingface_loop.huggingface_loop)
    assert "with hub_offline(), quiet_transformers():" in source
    assert "HF_HUB_OFFLINE" not in inspect.getsource(huggingface_loop)


def test_transformers_verbosity_and_bars_are_given_back_after_the_task_and_after_an_error(
    monkeypatch,
):
    from transformers.utils import logging as hf_logging

    from pinnacle_ray.trainers.huggingface_loop import quiet_transformers

    monkeypatch.delenv("PINNACLE_RAY_VERBOSE", raising=False)
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
        with quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        with pytest.raises(RuntimeError), quiet_transformers():
            raise RuntimeError("the task failed")
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(level)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


# -- Ray's loggers and the workers' environment -------------------------------------------
def _child(mode: str, tmp_path: Path) -> dict:
    db = _user_file(tmp_path / f"{mode}.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.pop("PINNACLE_RAY_VERBOSE", None)
    done = subprocess.run(
        [sys.executable, str(HERE / "side_effects_child.py"), mode, str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(lines[-1])


@pytest.mark.cluster  # a Ray of its own, in a child process
@pytest.mark.timeout(450)
def test_ray_loggers_are_left_alone_when_the_user_started_ray(tmp_path):
    out = _child("user-ray", tmp_path)
    assert out["rows"] == 50
    assert out["levels"] == {
        "ray.data": 10,  # DEBUG, as the user set it
        "ray.train": 0,
        "ray.tune": 0,
        "ray.data._internal.progress": 0,
    }
    assert out["dataset_filters"] == 0
    assert not out["soft_limit_left"]


@pytest.mark.cluster  # a Ray of its own, in a child process
@pytest.mark.timeout(450)
def test_ray_started_by_pinnacle_is_quiet_and_leaves_no_environment_behind(tmp_path):
    out = _child("our-ray", tmp_path)
    assert out["rows"] == 50
    assert out["levels"]["ray.data"] == 30 and out["levels"]["ray.train"] == 30  # WARNING
    assert not out["soft_limit_left"]  # the raylet read it; the user's process keeps none
    # The workers get their quiet settings from the raylet's environment (no runtime_env,
    # which would start each worker through an extra Python process); the user's process
    # keeps none of them.
    assert out["worker_env_changed"] == []
    assert out["child"]["RAY_DATA_LOGGING_CONFIG"].endswith("ray_data_logging.yaml")
    assert "exclude_resources" in out["child"]["PYTHONWARNINGS"]
    # Only Ray's own notice is hidden in the workers: a user's DeprecationWarning in a
    # program started from a task still shows.
    assert "ignore::DeprecationWarning" not in out["child"]["PYTHONWARNINGS"]
    assert "user-notice" in out["child"]["stderr"]
