"""Resource planning: a run either fits the cluster with room for data reads, or is refused."""

from __future__ import annotations

import logging

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


def test_ray_datas_no_cpu_warning_is_dropped_when_cpus_are_free():
    from pinnacle_ray._runtime import _NoCpuFalseAlarm, ensure_ray

    ensure_ray()
    assert any(
        isinstance(f, _NoCpuFalseAlarm) for f in logging.getLogger("ray.data.dataset").filters
    )
    assert ray.available_resources().get("CPU")
    assert _NoCpuFalseAlarm().filter(_record(NO_CPU)) is False
    assert _NoCpuFalseAlarm().filter(_record("Some other Ray Data warning")) is True


def test_ray_datas_no_cpu_warning_stays_when_no_cpu_frees_up(monkeypatch):
    from pinnacle_ray._runtime import _NoCpuFalseAlarm

    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 0.0})
    assert _NoCpuFalseAlarm().filter(_record(NO_CPU)) is True
