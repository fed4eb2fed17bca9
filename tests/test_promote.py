"""Promoted handles (aliases such as ``production``): promote, roll back, and what ``load``
picks by default. Runs on SQLite, PostgreSQL and MariaDB; nothing here needs Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pinnacle_ray as pr
from pinnacle_ray.registry.torch_flavor import save_model

FEATURES = ["a", "b"]
pytestmark = pytest.mark.with_mongo  # the backend-parametrized tests also run on MongoDB

TABLES = ("models", "checkpoints", "registry_meta", "handle_moves")


def _constant(value: float) -> nn.Sequential:
    """A model that predicts ``value`` for every row, so each version is recognisable."""
    module = nn.Sequential(nn.Linear(2, 1))
    with torch.no_grad():
        module[0].weight.zero_()
        module[0].bias.fill_(value)
    return module


@pytest.fixture
def registry(store, tables, tmp_path) -> pr.ModelRegistry:
    """Versions 1, 2, 3 of model ``m`` predicting 1.0, 2.0, 3.0 (tables of its own)."""
    for name in TABLES:
        tables(f"pinnacle_{name}")  # dropped after the test
    registry = pr.ModelRegistry(
        store, prefix=f"{tables.prefix}_pinnacle", artifact_root=tmp_path / "art"
    )
    for value in (1.0, 2.0, 3.0):
        folder = save_model(tmp_path / f"v{value}", _constant(value), features=FEATURES)
        registry.register("m", "torch", folder)
    return registry


def _predicts(model) -> float:
    return float(np.asarray(model.predict(pd.DataFrame({"a": [0.5], "b": [1.5]})))[0])


def test_load_uses_the_promoted_version_when_production_is_set(registry):
    registry.promote("m", version=2, handle="production")
    assert _predicts(registry.load("m")) == 2.0
    assert registry.get("m", handle="production").version == 2
    assert registry.aliases("m") == {"production": 2}


def test_load_uses_the_latest_version_when_no_handle_is_promoted(registry):
    registry.promote("m", version=1, handle="staging")
    assert _predicts(registry.load("m")) == 3.0
    assert _predicts(registry.load("m", handle="staging")) == 1.0


def test_rollback_goes_back_one_promote_at_a_time_when_called_repeatedly(registry):
    for version in (1, 3, 2):
        registry.promote("m", version=version)
    assert registry.rollback("m").version == 3
    assert _predicts(registry.load("m")) == 3.0
    assert registry.rollback("m").version == 1
    history = registry.history("m")
    assert [(h.action, h.previous_version, h.version) for h in history] == [
        ("promote", None, 1),
        ("promote", 1, 3),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 3, 1),
    ]


def test_promote_after_a_rollback_is_undone_by_the_next_rollback_when_called(registry):
    registry.promote("m", version=1)
    registry.promote("m", version=2)
    registry.rollback("m")
    registry.promote("m", version=3)
    assert registry.rollback("m").version == 1


def test_promote_records_nothing_when_the_handle_already_points_at_the_version(registry):
    registry.promote("m", version=2)
    registry.promote("m", version=2)
    assert len(registry.history("m")) == 1


def test_promote_raises_model_not_found_naming_the_versions_when_the_version_is_unknown(registry):
    with pytest.raises(pr.ModelNotFound, match=r"no version 7; its versions are \[1, 2, 3\]"):
        registry.promote("m", version=7)
    with pytest.raises(pr.ModelNotFound, match="no model named 'nope'"):
        registry.promote("nope", version=1)
    assert registry.aliases("m") == {}


def test_rollback_raises_model_not_found_when_the_handle_was_never_promoted(registry):
    with pytest.raises(pr.ModelNotFound, match="never promoted"):
        registry.rollback("m")


def test_rollback_raises_registry_error_when_there_is_no_earlier_version(registry):
    registry.promote("m", version=2)
    with pytest.raises(pr.RegistryError, match="points at version 2 and there is no earlier"):
        registry.rollback("m")


@pytest.mark.parametrize("handle", ["latest", "best", "epoch_3"])
def test_promote_refuses_a_checkpoint_handle_name_when_given_one(registry, handle):
    with pytest.raises(pr.ConfigError, match=f"handle '{handle}' is reserved"):
        registry.promote("m", version=1, handle=handle)


def test_load_refuses_when_version_and_promoted_handle_disagree(registry):
    registry.promote("m", version=1)
    with pytest.raises(pr.ConfigError, match="'production' points at version 1"):
        registry.load("m", version=2, handle="production")


def test_get_names_the_promoted_handles_when_a_handle_is_unknown(registry):
    registry.promote("m", version=1, handle="staging")
    with pytest.raises(pr.ModelNotFound, match=r"promoted handles of 'm': \['staging'\]"):
        registry.get("m", handle="canary")


def test_promote_defaults_to_the_latest_version_when_none_is_given(tmp_path: Path):
    store = pr.connect(tmp_path / "shop.db")
    folder = save_model(tmp_path / "v", _constant(4.0), features=FEATURES)
    store.models.register("m", "torch", folder)
    store.models.register("m", "torch", folder)
    assert store.models.promote("m").version == 2
    assert store.models.resolve("m") == (store.models.get("m", 2), None)
    store.close()
