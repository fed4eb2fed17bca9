"""Model artifacts and Ray Train checkpoints inside the database (the default for server stores).

PostgreSQL and MariaDB keep files in the chunked blob tables, MongoDB (the stand-in) in
GridFS; the registry and Ray Train reach them through one ``pyarrow.fs`` filesystem. Model
names and blob paths are unique per test: the server databases are shared.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
import ray
import sqlalchemy as sa
import torch
from conftest import PG_URL, SERVERS
from sqlalchemy.engine import make_url
from torch import nn

import pinnacle_ray as pr
from pinnacle_ray.datastore.artifact_root import legacy_artifact_root
from pinnacle_ray.datastore.sql.blobs import CHUNKS_TABLE, FILES_TABLE, SqlBlobStore
from pinnacle_ray.registry import RunStorage
from pinnacle_ray.registry.db_filesystem import database_filesystem
from pinnacle_ray.registry.torch_flavor import save_model

FEATURES = ["a", "b", "c"]
DB_BACKENDS = ["postgresql", "mariadb", "mongo"]
MiB = 1 << 20

Store = pr.SqlDatastore | pr.MongoDatastore


# -- fixtures and helpers ----------------------------------------------------------------------
def _url(backend: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("mongo_uri") if backend == "mongo" else SERVERS[backend]


@pytest.fixture
def db(request: pytest.FixtureRequest) -> Iterator[tuple[Store, str]]:
    """A server store with default settings (no artifact_root, no PINNACLE_RAY_ARTIFACT_ROOT),
    and its URL."""
    url = _url(request.param, request)
    try:
        store = pr.connect(url)
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! {request.param} server not reachable, its tests are SKIPPED: {exc}")
    yield store, url
    store.close()


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PINNACLE_RAY_ARTIFACT_ROOT", raising=False)
    monkeypatch.setenv("PINNACLE_RAY_CACHE_DIR", str(tmp_path / "cache"))


def _module(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))


def _frame(rows: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)


def _predicted(module: nn.Module, frame: pd.DataFrame) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(frame.to_numpy(), dtype=torch.float32)).numpy().ravel()


def _saved(folder: Path, module: nn.Module) -> Path:
    return save_model(folder, module, features=FEATURES, label="y", objective="mse")


def _name() -> str:
    return f"blob-{uuid.uuid4().hex[:10]}"


def _forget(store: Store, name: str) -> None:
    with contextlib.suppress(pr.ModelNotFound):
        store.models.delete(name)


def _python(code: str, env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


# -- defaults and round trips ------------------------------------------------------------------
@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_models_live_in_the_database_when_a_server_store_has_no_artifact_root(db, tmp_path):
    store, _ = db
    name, module = _name(), _module()
    try:
        version = store.models.register(name, "torch", _saved(tmp_path / "m", module))
        assert store.artifact_root == "pinnacle-db://artifacts"
        assert version.artifact_uri.startswith(f"pinnacle-db://artifacts/{name}/")
        assert version.artifact_uri.endswith("/model")
        stored = [e.path for e in store.blob_store().list(f"artifacts/{name}")]
        assert any(p.endswith("/model/model.safetensors") for p in stored), stored
        frame = _frame()
        np.testing.assert_allclose(
            store.models.load(name).predict(frame), _predicted(module, frame), rtol=1e-6
        )
    finally:
        _forget(store, name)
    assert store.blob_store().list(f"artifacts/{name}") == []  # delete removed its files


@pytest.mark.timeout(600)
@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_a_fresh_process_with_another_home_loads_the_model_when_it_was_registered_here(
    db, tmp_path
):
    store, url = db
    name, module, frame = _name(), _module(seed=5), _frame()
    home = tmp_path / "other-home"
    home.mkdir()
    try:
        store.models.register(name, "torch", _saved(tmp_path / "m", module))
        done = _python(
            f"""
            import json, os
            os.environ.pop("PINNACLE_RAY_CACHE_DIR", None)
            import pandas as pd
            import pinnacle_ray as pr
            frame = pd.DataFrame({frame.to_dict(orient="list")!r})
            model = pr.connect({url!r}).models.load({name!r})
            print(json.dumps([float(v) for v in model.predict(frame)]))
            """,
            {"HOME": str(home)},
        )
        predicted = json.loads(done.stdout.strip().splitlines()[-1])
        np.testing.assert_allclose(predicted, _predicted(module, frame), rtol=1e-6)
        # Downloaded once into the new home's cache, keyed by the version's checksum.
        cached = [p.name for p in (home / ".cache" / "pinnacle_ray" / "artifacts").iterdir()]
        assert cached == [store.models.get(name).sha256]
    finally:
        _forget(store, name)


# -- streaming in chunks -----------------------------------------------------------------------
@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_a_file_of_several_chunks_round_trips_when_written_and_read_in_odd_sizes(db):
    store, _ = db
    fs = database_filesystem(store.blob_store())
    path = f"tests/{uuid.uuid4().hex}/weights.bin"
    data = os.urandom(3 * store.blob_store().chunk_bytes + 12_345)
    try:
        with fs.open_output_stream(path) as out:
            for start in range(0, len(data), 3 * MiB + 7):
                out.write(data[start : start + 3 * MiB + 7])
        assert fs.get_file_info(path).size == len(data)
        with fs.open_input_file(path) as f:
            f.seek(4 * MiB - 3)  # across a chunk boundary
            assert f.read(10) == data[4 * MiB - 3 : 4 * MiB + 7]
            f.seek(0)
            pieces = []
            while piece := f.read(1_000_003):
                pieces.append(piece)
        assert b"".join(pieces) == data
        if isinstance(store, pr.MongoDatastore):  # GridFS's own reader reads it too
            import gridfs

            bucket = gridfs.GridFSBucket(store._database(), "pinnacle_blobs")
            assert bucket.open_download_stream_by_name(path).read() == data
    finally:
        fs.delete_dir(path.rsplit("/", 1)[0])


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_sql_file_is_stored_as_one_row_per_chunk_when_it_spans_chunks(backend):
    try:
        store = pr.connect(SERVERS[backend])
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! {backend} server not reachable, its tests are SKIPPED: {exc}")
    blobs = SqlBlobStore(store, chunk_bytes=256 << 10)
    path = f"tests/{uuid.uuid4().hex}/w.bin"
    data = os.urandom(5 * (256 << 10) + 1)
    try:
        with blobs.open_write(path) as out:
            out.write(data)
        with store._engine.connect() as conn:
            content = conn.execute(
                sa.text(f"SELECT content_id FROM {FILES_TABLE} WHERE path = :p"), {"p": path}
            ).scalar()
            sizes = conn.execute(
                sa.text(f"SELECT n, LENGTH(data) FROM {CHUNKS_TABLE} WHERE content_id = :c"),
                {"c": content},
            ).all()
        assert sorted(sizes) == [(n, 256 << 10) for n in range(5)] + [(5, 1)]
        with blobs.open_read(path) as f:
            assert f.read() == data
    finally:
        blobs.delete([path])
        store.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_reading_a_large_file_holds_about_one_chunk_when_it_is_streamed(db):
    store, url = db
    blobs = store.blob_store()
    fs = database_filesystem(blobs)
    path = f"tests/{uuid.uuid4().hex}/big.bin"
    size = 8 * blobs.chunk_bytes
    block = os.urandom(MiB)
    try:
        with fs.open_output_stream(path) as out:
            for _ in range(size // MiB):
                out.write(block)
        # Measured in another process: the Mongo stand-in serves from a thread of this one.
        done = _python(
            f"""
            import tracemalloc
            import pinnacle_ray as pr
            from pinnacle_ray.registry.db_filesystem import database_filesystem
            fs = database_filesystem(pr.connect({url!r}).blob_store())
            tracemalloc.start()
            total = 0
            with fs.open_input_stream({path!r}) as f:
                while piece := f.read(1 << 20):
                    total += len(piece)
            print(total, tracemalloc.get_traced_memory()[1])
            """,
            {},
        )
        total, peak = map(int, done.stdout.split()[-2:])
        assert total == size
        # The current chunk, the driver's copy of the next one, the piece read: not the file.
        assert peak < 3 * blobs.chunk_bytes, f"peak {peak / MiB:.1f} MiB for {size / MiB} MiB"
    finally:
        fs.delete_dir(path.rsplit("/", 1)[0])


@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_folders_copy_list_move_and_delete_when_pyarrow_drives_the_filesystem(db, tmp_path):
    store, _ = db
    fs = database_filesystem(store.blob_store())
    root = f"tests/{uuid.uuid4().hex}"
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "sub" / "b.bin").write_bytes(os.urandom(5 * MiB))
    try:
        fs.create_dir(f"{root}/empty")
        pafs.copy_files(str(source), f"{root}/copy", destination_filesystem=fs)
        top = fs.get_file_info(pafs.FileSelector(root))
        assert [(i.base_name, i.type) for i in top] == [
            ("copy", pafs.FileType.Directory),
            ("empty", pafs.FileType.Directory),
        ]
        deep = fs.get_file_info(pafs.FileSelector(f"{root}/copy", recursive=True))
        assert [(i.path.removeprefix(f"{root}/copy/"), i.size) for i in deep] == [
            ("a.txt", 5),
            ("sub", None),
            ("sub/b.bin", 5 * MiB),
        ]
        fs.move(f"{root}/copy", f"{root}/moved")
        assert fs.get_file_info(f"{root}/copy").type == pafs.FileType.NotFound
        back = tmp_path / "back"
        back.mkdir()
        pafs.copy_files(f"{root}/moved", str(back), source_filesystem=fs)
        assert (back / "sub" / "b.bin").read_bytes() == (source / "sub" / "b.bin").read_bytes()
        fs.copy_file(f"{root}/moved/a.txt", f"{root}/a-copy.txt")
        with fs.open_input_stream(f"{root}/a-copy.txt") as f:
            assert f.read() == b"alpha"
        with pytest.raises(FileNotFoundError):
            fs.get_file_info(pafs.FileSelector(f"{root}/nowhere"))
        fs.delete_dir_contents(f"{root}/moved")  # the folder itself stays, as on a disk
        assert fs.get_file_info(pafs.FileSelector(f"{root}/moved")) == []
        assert fs.get_file_info(f"{root}/empty").type == pafs.FileType.Directory
    finally:
        fs.delete_dir(root)
    assert fs.get_file_info(root).type == pafs.FileType.NotFound


# -- nothing half-written ----------------------------------------------------------------------
@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_a_file_is_invisible_when_its_writer_process_dies_before_closing_it(db):
    store, url = db
    folder = f"tests/{uuid.uuid4().hex}"
    done = _python(
        f"""
        import os, signal
        import pinnacle_ray as pr
        from pinnacle_ray.registry.db_filesystem import database_filesystem
        fs = database_filesystem(pr.connect({url!r}).blob_store())
        out = fs.open_output_stream({folder + "/model.bin"!r})
        out.write(os.urandom(9 << 20))  # two chunks stored, one buffered
        out.flush()
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        {},
        check=False,
    )
    assert "written" in done.stdout, done.stderr[-2000:]
    fs = database_filesystem(store.blob_store())
    assert fs.get_file_info(f"{folder}/model.bin").type == pafs.FileType.NotFound
    assert fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)) == []


