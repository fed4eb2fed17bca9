"""Checkpoint and model storage throughput: in the database vs a local S3 server vs local disk.

Run with ``./dev bench checkpoint_storage [--sizes 50,400] [--repeats 1] [--only ...]``.

For each model size (a folder holding one random-bytes ``model.safetensors`` plus a small
``config.json``) and each backend, in one run:

- **register** / **load**: ``store.models.register(...)`` (sha256 + upload) and
  ``store.models.checkpoint_dir(...)`` into an empty cache (download + verify; on local disk
  the folder is verified in place, nothing is copied);
- **ckpt save** / **ckpt load**: what Ray Train does with a checkpoint on its run storage,
  ``pyarrow.fs.copy_files`` to and from ``store.models.run_storage()`` (64 MiB copy chunks, as
  Ray passes).

Backends: PostgreSQL and MariaDB (chunked blob tables), MongoDB through the wire-protocol
stand-in (GridFS over mongomock, served from its own process), a local moto S3 server
(``moto_server`` on 127.0.0.1) and local disk (an SQLite store keeping files beside it).
Every server runs on this machine, so the figures compare storage paths, not networks.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import banner, ensure_data_dir

PG_URL = os.environ.get("PINNACLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("PINNACLE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
MiB = 1 << 20
BACKENDS = ["postgresql", "mariadb", "mongo-standin", "s3-moto", "local-disk"]
OPERATIONS = ["register", "load", "ckpt save", "ckpt load"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # a server starting in another process: poll its port
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within 60 s")


@contextmanager
def _process(args: list[str], port: int, what: str) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc, what)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _mongo_standin() -> Iterator[str]:
    port = _free_port()
    code = (
        "import threading; from pinnacle_ray.testing.mongo import MongoStandIn; "
        f"MongoStandIn(port={port}); threading.Event().wait()"
    )
    with _process([sys.executable, "-c", code], port, "the Mongo stand-in"):
        yield (
            f"mongodb://127.0.0.1:{port}/bench?directConnection=true&serverSelectionTimeoutMS=5000"
        )


@contextmanager
def _moto() -> Iterator[str]:
    port = _free_port()
    server = Path(sys.executable).with_name("moto_server")
    with _process([str(server), "-H", "127.0.0.1", "-p", str(port)], port, "moto_server"):
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        bucket_fs, _ = pafs.FileSystem.from_uri("s3://bench?allow_bucket_creation=true")
        bucket_fs.create_dir("bench")
        yield "s3://bench/models"


def _model_folder(root: Path, size_mb: int) -> Path:
    folder = root / f"model-{size_mb}mb"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        with open(folder / "model.safetensors", "wb") as out:
            for _ in range(size_mb):
                out.write(os.urandom(MiB))
        (folder / "config.json").write_text('{"hidden": 1024}')
    return folder


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _measure(store: Any, folder: Path, size_mb: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds per operation on ``store``."""
    import pinnacle_ray as pr

    best: dict[str, float] = {}
    registry = pr.ModelRegistry(store, prefix=f"bench{uuid.uuid4().hex[:6]}")
    for _ in range(repeats):
        for op, seconds in _once(registry, folder, f"bench-{size_mb}mb").items():
            best[op] = min(best.get(op, float("inf")), seconds)
    for table in (registry.tables.models, registry.tables.checkpoints, registry.tables.meta):
        _drop(store, table)
    return best


