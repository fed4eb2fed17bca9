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
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def scenario(fn: Callable[[dict[str, Any]], dict[str, Any]]):
    SCENARIOS[fn.__name__] = fn
    return fn


def connect() -> None:
    """Join the cluster at ``PRT_GCS`` as a driver. Train loops defined under tests/ import
    in the workers of every node: the nodes have tests/ on their PYTHONPATH (the checkout
    is the code image all nodes share; ``ray_cluster.code_image_env``)."""
    ray.init(address=os.environ["PRT_GCS"], logging_level="WARNING")


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


def actor_labels(labels: list[str]) -> dict[str, list[str]]:
    """Per actor class of this job: the labels of the nodes its actors ran on (alive or
    dead), e.g. ``{"RayTrainWorker": ["node_a", "node_b"]}``."""
    from ray.util.state import list_actors

    label_of = {node_id: label for label, node_id in node_ids(labels).items()}
    job = ray.get_runtime_context().get_job_id()
    found: dict[str, set[str]] = {}
    for actor in list_actors(filters=[("job_id", "=", job)], limit=10_000, detail=True):
        node = label_of.get(actor.node_id or "", actor.node_id or "?")
        found.setdefault(actor.class_name, set()).add(node)
    return {name: sorted(nodes) for name, nodes in found.items()}


@ray.remote(num_cpus=0)
def _predict_on_node(url: str, name: str, rows: dict[str, list], connect_args: dict) -> dict:
    """Load the registered model on this node (its own disk holds nothing of it) and
    predict ``rows``; returns the node id and the predictions."""
    import pandas as pd

    import pinnacle_ray as pr

    store = pr.connect(url, **connect_args)
    values = store.models.load(name).predict(pd.DataFrame(rows))
    return {"node_id": ray.get_runtime_context().get_node_id(), "values": _plain(values)}


def _plain(values: Any) -> list:
    import numpy as np

    return np.asarray(values).reshape(len(values), -1).tolist() if len(values) else []


def _store(args: dict[str, Any]):
    import pinnacle_ray as pr

    return pr.connect(args["url"], **args.get("connect", {}))


def _linear(args: dict[str, Any], **kw: Any):
    import torch
    from multinode_loops import FEATURES
    from ray.train import ScalingConfig

    import pinnacle_ray as pr

    torch.manual_seed(0)
    settings = {
        "model": torch.nn.Sequential(torch.nn.Linear(4, 1)),
        "objective": "mse",
        "features": FEATURES,
        "label": "y",
        "optimizer_kwargs": {"lr": 0.1},
        "batch_size": 64,
        "epochs": 2,
        "scaling_config": ScalingConfig(num_workers=2),
        "name": args["name"],
    }
    return pr.TorchTrainer(**(settings | kw))


