"""Multi-node scenarios on a simulated two-node Ray cluster (issue 19): a head and a worker
node, one CPU each (one training worker per node), each in its own mount namespace with a
private home and /tmp, so nothing one node writes to its disk is visible to the other; only
the database (PostgreSQL, the Mongo stand-in) and the local S3 server are shared.

One cluster serves the whole module. Each scenario's driver runs in its own process
(``multinode_driver.py``) joined to the cluster, as a user's script would; the test process
keeps its session-wide local Ray untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from multinode_s3 import LocalS3
from ray_cluster import LocalCluster, WorkerNode, start_head, start_worker_node

DRIVER = Path(__file__).with_name("multinode_driver.py")
LABELS = ["node_a", "node_b"]  # the head's and the worker node's custom resource


@dataclass
class TwoNodes:
    """The module's cluster: ``head`` (1 CPU, ``node_a``) and ``worker`` (1 CPU,
    ``node_b``); ``isolation`` is what the start-up check saw."""

    head: LocalCluster
    worker: WorkerNode
    isolation: dict[str, Any]


def drive(cluster: TwoNodes, scenario: str, cwd: Path, timeout: float = 240, **args: Any) -> dict:
    """Run one driver scenario against the cluster in a fresh process; its ``RESULT``."""
    proc = subprocess.run(
        [sys.executable, str(DRIVER), scenario, json.dumps(args)],
        env={**cluster.head.env, "PRT_GCS": cluster.head.gcs_address},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"driver {scenario} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
            f"\n--- stderr\n{proc.stderr[-10000:]}",
            pytrace=False,
        )
    return json.loads(lines[-1][len("RESULT ") :])


def _isolation_failures(seen: dict[str, Any]) -> list[str]:
    """What the isolation probe saw that separate machines would not."""
    problems = []
    if set(seen.get("nodes", {})) != set(LABELS) or "error" in seen:
        return [f"nodes did not join: {seen}"]
    head_first, head_second = seen["head"]
    if {head_first["node_id"], head_second["node_id"]} != {seen["nodes"]["node_a"]}:
        problems.append(f"head tasks ran elsewhere: {seen['head']}")
    if seen["worker"]["node_id"] != seen["nodes"]["node_b"]:
        problems.append(f"the worker-node task ran elsewhere: {seen['worker']}")
    for who, report in (("head", head_first), ("head", head_second), ("worker", seen["worker"])):
        if report["seen_foreign"]:
            problems.append(f"{who} sees files of other nodes: {report['seen_foreign']}")
    if seen["driver_seen_foreign"]:
        problems.append(f"the driver sees files of the nodes: {seen['driver_seen_foreign']}")
    if head_second["own_before"] != [True, True]:
        problems.append("the head lost its own files between two tasks (the probe is broken)")
    return problems


@pytest.fixture(scope="module")
def cluster(s3_server: LocalS3) -> Iterator[TwoNodes]:
    """Head + one worker node, isolated, with the S3 server's variables in every node's
    environment; refuses to run the module (an error, not a skip) when it cannot isolate."""
    head = start_head(num_cpus=1, isolated=True, resources={"node_a": 1}, env=s3_server.env)
    try:
        worker = start_worker_node(head, num_cpus=1, isolated=True, label="node_b")
        seen = drive(
            TwoNodes(head, worker, {}), "isolation", Path(head.temp_dir), timeout=120, labels=LABELS
        )
        problems = _isolation_failures(seen)
        if problems:
            raise RuntimeError("the simulated nodes are not isolated:\n" + "\n".join(problems))
        yield TwoNodes(head, worker, seen)
    finally:
        head.stop()


@pytest.mark.timeout(180)
def test_a_file_written_on_one_node_is_invisible_to_the_others_when_nodes_are_isolated(cluster):
    seen = cluster.isolation
    assert seen["nodes"]["node_a"] != seen["nodes"]["node_b"]
    assert [r["own_before"] for r in seen["head"]] == [[False, False], [True, True]]
    assert seen["head"][0]["seen_foreign"] == []  # the driver's files, from the head
    assert seen["worker"]["seen_foreign"] == []  # the driver's and the head's files
    assert seen["head"][1]["seen_foreign"] == []  # the worker node's files, from the head
    assert seen["driver_seen_foreign"] == []
    assert {seen["worker"]["home"], seen["worker"]["tmp"]} == {"/root", "/tmp"}
    # The same check, this time from a process started on each node outside Ray.
    marker = Path.home() / f".prt_iso_{cluster.head.temp_dir.name}"
    marker.write_text("host")
    try:
        on_head = cluster.head.run(["ls", "-a", str(Path.home())])
        on_worker = cluster.worker.run(["ls", "-a", str(Path.home())])
    finally:
        marker.unlink()
    assert on_head.returncode == 0 and on_worker.returncode == 0
    assert marker.name not in on_head.stdout and marker.name not in on_worker.stdout
    assert ".pyenv" in on_head.stdout  # the Python installation, bound back
