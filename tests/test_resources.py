"""Resource planning: a run either fits the cluster with room for data reads, or is refused."""

from __future__ import annotations

import pytest
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
