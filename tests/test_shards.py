"""The pure shard planner: ranges cover every key value exactly once, balanced where possible."""

from __future__ import annotations

import bisect
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinnacle_ray.datastore.shards import (
    KeyRange,
    KeyStats,
    default_shard_count,
    is_local_host,
    plan_ranges,
    quantile_ranks,
)


def _owner(ranges: list[KeyRange], value: object) -> list[int]:
    """Indices of ranges whose predicate (as the SQL would apply it) accepts ``value``."""
    hits = []
    for i, r in enumerate(ranges):
        if r.unbounded:
            hits.append(i)
        elif r.nulls == "only":
            if value is None:
                hits.append(i)
        elif (
            value is not None and (r.lo is None or value >= r.lo) and (r.hi is None or value < r.hi)
        ):
            hits.append(i)
    return hits


def _plan_for(values: list, shards: int) -> list[KeyRange]:
    keys = sorted(v for v in values if v is not None)
    stats = KeyStats(
        count=len(keys),
        nulls=sum(v is None for v in values),
        min=keys[0] if keys else None,
        max=keys[-1] if keys else None,
    )
    points = [keys[r - 1] for r in quantile_ranks(len(keys), shards)]
    return plan_ranges(stats, shards, points)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(-50, 50)), max_size=60),
    st.integers(1, 9),
)
def test_every_value_lands_in_exactly_one_range_when_keys_repeat_or_are_null(values, shards):
    ranges = _plan_for(values, shards)
    for v in values:
        assert len(_owner(ranges, v)) == 1, (v, ranges)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=3), min_size=1, max_size=40), st.integers(1, 6))
def test_string_keys_are_partitioned_exactly_once(values, shards):
    ranges = _plan_for(values, shards)
    assert all(len(_owner(ranges, v)) == 1 for v in values)


def test_plan_is_one_unbounded_range_when_the_key_is_empty():
    assert plan_ranges(KeyStats(count=0), 4) == [KeyRange(nulls="include", rows=0)]


def test_plan_is_one_unbounded_range_when_there_is_one_row():
    ranges = plan_ranges(KeyStats(count=1, min=7, max=7), 4)
    assert len(ranges) == 1 and ranges[0].unbounded


def test_dense_integer_keys_split_arithmetically_into_equal_ranges():
    ranges = plan_ranges(KeyStats(count=100, min=1, max=100), 4)
    assert [(r.lo, r.hi) for r in ranges] == [(None, 26), (26, 51), (51, 76), (76, None)]


def test_null_keys_get_their_own_shard_when_the_key_is_split():
    ranges = plan_ranges(KeyStats(count=100, nulls=3, min=1, max=100), 2)
    assert ranges[-1] == KeyRange(nulls="only", rows=3)
    assert all(r.nulls == "exclude" for r in ranges[:-1])


def test_sparse_integer_keys_need_split_points_from_the_data():
    with pytest.raises(ValueError, match="split_points"):
        plan_ranges(KeyStats(count=3, min=1, max=10**9), 3)


def test_heavily_repeated_key_collapses_to_fewer_shards():
    values = [5] * 90 + list(range(6, 16))
    ranges = _plan_for(values, 8)
    assert len(ranges) < 8
    counts = Counter(_owner(ranges, v)[0] for v in values)
    assert sum(counts.values()) == len(values)


def test_skewed_keys_get_balanced_ranges_from_quantiles():
    values = [int(1.1**i) for i in range(200)]  # exponential: dense min/max split is useless
    ranges = _plan_for(values, 4)
    sizes = Counter(_owner(ranges, v)[0] for v in values)
    assert max(sizes.values()) <= 2 * min(sizes.values())


def test_split_points_are_used_sorted_and_distinct():
    keys = sorted(["b", "d", "d", "f", "h"])
    ranges = plan_ranges(KeyStats(count=5, min="b", max="h"), 3, ["f", "d", "d"])
    assert [(r.lo, r.hi) for r in ranges] == [(None, "d"), ("d", "f"), ("f", None)]
    assert bisect.bisect_left(keys, "d") == 1


def test_quantile_ranks_split_count_evenly():
    assert quantile_ranks(100, 4) == [26, 51, 76]
    assert quantile_ranks(1, 4) == []


@pytest.mark.parametrize(
    ("rows", "cpus", "expected"),
    [
        (0, 2, 1),
        (7, 2, 1),
        (100_000, 2, 2),
        (1_000_000, 2, 2),
        (100_000_000, 2, 100),
        (1_000_000, 64, 40),
    ],
)
def test_default_shard_count_follows_cpus_and_rows(rows, cpus, expected):
    assert default_shard_count(rows, cpus) == expected


@pytest.mark.parametrize(
    ("rows", "cpus", "server_cpus", "expected"),
    [
        (1_000_000, 2, 2, 1),  # 2 cores shared with the server: one shard, two processes
        (1_000_000, 2, 3, 1),
        (1_000_000, 4, 4, 2),
        (1_000_000, 16, 8, 4),  # a bigger cluster cannot make the local server faster
        (1_000_000, 2, 16, 2),  # a big server machine never raises the cluster's count
        (1_000_000, 2, 1, 1),
        (10_000, 8, 8, 1),  # small results stay one shard
        (100_000_000, 2, 2, 100),  # the row bound still splits what one shard cannot hold
    ],
)
def test_default_shard_count_halves_the_cores_when_the_server_shares_them(
    rows, cpus, server_cpus, expected
):
    assert default_shard_count(rows, cpus, server_cpus) == expected


def test_default_shard_count_without_a_local_server_is_the_cluster_rule():
    for rows, cpus in [(1_000_000, 2), (1_000_000, 64), (7, 2)]:
        assert default_shard_count(rows, cpus, None) == default_shard_count(rows, cpus)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        (None, True),  # libpq's default: a Unix socket
        ("", True),
        ("/var/run/postgresql", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("this-box", True),  # the machine's own name
        ("db.example.com", False),
        ("10.0.0.5", False),
        ("localhost.evil.example", False),
    ],
)
def test_is_local_host_knows_sockets_loopback_and_own_names(host, local):
    assert is_local_host(host, frozenset({"this-box"})) is local


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("postgresql+psycopg://u@127.0.0.1:5432/db", "127.0.0.1"),
        ("postgresql+psycopg://u@/db", None),
        ("postgresql+psycopg://u@/db?host=/var/run/postgresql", "/var/run/postgresql"),
        ("postgresql+psycopg://u@/db?host=db.example.com", "db.example.com"),
        ("postgresql+psycopg://u@/db?host=localhost&host=db.example.com", "several hosts"),
    ],
)
def test_the_server_host_comes_from_the_url_or_its_host_parameter(url, host):
    import sqlalchemy as sa

    from pinnacle_ray.datastore.sql.store import _server_host

    assert _server_host(sa.engine.make_url(url)) == host
