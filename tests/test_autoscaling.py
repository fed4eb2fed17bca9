"""Planning on an autoscaling cluster (Ray's fake multi-node provider: real raylets launched
on this machine when the autoscaler asks). The head has no CPUs and every worker type starts
at 0 nodes, as in cluster_configs/: a fit goes ahead and waits for the scale-up, a GPU type
at 0 nodes makes ``use_gpu=True`` go ahead, and a worker no node type can hold is refused
within seconds, naming the node types.

Each scenario runs as a driver process joined to that cluster (the test session's own Ray
stays untouched); data is a SQLite file with a ``file://`` artifact root, which the fake
nodes share since they run on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from ray_autoscaling import start_autoscaling_head

pytestmark = pytest.mark.timeout(600)

WORKER_TYPES = {
    "cpu_worker": {"resources": {"CPU": 2}, "min_workers": 0, "max_workers": 2},
    # No CPU on the GPU type: the autoscaler never adds it for CPU work, so each scenario
    # sees the CPUs it expects whatever the one before it left running.
    "gpu_worker": {"resources": {"CPU": 0, "GPU": 1}, "min_workers": 0, "max_workers": 1},
}


@pytest.fixture(scope="module")
def cluster():
    cluster = start_autoscaling_head(WORKER_TYPES, max_workers=3)
    yield cluster
    cluster.stop()


def drive(cluster, tmp_path, code: str, timeout: float = 400) -> tuple[dict, str]:
    """Run ``code`` as a driver joined to ``cluster``; it prints one JSON line.
    Returns that JSON and the driver's stderr (where the plan's one line goes)."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Ray's own lines (e.g. "(autoscaler +4s) Adding 1 node(s)...") may come after ours.
    ours = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert ours, proc.stdout[-3000:]
    return json.loads(ours[-1]), proc.stderr


def test_use_gpu_goes_ahead_and_a_gpu_node_is_added_when_the_gpu_type_is_at_zero(cluster, tmp_path):
    result, _ = drive(
        cluster,
        tmp_path,
        """
        import json, ray
        from ray.train import ScalingConfig
        from pinnacle_ray._internal.runtime import ensure_ray
        from pinnacle_ray.trainers.base import plan_for

        ensure_ray()
        gpus_before = ray.cluster_resources().get("GPU", 0)
        plan = plan_for(ScalingConfig(num_workers=1, use_gpu=True))

        @ray.remote(num_gpus=1, num_cpus=0)
        def where():
            return ray.get_runtime_context().get_node_id()

        node = ray.get(where.remote(), timeout=180)  # the autoscaler adds a gpu_worker
        gpus = [n["Resources"].get("GPU", 0) for n in ray.nodes() if n["NodeID"] == node]
        print(json.dumps({"note": plan.note, "gpus_before": gpus_before, "gpus": gpus}))
        """,
    )
    assert result["gpus_before"] == 0
    assert "waits for the autoscaler to add gpu_worker {CPU: 0, GPU: 1}" in result["note"]
    assert result["gpus"] == [1.0]


def test_two_worker_fit_finishes_after_the_scale_up_when_the_head_has_no_cpus(cluster, tmp_path):
    result, stderr = drive(
        cluster,
        tmp_path,
        """
        import json, os, numpy as np, pyarrow as pa, ray, torch
        from ray.train import ScalingConfig
        import pinnacle_ray as pr
        from pinnacle_ray._internal.runtime import ensure_ray

        ensure_ray()  # joins the cluster in RAY_ADDRESS
        store = pr.connect("sqlite:///points.db", artifact_root=f"file://{os.getcwd()}/art")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(400, 2))
        store.write("points", pa.table({"id": np.arange(400), "a": x[:, 0], "b": x[:, 1],
                                         "y": x @ np.array([2.0, -1.0])}), key="id")
        cpus_before = ray.cluster_resources().get("CPU", 0)
        trainer = pr.TorchTrainer(model=torch.nn.Linear(2, 1), objective="mse",
                                  features=["a", "b"], label="y", optimizer_cls="Adam",
                                  optimizer_kwargs={"lr": 0.05}, batch_size=50, max_iterations=20,
                                  scaling_config=ScalingConfig(num_workers=2), name="scaled")
        result = trainer.fit(train=store.table("points"))
        types = sorted(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"])
        print(json.dumps({"version": result.version, "cpus_before": cpus_before,
                          "node_cpus": types, "registered": store.models.get("scaled").version}))
        """,
    )
    assert result["cpus_before"] == 0
    assert result["version"] == result["registered"] == 1
    assert max(result["node_cpus"]) == 2  # a cpu_worker node was added
    waits = [line for line in stderr.splitlines() if "waits for the autoscaler" in line]
    assert len(waits) == 1, stderr[-3000:]
    assert "the nodes up hold 0 of 2 worker(s) of {CPU: 1}" in waits[0]
    assert "cpu_worker {CPU: 2}" in waits[0]


def test_a_worker_no_node_type_can_hold_is_refused_within_seconds_naming_the_types(
    cluster, tmp_path
):
    result, _ = drive(
        cluster,
        tmp_path,
        """
        import json, time, ray
        from ray.train import ScalingConfig
        import pinnacle_ray as pr
        from pinnacle_ray._internal.runtime import ensure_ray

        def loop():
            pass

        ensure_ray()
        trainer = pr.TorchTrainer(loop, name="too-big",
                                  scaling_config=ScalingConfig(num_workers=1,
                                                               resources_per_worker={"CPU": 4}))
        started = time.monotonic()
        try:
            trainer.fit(train=ray.data.range(10), register=False)
        except pr.ResourceError as e:
            print(json.dumps({"error": str(e), "seconds": time.monotonic() - started}))
        """,
    )
    assert result["seconds"] < 10
    assert "one worker needs {CPU: 4} on a single node, but no node can hold it" in result["error"]
    assert (
        "cpu_worker {CPU: 2}" in result["error"]
        and "gpu_worker {CPU: 0, GPU: 1}" in result["error"]
    )
