"""Test tiers (docs/testing.md): every test module has a tier, and a ``unit`` test cannot reach
Ray: starting it, or any Ray call that would start it, fails the test with a message that says
how to move it to another tier."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from conftest import MODULE_TIER, TIERS, RayInUnitTest

HERE = Path(__file__).parent


def _marks_a_tier(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return any(f"pytest.mark.{tier}" in text for tier in TIERS)


def test_every_test_module_has_one_of_the_four_tiers():
    modules = {path.stem: path for path in HERE.glob("test_*.py")}
    untiered = {m for m, p in modules.items() if m not in MODULE_TIER and not _marks_a_tier(p)}
    assert untiered == set(), "add to MODULE_TIER in tests/conftest.py, or mark their tests"
    assert MODULE_TIER.keys() - modules.keys() == set(), "these modules are gone: drop them"
    assert set(MODULE_TIER.values()) <= set(TIERS)


def test_a_unit_test_that_starts_ray_fails_naming_the_fix(request):
    assert request.node.get_closest_marker("unit") is not None
    with pytest.raises(RayInUnitTest, match="unit tier but started Ray: mark it data, train"):
        ray.init(num_cpus=1)


def test_a_unit_test_whose_ray_call_would_start_ray_fails_too():
    # ray.put (like ray.get, remote calls and Ray Data) starts Ray when it is not running.
    with pytest.raises(RayInUnitTest):
        ray.put(1)


@pytest.mark.data
def test_a_test_marked_with_another_tier_gets_the_sessions_ray(request):
    assert request.node.get_closest_marker("data") is not None
    assert request.node.get_closest_marker("unit") is None
    assert ray.is_initialized()
    assert ray.get(ray.put(1)) == 1
