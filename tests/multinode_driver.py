"""Driver programs for the multi-node tests, each run in its own process against the simulated
cluster (``python multinode_driver.py <scenario> '<json args>'``): the test process keeps its
own session-wide local Ray, and a driver joins the cluster with ``ray.init(address=...)`` as a
user's script or ``ray job submit`` entrypoint would.

Each scenario prints one line ``RESULT <json>`` that the test reads; anything else on stdout
or stderr is Ray's and the library's logging, shown when a test fails.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

TESTS = Path(__file__).parent
SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def scenario(fn: Callable[[dict[str, Any]], dict[str, Any]]):
    SCENARIOS[fn.__name__] = fn
    return fn


def connect() -> None:
    """Join the cluster at ``PRT_GCS`` as a driver; train loops defined under tests/ import
    in the workers of every node (the checkout is the code image all nodes share)."""
    from pinnacle_ray._quiet_logging import worker_env

    ray.init(
        address=os.environ["PRT_GCS"],
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS), **worker_env()}},
    )


def node_ids(labels: list[str], timeout: float = 60) -> dict[str, str]:
    """Node id per custom-resource label, once every label's node is alive in the GCS."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            label: node["NodeID"]
            for node in ray.nodes()
            if node["Alive"]
            for label in labels
            if label in node["Resources"]
        }
        if len(found) == len(labels) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def on(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


@ray.remote(num_cpus=0)
def _touch_and_look(tag: str, token: str, others: list[str]) -> dict[str, Any]:
    """On one node: which of the other nodes' files it sees (under its home and its temp
    folder), after writing its own; its own earlier files must stay visible to it."""
    mine = [
        Path.home() / f".prt_iso_{token}_{tag}",
        Path(tempfile.gettempdir()) / f"prt_iso_{token}_{tag}",
    ]
    existed = [p.exists() for p in mine]
    for p in mine:
        p.write_text(tag)
    seen = [
        str(p)
        for other in others
        for p in (
            Path.home() / f".prt_iso_{token}_{other}",
            Path(tempfile.gettempdir()) / f"prt_iso_{token}_{other}",
        )
        if p.exists()
    ]
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "home": str(Path.home()),
        "tmp": tempfile.gettempdir(),
        "own_before": existed,
        "seen_foreign": seen,
    }


@scenario
def isolation(args: dict[str, Any]) -> dict[str, Any]:
    """Files written by the driver, the head and the worker node: each sees only its own."""
    ids = node_ids(args["labels"])
    head, worker = (ids.get(label) for label in args["labels"])
    if head is None or worker is None:
        return {"nodes": ids, "error": "not every node joined within 60 s"}
    token = uuid.uuid4().hex[:12]
    driver = [
        Path.home() / f".prt_iso_{token}_driver",
        Path(tempfile.gettempdir()) / f"prt_iso_{token}_driver",
    ]
    for p in driver:
        p.write_text("driver")
    try:
        first_head = ray.get(
            _touch_and_look.options(scheduling_strategy=on(head)).remote("head", token, ["driver"])
        )
        first_worker = ray.get(
            _touch_and_look.options(scheduling_strategy=on(worker)).remote(
                "worker", token, ["driver", "head"]
            )
        )
        second_head = ray.get(
            _touch_and_look.options(scheduling_strategy=on(head)).remote("head", token, ["worker"])
        )
        driver_seen = [
            str(p)
            for other in ("head", "worker")
            for p in (
                Path.home() / f".prt_iso_{token}_{other}",
                Path(tempfile.gettempdir()) / f"prt_iso_{token}_{other}",
            )
            if p.exists()
        ]
    finally:
        for p in driver:
            p.unlink()
    return {
        "nodes": ids,
        "head": [first_head, second_head],
        "worker": first_worker,
        "driver_seen_foreign": driver_seen,
    }


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    connect()
    try:
        result = SCENARIOS[name](args)
    finally:
        ray.shutdown()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