def _trainer(args: dict[str, Any]):
    """The trainer of ``args["kind"]``, default settings, two workers where it has workers."""
    from ray.train import ScalingConfig

    import pinnacle_ray as pr

    kind, name, features = args["kind"], args["name"], args.get("features")
    if kind == "torch":
        return _linear(args)
    if kind == "xgboost":
        return pr.XGBoostTrainer(
            params={"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3},
            features=features,
            label="target",
            num_boost_round=10,
            scaling_config=ScalingConfig(num_workers=2),
            name=name,
        )
    if kind == "sklearn":
        from sklearn.linear_model import Ridge

        return pr.SklearnTrainer(Ridge(alpha=1.0), features=features, label="target", name=name)
    if kind == "huggingface":
        return pr.HuggingFaceTrainer(
            model=args["base_model"],
            text_column="text",
            label="label",
            training_args={
                "num_train_epochs": 1,
                "per_device_train_batch_size": 16,
                "learning_rate": 5e-3,
                "logging_steps": 2,
                "warmup_steps": 0,
            },
            max_length=16,
            scaling_config=ScalingConfig(num_workers=2),
            name=name,
        )
    raise ValueError(f"unknown kind {kind!r}")


def _tiny_base_model() -> str:
    """A tiny BERT (built from a config, no download) in a temp folder of the driver's
    machine only: the trainer must bring it to workers on other nodes itself."""
    import torch
    from text_data import tiny_bert

    folder = Path(tempfile.mkdtemp(prefix="prt_tiny_bert_"))
    torch.manual_seed(0)
    tiny_bert(folder)
    return str(folder)


@scenario
def fit(args: dict[str, Any]) -> dict[str, Any]:
    """One fit of ``kind`` on the table ``train`` (valid rows where the data has them), then
    the registered model loaded and used on the worker node."""
    if args["kind"] == "huggingface":
        args["base_model"] = _tiny_base_model()
    store = _store(args)
    where = args.get("where")
    train = store.table(args["train"], where=where) if where else store.table(args["train"])
    started = time.monotonic()
    try:
        result = _trainer(args).fit(train=train)
    finally:
        if "base_model" in args:
            shutil.rmtree(args["base_model"])
    seconds = time.monotonic() - started
    ids = node_ids(args["labels"])
    on_worker = ray.get(
        _predict_on_node.options(scheduling_strategy=on(ids["node_b"])).remote(
            args["url"], args["name"], args["rows"], args.get("connect", {})
        )
    )
    return {
        "version": result.version,
        "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))},
        "actors": actor_labels(args["labels"]),
        "worker_node_predictions": on_worker["values"],
        "predicted_on": on_worker["node_id"],
        "node_b": ids["node_b"],
        "seconds": seconds,
    }


@scenario
def sweep(args: dict[str, Any]) -> dict[str, Any]:
    """A two-trial grid sweep of the two-worker torch fit (default settings: each trial's
    workers on both nodes), the best trial registered, loaded on the worker node."""
    from ray import tune

    import pinnacle_ray as pr

    store = _store(args)
    trainer = _linear(args, epochs=1)
    result = pr.sweep(
        trainer,
        {"optimizer_kwargs__lr": tune.grid_search([0.1, 0.001])},
        train=store.table(args["train"]),
        metric="valid/loss",
        mode="min",
        name=args["name"] + "-sweep",
    )
    ids = node_ids(args["labels"])
    on_worker = ray.get(
        _predict_on_node.options(scheduling_strategy=on(ids["node_b"])).remote(
            args["url"], args["name"], args["rows"], {}
        )
    )
    return {
        "version": result.version,
        "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))},
        "actors": actor_labels(args["labels"]),
        "worker_node_predictions": on_worker["values"],
    }


@scenario
def predict(args: dict[str, Any]) -> dict[str, Any]:
    """pr.predict of a registered model over a table, default concurrency (one actor per CPU).
    Batches of 64 rows: the pool is capped at one actor per batch, so a small table in one
    default batch would start a single actor and never reach the second node."""
    import pinnacle_ray as pr

    store = _store(args)
    out = pr.predict(args["name"], store.table(args["train"]), output=args["output"], batch_size=64)
    return {"rows": out.rows, "version": out.version, "actors": actor_labels(args["labels"])}


@scenario
def resume(args: dict[str, Any]) -> dict[str, Any]:
    """A one-worker fit pinned to the worker node, then ``resume_from=`` it, pinned to the
    head: the second run starts from the first's weights, optimizer and step."""
    from ray.train import ScalingConfig

    store = _store(args)
    train = store.table(args["train"])

    def pinned(label: str) -> ScalingConfig:
        return ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1, label: 0.5})

    first = _linear(args, scaling_config=pinned("node_b"), epochs=1).fit(train=train)
    second = _linear(args, scaling_config=pinned("node_a"), epochs=2).fit(
        train=train, resume_from=args["name"]
    )
    version = store.models.get(args["name"], version=second.version)
    return {
        "first": {
            "version": first.version,
            "step": first.metrics["step"],
            "epoch": first.metrics["epoch"],
        },
        "second": {
            "version": second.version,
            "step": second.metrics["step"],
            "epoch": second.metrics["epoch"],
        },
        "parent": version.parent_version,
        "actors": actor_labels(args["labels"]),
    }


@scenario
def node_loss(args: dict[str, Any]) -> dict[str, Any]:
    """A two-worker fit whose worker node dies after epoch 1's checkpoint: prints ``READY``
    once the workers wait to be killed; the test kills the node and adds another."""
    import threading

    from multinode_loops import Signal, node_loss_loop
    from ray.train import FailureConfig, RunConfig, ScalingConfig

    import pinnacle_ray as pr

    store = _store(args)
    signal = Signal.options(scheduling_strategy=on(node_ids(args["labels"])["node_a"])).remote()

    def announce() -> None:
        while not (raised := ray.get(signal.get.remote())):
            time.sleep(0.2)
        print("READY " + json.dumps(raised), flush=True)

    threading.Thread(target=announce, daemon=True).start()
    trainer = pr.TorchTrainer(
        node_loss_loop,
        train_loop_config={"signal": signal},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(failure_config=FailureConfig(max_failures=2)),
        name=args["name"],
    )
    result = trainer.fit(train=store.table(args["train"]))
    return {
        "version": result.version,
        "metrics": dict(result.metrics),
        "versions": [v.version for v in store.models.list(args["name"])],
    }


@scenario
def refused(args: dict[str, Any]) -> dict[str, Any]:
    """A fit from a SQLite store while the cluster has another node: the error and how long
    it took to come."""
    import pyarrow as pa
    from multinode_loops import points

    import pinnacle_ray as pr

    store = pr.connect(args["sqlite"])
    store.write("points", pa.table(points(200)), key="id")
    started = time.monotonic()
    try:
        _linear(args).fit(train=store.table("points"))
    except pr.PinnacleError as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "seconds": time.monotonic() - started,
        }
    return {"error": None, "seconds": time.monotonic() - started}


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