def _chunk_count(store: Store) -> int:
    if isinstance(store, pr.MongoDatastore):
        return store._database()["pinnacle_blobs.chunks"].count_documents({})
    with store._engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {CHUNKS_TABLE}")).scalar()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite", "mongo"])
def test_cleanup_removes_a_dead_writers_chunks_when_they_are_older_than_the_threshold(
    backend, tmp_path, request
):
    # A database of its own: cleanup(older_than=0) would also take live writers' chunks.
    if backend == "mongo":
        url = request.getfixturevalue("mongo_uri").replace(
            "/pinnacle_test?", f"/orphans_{uuid.uuid4().hex[:8]}?"
        )
        store = pr.connect(url)
    else:
        url = f"sqlite:///{tmp_path / 'blobs.db'}"
        store = pr.connect(url, artifact_root="pinnacle-db://artifacts")
    done = _python(
        f"""
        import os, signal
        import pinnacle_ray as pr
        store = pr.connect({url!r}, artifact_root="pinnacle-db://artifacts")
        out = store.blob_store().open_write("artifacts/m/0123/model/w.bin")
        out.write(os.urandom(9 << 20))  # two chunks stored, then killed before close()
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        {},
        check=False,
    )
    assert "written" in done.stdout, done.stderr[-2000:]
    assert store.blob_store().list("artifacts") == []
    assert _chunk_count(store) == 2
    store.models.cleanup(older_than=3600)  # too young: may be a live writer's
    assert _chunk_count(store) == 2
    store.models.cleanup(older_than=0)
    assert _chunk_count(store) == 0


@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_an_aborted_write_leaves_neither_file_nor_chunks_when_it_fails_midway(db):
    store, _ = db
    blobs = store.blob_store()
    path = f"tests/{uuid.uuid4().hex}/w.bin"
    writer = blobs.open_write(path)
    with pytest.raises(RuntimeError, match="disk on fire"), writer as out:
        out.write(os.urandom(blobs.chunk_bytes + 10))  # one chunk stored
        raise RuntimeError("disk on fire")
    assert blobs.stat(path) is None
    if isinstance(store, pr.SqlDatastore):
        with store._engine.connect() as conn:
            left = conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {CHUNKS_TABLE} WHERE content_id = :c"),
                {"c": writer.content_id},
            ).scalar()
        assert writer.content_id and left == 0
    else:
        chunks = store._database()["pinnacle_blobs.chunks"]
        left = chunks.count_documents({"files_id": writer.content_id})
        assert writer.content_id is not None and left == 0


@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_registration_leaves_nothing_visible_when_a_checkpoint_folder_fails_to_upload(db, tmp_path):
    store, _ = db
    name = _name()
    model = _saved(tmp_path / "m", _module())
    empty = tmp_path / "ckpt"
    empty.mkdir()  # refused only after the model folder was uploaded
    spec = pr.registry.CheckpointSpec(str(empty), step=1)
    with pytest.raises(pr.RegistryError, match="holds no files"):
        store.models.register(name, "torch", model, checkpoints={"best": spec})
    assert store.blob_store().list(f"artifacts/{name}") == []
    with pytest.raises(pr.ModelNotFound):
        store.models.get(name)


# -- integrity and safety ----------------------------------------------------------------------
@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_loading_fails_with_checksum_mismatch_when_a_stored_file_was_changed(db, tmp_path):
    store, _ = db
    name = _name()
    try:
        version = store.models.register(name, "torch", _saved(tmp_path / "m", _module()))
        target = version.artifact_uri.removeprefix("pinnacle-db://") + "/model.safetensors"
        with store.blob_store().open_write(target) as out:
            out.write(b"tampered")
        with pytest.raises(pr.ChecksumMismatch, match=r"model\.safetensors"):
            store.models.load(name)
    finally:
        _forget(store, name)


@pytest.mark.parametrize("backend", ["postgresql", "mongo"])
def test_a_version_under_the_old_default_folder_loads_when_the_new_default_is_in_the_database(
    backend, tmp_path, monkeypatch, request
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the old default lived under HOME
    url = _url(backend, request)
    if backend == "mongo":
        from pinnacle_ray.datastore.mongo.store import _parse

        database, host, _ = _parse(url)
        place = sa.engine.URL.create("mongodb", host=host, database=database)
    else:
        place = make_url(url)
    old_root = legacy_artifact_root(place)
    assert old_root is not None and old_root.startswith(str(tmp_path / "home"))
    name, module, frame = _name(), _module(seed=2), _frame()
    old = pr.connect(url, artifact_root=old_root)
    try:
        version = old.models.register(name, "torch", _saved(tmp_path / "m", module))
        assert version.artifact_uri.startswith(old_root + "/")
        new = pr.connect(url)
        assert new.artifact_root == "pinnacle-db://artifacts"
        np.testing.assert_allclose(
            new.models.load(name).predict(frame), _predicted(module, frame), rtol=1e-6
        )
    finally:
        _forget(old, name)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_row_pointing_outside_the_roots_is_refused_when_the_default_is_in_the_database(
    db, tmp_path
):
    store, _ = db
    name = _name()
    outside = tmp_path / "elsewhere"
    other = pr.connect(PG_URL, artifact_root=outside)
    try:
        other.models.register(name, "torch", _saved(tmp_path / "m", _module()))
        with pytest.raises(pr.UnsafeArtifact, match="outside the artifact root"):
            store.models.load(name)
    finally:
        _forget(other, name)


def test_no_password_reaches_rows_uris_or_logs_when_the_url_carries_one(tmp_path, caplog):
    url = make_url(PG_URL).set(password="s3cret-pw")
    try:
        store = pr.connect(url.render_as_string(hide_password=False))
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! PostgreSQL refuses a password here ({exc}); SKIPPED")
    name = _name()
    caplog.set_level(logging.DEBUG, logger="pinnacle_ray")
    try:
        version = store.models.register(name, "torch", _saved(tmp_path / "m", _module()))
        storage = store.models.run_storage()
        texts = [
            version.artifact_uri,
            store.artifact_root,
            repr(store.models),
            repr(store.blob_store()),
            str(storage),
            caplog.text,
        ]
        assert not [t for t in texts if "s3cret-pw" in t]
        store.models.load(name)  # the pickled filesystem reconnects with the password
        reloaded = pickle.loads(pickle.dumps(storage.storage_filesystem))
        assert reloaded.get_file_info(
            version.artifact_uri.removeprefix("pinnacle-db://") + "/model.safetensors"
        ).is_file
    finally:
        _forget(store, name)


# -- Ray Train's run storage -------------------------------------------------------------------
def test_run_storage_keeps_rays_local_default_when_the_store_is_sqlite(tmp_path):
    assert pr.connect(tmp_path / "shop.db").models.run_storage() == RunStorage(None, None, False)
    local = pr.connect(tmp_path / "shop.db", artifact_root=tmp_path / "art")
    assert local.models.run_storage() == RunStorage(None, None, False)


def test_run_storage_is_the_shared_folder_when_the_root_is_a_file_uri(tmp_path):
    store = pr.connect(tmp_path / "shop.db", artifact_root=f"file://{tmp_path}/shared")
    storage = store.models.run_storage()
    assert storage.shared
    assert isinstance(storage.storage_filesystem, pafs.LocalFileSystem)
    assert storage.storage_path == f"{tmp_path}/shared/_ray_train"


@pytest.mark.parametrize("db", DB_BACKENDS, indirect=True)
def test_run_storage_goes_through_the_database_when_the_root_is_the_default(db):
    store, _ = db
    storage = store.models.run_storage()
    assert storage.shared and storage.storage_path == "ray-train"
    assert storage.storage_filesystem.type_name == "py::pinnacle-db"
    fs = pickle.loads(pickle.dumps(storage.storage_filesystem))  # as Ray ships it to workers
    path = f"ray-train/{uuid.uuid4().hex}/probe"
    with fs.open_output_stream(path) as out:
        out.write(b"probe")
    try:
        with storage.storage_filesystem.open_input_stream(path) as f:
            assert f.read() == b"probe"
    finally:
        fs.delete_dir(path.rsplit("/", 1)[0])


def test_run_storage_is_the_bucket_path_when_the_root_is_s3(tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # from_uri honours AWS_ENDPOINT_URL (the S3FileSystem() constructor does not).
        bucket_fs, _ = pafs.FileSystem.from_uri("s3://models?allow_bucket_creation=true")
        bucket_fs.create_dir("models")
        store = pr.connect(tmp_path / "shop.db", artifact_root="s3://models/team")
        storage = store.models.run_storage()
        assert storage.shared and storage.storage_path == "models/team/_ray_train"
        assert isinstance(storage.storage_filesystem, pafs.S3FileSystem)
        name = _name()
        store.models.register(name, "torch", _saved(tmp_path / "m", _module()))
        listed = storage.storage_filesystem.get_file_info(
            pafs.FileSelector(f"models/team/{name}", recursive=True)
        )
        assert any(i.path.endswith("/model/model.safetensors") for i in listed)
        assert store.models.load(name) is not None
        # What Ray ships to workers keeps the endpoint, whatever their environment says.
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        shipped = pickle.loads(pickle.dumps(storage.storage_filesystem))
        assert shipped.get_file_info("models/team").type == pafs.FileType.Directory
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _report_checkpoint(config: dict) -> None:
    import tempfile

    import ray.train

    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, f"rank{rank}.bin").write_bytes(config["payload"] + bytes([rank]))
        ray.train.report(
            {"step": 1, "rank": rank}, checkpoint=ray.train.Checkpoint.from_directory(folder)
        )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("db", ["postgresql", "mongo"], indirect=True)
def test_ray_train_checkpoints_read_back_when_run_storage_is_the_database(db, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    assert ray.is_initialized()
    store, _ = db
    storage = store.models.run_storage()
    payload = os.urandom(5 * MiB)  # more than one chunk per file
    run_name = f"run-{uuid.uuid4().hex[:10]}"
    trainer = DataParallelTrainer(
        _report_checkpoint,
        train_loop_config={"payload": payload},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage.storage_path,
            storage_filesystem=storage.storage_filesystem,
        ),
    )
    fs = storage.storage_filesystem
    try:
        result = trainer.fit()
        assert result.error is None
        checkpoint = result.checkpoint
        assert checkpoint.path.startswith(f"ray-train/{run_name}/")
        folder = Path(checkpoint.to_directory(str(tmp_path / "back")))
        assert sorted(p.name for p in folder.iterdir()) == ["rank0.bin", "rank1.bin"]
        assert (folder / "rank1.bin").read_bytes() == payload + b"\x01"
        stored = store.blob_store().list(f"ray-train/{run_name}")
        assert any(e.path.endswith("/rank0.bin") and e.size == len(payload) + 1 for e in stored)
    finally:
        if fs.get_file_info(f"ray-train/{run_name}").type != pafs.FileType.NotFound:
            fs.delete_dir(f"ray-train/{run_name}")
