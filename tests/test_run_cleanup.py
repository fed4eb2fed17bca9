"""Old Ray Train run folders in the shared run storage are removed by ``store.models.cleanup``
when asked (``runs_older_than=``), never by default, and never a run that is still written."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import PG_URL

import pinnacle_ray as pr
from pinnacle_ray.registry.cleanup import remove_old_runs


def _write(fs: pafs.FileSystem, path: str, data: bytes = b"x" * 1000) -> None:
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


@pytest.mark.timeout(120)
def test_old_run_folders_are_removed_when_runs_older_than_is_given(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    store = pr.connect(f"sqlite:///{tmp_path / 'shop.db'}", artifact_root=f"file://{root}")
    storage = store.models.run_storage()
    assert storage.shared and storage.storage_path == f"{root}/_ray_train"
    fs = storage.storage_filesystem
    old = f"{storage.storage_path}/mlp-old/checkpoint_000000/model.safetensors"
    new = f"{storage.storage_path}/mlp-new/checkpoint_000000/model.safetensors"
    _write(fs, old)
    _write(fs, new)
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    os.utime(Path(old).parent, (week_ago, week_ago))
    os.utime(Path(old).parent.parent, (week_ago, week_ago))

    assert not store.models.cleanup()  # by default run folders are kept
    assert _exists(fs, old)

    report = store.models.cleanup(runs_older_than=dt.timedelta(days=7))
    assert report.runs == [f"{storage.storage_path}/mlp-old"]
    assert "1 old Ray Train run folder(s)" in str(report)
    assert not _exists(fs, f"{storage.storage_path}/mlp-old")
    assert _exists(fs, new)  # written just now: a live run is left alone


@pytest.mark.timeout(120)
def test_run_cleanup_is_refused_when_the_threshold_is_negative(tmp_path: Path) -> None:
    store = pr.connect(f"sqlite:///{tmp_path / 'shop.db'}", artifact_root=f"file://{tmp_path}/r")
    with pytest.raises(pr.ConfigError, match="older_than must not be negative"):
        store.models.cleanup(runs_older_than=-1)


@pytest.mark.timeout(180)
def test_old_runs_in_the_database_are_removed_and_live_ones_kept() -> None:
    try:
        store = pr.connect(PG_URL)
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! postgresql server not reachable, its tests are SKIPPED: {exc}")
    storage = store.models.run_storage()
    fs = storage.storage_filesystem
    # A folder of this test's own inside the in-database filesystem: the database is shared.
    base = f"cleanup-test-{uuid.uuid4().hex[:8]}"
    _write(fs, f"{base}/run-a/checkpoint_000000/w.bin", os.urandom(3 << 20))
    _write(fs, f"{base}/run-b/checkpoint_000001/w.bin")
    try:
        assert remove_old_runs(fs, base, dt.timedelta(hours=1)) == []
        assert _exists(fs, f"{base}/run-a/checkpoint_000000/w.bin")
        removed = remove_old_runs(fs, base, dt.timedelta(0))
        assert removed == [f"{base}/run-a", f"{base}/run-b"]
        assert not _exists(fs, f"{base}/run-a/checkpoint_000000/w.bin")
        assert fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)) == []
    finally:
        if _exists(fs, base):
            fs.delete_dir(base)
        store.close()
