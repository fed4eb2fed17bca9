"""How a run's datasets reach its workers: one worker iterates them unsplit (no split
coordinator actors), more workers or an elastic range keep Ray Train's split."""

from __future__ import annotations

import pytest
from ray.train import DataConfig, ScalingConfig

from pinnacle_ray.trainers.ingest import ingest_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("scaling", [None, ScalingConfig(num_workers=1)])
def test_one_worker_iterates_every_dataset_unsplit(scaling):
    config = ingest_config(scaling, ordered=False)
    assert config is not None and config._datasets_to_split == []


def test_the_managed_loops_keep_the_training_batches_in_order_on_one_worker_or_several():
    for scaling in (ScalingConfig(num_workers=1), ScalingConfig(num_workers=2)):
        config = ingest_config(scaling, ordered=True)
        assert config._resolve_execution_options("train").preserve_order is True
        default = DataConfig.default_ingest_options().preserve_order
        assert config._resolve_execution_options("valid").preserve_order is default
    assert ingest_config(ScalingConfig(num_workers=2), ordered=True)._datasets_to_split == "all"


@pytest.mark.parametrize("workers", [2, (1, 2)], ids=["two", "elastic-1-2"])
def test_several_workers_or_an_elastic_range_keep_ray_trains_split(workers):
    assert ingest_config(ScalingConfig(num_workers=workers), ordered=False) is None


def test_building_the_ingest_config_raises_no_deprecation_warning():
    # Ray 2.60's DataConfig.default_ingest_options() warns about exclude_resources on every
    # call: a fit must not print that.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ingest_config(ScalingConfig(num_workers=1), ordered=True)
        ingest_config(ScalingConfig(num_workers=2), ordered=True)
