"""Resource planning: a run either fits the cluster with room for data reads, or is refused."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import ray
from ray.train import ScalingConfig

import pinnacle_ray as pr
from pinnacle_ray.trainers.resources import ClusterResources, plan_resources


def test_default_workers_on_two_cpus_are_shrunk_to_leave_room_for_reads():
    plan = plan_resources(ScalingConfig(num_workers=2), ClusterResources(cpus=2))
    cpu = plan.scaling_config.resources_per_worker["CPU"]
    assert cpu * 2 + plan.read_cpus <= 2
    assert plan.read_cpus > 0 and plan.note and "0.75" in plan.note


def test_a_run_that_fits_is_left_unchanged():
    scaling = ScalingConfig(num_workers=2)
    plan = plan_resources(scaling, ClusterResources(cpus=8))
    assert plan.scaling_config is scaling and plan.note is None and plan.read_cpus == 1.0


def test_explicit_cpus_that_starve_the_reads_are_refused_with_a_fix():
    scaling = ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1})
    with pytest.raises(pr.ResourceError, match=r"wait forever.*resources_per_worker"):
        plan_resources(scaling, ClusterResources(cpus=2))


def test_more_cpus_than_the_cluster_has_are_refused_naming_both_numbers():
    scaling = ScalingConfig(num_workers=16, resources_per_worker={"CPU": 4})
    with pytest.raises(pr.ResourceError, match=r"64 CPUs requested.*has 2"):
        plan_resources(scaling, ClusterResources(cpus=2))


def test_gpus_that_do_not_exist_are_refused():
    with pytest.raises(pr.ResourceError, match=r"2 GPU\(s\) requested.*has 0"):
        plan_resources(ScalingConfig(num_workers=2, use_gpu=True), ClusterResources(cpus=2))


def test_too_many_workers_for_any_useful_share_are_refused():
    with pytest.raises(pr.ResourceError, match="fewer workers"):
        plan_resources(ScalingConfig(num_workers=40), ClusterResources(cpus=2))


def test_without_reads_the_whole_cluster_goes_to_workers():
    plan = plan_resources(ScalingConfig(num_workers=2), ClusterResources(cpus=2), reads=False)
    assert plan.note is None


NO_CPU = (
    "Warning: The Ray cluster currently does not have any available CPUs. The Dataset job "
    "will hang unless more CPUs are freed up."
)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("ray.data.dataset", logging.WARNING, __file__, 1, message, (), None)


@pytest.mark.data
def test_ray_datas_no_cpu_warning_filter_is_installed_when_pinnacle_starts_ray():
    # In a fresh process: here Ray may already have been started by another test, and a Ray
    # someone else started keeps its loggers as they are.
    code = (
        "import logging\n"
        "from pinnacle_ray._internal.runtime import _NoCpuFalseAlarm, ensure_ray\n"
        "ensure_ray()\n"
        "filters = logging.getLogger('ray.data.dataset').filters\n"
        "print('installed', any(isinstance(f, _NoCpuFalseAlarm) for f in filters))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "installed True" in done.stdout, done.stdout[-2000:]


@pytest.mark.data
def test_ray_datas_no_cpu_warning_is_dropped_when_cpus_are_free():
    from pinnacle_ray._internal.runtime import _NoCpuFalseAlarm, ensure_ray

    ensure_ray()
    assert ray.available_resources().get("CPU")
    assert _NoCpuFalseAlarm().filter(_record(NO_CPU)) is False
    assert _NoCpuFalseAlarm().filter(_record("Some other Ray Data warning")) is True


def test_ray_datas_no_cpu_warning_stays_when_no_cpu_frees_up(monkeypatch):
    from pinnacle_ray._internal.runtime import _NoCpuFalseAlarm

    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 0.0})
    assert _NoCpuFalseAlarm().filter(_record(NO_CPU)) is True


# -- per node, with the autoscaler's node types (pure: fake shapes, no Ray) ----------------
from pinnacle_ray.trainers.resources import ClusterShape, NodeType  # noqa: E402

HEAD_NO_CPU = {"CPU": 0.0, "memory": 8e9, "node:__internal_head__": 1.0}


def test_two_workers_go_ahead_and_wait_when_the_head_has_no_cpu_and_workers_start_at_zero(
    caplog,
):
    shape = ClusterShape(
        nodes=(HEAD_NO_CPU,),
        node_types=(NodeType("cpu_worker", {"CPU": 2.0}, can_add=2),),
        autoscaling=True,
    )
    scaling = ScalingConfig(num_workers=2)
    plan = plan_resources(scaling, shape)
    # Not squeezed onto a phantom 1-CPU cluster: the workers keep Ray's 1 CPU each.
    assert plan.scaling_config is scaling and plan.read_cpus == 1.0
    assert plan.note == (
        "resources: the nodes up hold 0 of 2 worker(s) of {CPU: 1}; going ahead, the run "
        "waits for the autoscaler to add cpu_worker {CPU: 2}"
    )


def test_use_gpu_goes_ahead_when_the_gpu_node_type_is_at_zero_nodes():
    shape = ClusterShape(
        nodes=(HEAD_NO_CPU,),
        node_types=(
            NodeType("cpu_worker", {"CPU": 2.0}, can_add=2),
            NodeType("gpu_worker", {"CPU": 8.0, "GPU": 1.0}, can_add=2),
        ),
        autoscaling=True,
    )
    plan = plan_resources(ScalingConfig(num_workers=2, use_gpu=True), shape)
    assert plan.note and "gpu_worker {CPU: 8, GPU: 1}" in plan.note
    assert "cpu_worker" not in plan.note


def test_a_worker_bigger_than_every_node_is_refused_naming_the_nodes_when_the_sum_would_fit():
    shape = ClusterShape(nodes=({"CPU": 2.0},) * 4)
    scaling = ScalingConfig(num_workers=1, resources_per_worker={"CPU": 4})
    with pytest.raises(pr.ResourceError) as caught:
        plan_resources(scaling, shape)
    assert str(caught.value) == (
        "one worker needs {CPU: 4} on a single node, but no node can hold it (nodes up: "
        "4 x {CPU: 2}; no autoscaler); lower resources_per_worker to fit a node, or add a "
        "node type that large to the cluster config"
    )


def test_a_worker_bigger_than_every_node_type_is_refused_naming_the_node_types():
    shape = ClusterShape(
        nodes=(HEAD_NO_CPU,),
        node_types=(NodeType("cpu_worker", {"CPU": 2.0}, can_add=4),),
        autoscaling=True,
    )
    scaling = ScalingConfig(num_workers=1, resources_per_worker={"CPU": 4})
    with pytest.raises(pr.ResourceError, match=r"no node can hold it.*cpu_worker \{CPU: 2\}"):
        plan_resources(scaling, shape)


def test_more_workers_than_the_nodes_can_hold_one_by_one_are_refused_with_the_count():
    # 5 workers of 2 CPUs (+1 for reads): 11 <= 12 CPUs in all, but a 3-CPU node holds one.
    shape = ClusterShape(nodes=({"CPU": 3.0},) * 4)
    scaling = ScalingConfig(num_workers=5, resources_per_worker={"CPU": 2})
    with pytest.raises(pr.ResourceError, match=r"5 worker\(s\) of \{CPU: 2\}.*hold 4 at most"):
        plan_resources(scaling, shape)


def test_node_types_at_their_max_count_are_not_counted_on():
    shape = ClusterShape(
        nodes=(HEAD_NO_CPU,),
        node_types=(NodeType("gpu_worker", {"CPU": 8.0, "GPU": 1.0}, can_add=0),),
        autoscaling=True,
    )
    with pytest.raises(pr.ResourceError, match=r"GPU\(s\) requested, but the cluster has 0"):
        plan_resources(ScalingConfig(num_workers=1, use_gpu=True), shape)


def test_an_autoscaler_with_unknown_node_types_lets_the_run_wait_for_it():
    shape = ClusterShape(nodes=(HEAD_NO_CPU,), autoscaling=True)
    plan = plan_resources(ScalingConfig(num_workers=2, use_gpu=True), shape)
    assert plan.note and "waits for the autoscaler" in plan.note


def test_an_elastic_run_keeps_read_room_beside_its_maximum_and_stays_elastic():
    plan = plan_resources(ScalingConfig(num_workers=(1, 2)), ClusterShape.one_node(4))
    assert plan.scaling_config.num_workers == (1, 2) and plan.note is None
    # Ray Train reserves max workers' CPUs in Ray Data's coordinator: the share shrinks
    # so that 2 of them leave the reads their room, as for a fixed 2.
    squeezed = plan_resources(ScalingConfig(num_workers=(1, 2)), ClusterShape.one_node(2))
    assert squeezed.scaling_config.num_workers == (1, 2)
    assert squeezed.scaling_config.resources_per_worker == {"CPU": 0.75}
    with pytest.raises(pr.ResourceError, match=r"2 worker\(s\) x 1.5 CPU = 3 of the"):
        plan_resources(
            ScalingConfig(num_workers=(1, 2), resources_per_worker={"CPU": 1.5}),
            ClusterShape.one_node(2),
        )


def test_an_elastic_minimum_that_cannot_be_placed_is_refused():
    with pytest.raises(pr.ResourceError, match=r"3 worker\(s\) x 1 CPU = 3 CPUs"):
        plan_resources(
            ScalingConfig(num_workers=(3, 4), resources_per_worker={"CPU": 1}),
            ClusterShape.one_node(2),
        )


def test_a_gpu_reserved_without_use_gpu_is_refused_before_planning_with_the_fix():
    # Ray's own ScalingConfig refuses it (it would train on the CPU with a GPU reserved).
    with pytest.raises(ValueError, match=r"`use_gpu` is False but `GPU`.*set `use_gpu` to True"):
        ScalingConfig(num_workers=1, resources_per_worker={"GPU": 1})


def test_the_single_node_plan_is_the_same_through_a_shape_as_through_cluster_resources():
    for cpus in (1, 2, 3, 8):
        for workers in (1, 2, 3):
            scaling = ScalingConfig(num_workers=workers)
            a = plan_resources(scaling, ClusterResources(cpus=cpus))
            b = plan_resources(scaling, ClusterShape.one_node(cpus))
            assert a == b


def test_node_types_are_read_from_a_launcher_config_less_what_runs_already():
    from pinnacle_ray.trainers.cluster_shape import node_types_from_config

    config = {
        "max_workers": 5,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}, "max_workers": 0},
            "cpu_worker": {"resources": {"CPU": 2}, "min_workers": 0, "max_workers": 4},
            "gpu_worker": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0},
        },
    }
    types, max_new = node_types_from_config(config, {"head": 1, "cpu_worker": 1})
    assert types == (
        NodeType("cpu_worker", {"CPU": 2.0}, 3),
        NodeType("gpu_worker", {"CPU": 8.0, "GPU": 1.0}, 5),
    )
    assert max_new == 4


def test_nodes_being_launched_count_once_when_a_type_is_at_its_max_count():
    # Both cpu_worker nodes are on their way: none more can be added, but the two hold 4.
    shape = ClusterShape(
        nodes=(HEAD_NO_CPU,),
        node_types=(NodeType("cpu_worker", {"CPU": 2.0}, can_add=0),),
        autoscaling=True,
        pending={"cpu_worker": 2},
    )
    plan = plan_resources(ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}), shape)
    assert plan.note and plan.note.endswith(
        "the nodes up hold 0 of 2 worker(s) of {CPU: 1}; going ahead, the run waits for the "
        "autoscaler to add the nodes it is launching"
    )
    with pytest.raises(
        pr.ResourceError,
        match=r"5 CPUs requested, but the cluster has 4 .*being launched: 2 x cpu_worker",
    ):
        plan_resources(ScalingConfig(num_workers=5, resources_per_worker={"CPU": 1}), shape)


def test_the_autoscaling_config_is_found_from_the_monitors_command_line(tmp_path):
    import json
    import subprocess
    import sys

    from pinnacle_ray.trainers.cluster_shape import _read_autoscaling_config

    config = {"max_workers": 2, "available_node_types": {"w": {"resources": {"CPU": 2}}}}
    path = tmp_path / "autoscaling.yaml"
    path.write_text(json.dumps(config))
    # A stand-in for the head's monitor process: its command line names the config.
    monitor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print('up', flush=True); sys.stdin.read()",
            f"--autoscaling-config={path}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert monitor.stdout.readline() == b"up\n"  # running its own code: exec is done
        assert _read_autoscaling_config(monitor.pid) == config
    finally:
        monitor.communicate(b"")
    assert _read_autoscaling_config(monitor.pid) in (None, config)  # gone: the fallback path