def _once(registry: Any, folder: Path, name: str) -> dict[str, float]:
    """Seconds for each operation, once, into an empty download cache."""
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ["PINNACLE_RAY_CACHE_DIR"] = str(cache)
    storage = registry.run_storage()
    if storage.storage_filesystem is not None:
        fs, base = storage.storage_filesystem, f"{storage.storage_path}/bench/{uuid.uuid4().hex}"
    else:  # Ray's local default: a folder on this disk
        fs, base = pafs.LocalFileSystem(), str(cache / "ray_results")
    back = cache / "ckpt-back"

    def save() -> None:  # as Ray Train's StorageContext.persist_current_checkpoint
        fs.create_dir(base)
        pafs.copy_files(str(folder), base, destination_filesystem=fs, chunk_size=64 * MiB)

    def load() -> None:  # as ray.train.Checkpoint.to_directory
        back.mkdir(parents=True)
        pafs.copy_files(base, str(back), source_filesystem=fs, chunk_size=64 * MiB)

    try:
        times = {"register": _timed(lambda: registry.register(name, "torch", folder))}
        times["load"] = _timed(lambda: registry.checkpoint_dir(name))
        times["ckpt save"] = _timed(save)
        times["ckpt load"] = _timed(load)
    finally:
        registry.delete(name)
        if fs.get_file_info(base).type != pafs.FileType.NotFound:
            fs.delete_dir(base)
        shutil.rmtree(cache, ignore_errors=True)
    return times


def _drop(store: Any, table: str) -> None:
    import pinnacle_ray as pr

    if isinstance(store, pr.MongoDatastore):
        store.drop(table)
        return
    import sqlalchemy as sa

    with store._engine.begin() as conn:
        conn.execute(sa.schema.DropTable(sa.Table(table, sa.MetaData()), if_exists=True))


@contextmanager
def _store(backend: str, work: Path) -> Iterator[Any]:
    import pinnacle_ray as pr

    os.environ.pop("PINNACLE_RAY_ARTIFACT_ROOT", None)
    if backend == "postgresql":
        yield pr.connect(PG_URL)
    elif backend == "mariadb":
        yield pr.connect(MYSQL_URL)
    elif backend == "mongo-standin":
        with _mongo_standin() as uri:
            yield pr.connect(uri)
    elif backend == "s3-moto":
        with _moto() as root:
            yield pr.connect(work / "s3.db", artifact_root=root)
    else:
        yield pr.connect(work / "local.db")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,400", help="model sizes in MB, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (best is shown)")
    parser.add_argument("--only", default=",".join(BACKENDS), help="backends to run")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b for b in args.only.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {BACKENDS}")

    data = ensure_data_dir() / "checkpoint_storage"
    work = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    print(banner("checkpoint storage throughput (MB/s, higher is better)"))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.node()}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}; best of {args.repeats}; load average "
        f"{os.getloadavg()[0]:.1f} (other work on this machine slows every column alike)"
    )
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for backend in backends:
            with _store(backend, work) as store:
                for size in sizes:
                    folder = _model_folder(data, size)
                    try:
                        results[(backend, size)] = _measure(store, folder, size, args.repeats)
                    except Exception as exc:  # a server missing here: report, keep going
                        print(f"  {backend} {size} MB failed: {type(exc).__name__}: {exc}")
                    else:
                        cells = results[(backend, size)]
                        print(
                            f"  {backend:14s} {size:4d} MB  "
                            + "  ".join(f"{op} {size / cells[op]:7.1f}" for op in OPERATIONS),
                            flush=True,
                        )
                store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print_table(results, sizes, backends)
    return 0


def _print_table(
    results: dict[tuple[str, int], dict[str, float]], sizes: list[int], backends: list[str]
) -> None:
    print()
    header = f"| {'backend':14s} | size | " + " | ".join(f"{op:>9s}" for op in OPERATIONS)
    header += " | ckpt save+load vs local disk |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for size in sizes:
        local = results.get(("local-disk", size))
        for backend in backends:
            cells = results.get((backend, size))
            if cells is None:
                continue
            rates = " | ".join(f"{size / cells[op]:9.1f}" for op in OPERATIONS)
            if local is not None:
                mine = cells["ckpt save"] + cells["ckpt load"]
                ratio = f"{mine / (local['ckpt save'] + local['ckpt load']):.1f}x the time"
            else:
                ratio = "-"
            print(f"| {backend:14s} | {size:4d} | {rates} | {ratio} |")


if __name__ == "__main__":
    raise SystemExit(main())
