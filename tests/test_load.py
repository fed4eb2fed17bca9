"""Load held: the registry, prediction write-back and training under concurrent or
oversized work, on real databases and a real local Ray.

Each test prints its figures (``-s`` shows them); README's "What we test" table quotes them.
"""

from __future__ import annotations

import multiprocessing.pool
import time
from collections.abc import Iterator

import pytest
from registry_race import racing_pool, register_many

import pinnacle_ray as pr

PROCESSES, REGISTRATIONS = 8, 20


@pytest.fixture(scope="module")
def pool() -> Iterator[multiprocessing.pool.Pool]:
    """Eight spawned processes whose tasks start at the same moment."""
    with racing_pool(PROCESSES) as p:
        yield p


def _url(store, backend: str) -> str:
    return store._uri if backend == "mongo" else store._url.render_as_string(hide_password=False)


@pytest.mark.slow
@pytest.mark.with_mongo
@pytest.mark.timeout(240)
def test_versions_are_1_to_160_without_gaps_when_8_processes_register_20_each(
    store, backend, tables, tmp_path, pool
):
    for name in ("models", "checkpoints", "registry_meta"):
        tables(f"pinnacle_{name}")  # dropped after the test
    prefix = f"{tables.prefix}_pinnacle"
    artifact = tmp_path / "tiny"
    artifact.mkdir()
    (artifact / "weights.bin").write_bytes(b"\x00" * 64)
    job = (_url(store, backend), prefix, str(tmp_path / "art"), str(artifact), REGISTRATIONS)
    started = time.perf_counter()
    results = pool.starmap(register_many, [job] * PROCESSES)
    seconds = time.perf_counter() - started
    versions = sorted(v for r in results for v in r.versions)
    listed = pr.ModelRegistry(store, prefix=prefix, artifact_root=tmp_path / "art").list("m")
    print(
        f"\n[load] registry {backend}: {PROCESSES} processes x {REGISTRATIONS} registrations -> "
        f"{len(set(versions))} distinct versions {versions[0]}..{versions[-1]}, "
        f"{sum(r.retries for r in results)} retries, {seconds:.1f} s"
    )
    total = PROCESSES * REGISTRATIONS
    assert versions == list(range(1, total + 1))
    assert sorted(v.version for v in listed) == list(range(1, total + 1))
