"""The README's main command works on a fresh machine, quietly, and the CLI answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pinnacle_ray as pr

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(480)
def test_quickstart_reads_trains_registers_and_predicts_with_its_own_local_ray(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--db", str(tmp_path / "q.db")],
        capture_output=True,
        text=True,
        timeout=420,  # ~70 s alone; a second Ray beside the suite's can take far longer
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 442 rows" in proc.stdout
    assert "4 shard(s) by key range on 'id'" in proc.stdout
    assert "read 353 rows as a Ray Dataset" in proc.stdout
    assert "registered as diabetes-mlp version 1" in proc.stdout
    assert "predictions of the best checkpoint on 5 validation rows" in proc.stdout
    noisy = [
        line
        for line in proc.stderr.splitlines()
        if " INFO " in line or "WARNING" in line or "Progress bars disabled" in line
    ]
    assert not noisy, noisy[:5]


def test_cli_reports_its_version():
    proc = subprocess.run(
        [sys.executable, "-m", "pinnacle_ray.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and pr.__version__ in proc.stdout
