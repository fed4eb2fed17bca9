"""Pure shard planning: from key statistics and a shard count to half-open key ranges.

Nothing here touches a database. A plan is a list of :class:`KeyRange`; read together they
cover every possible key value exactly once: ``[None, p1), [p1, p2), ..., [pk, None)`` plus
one ``IS NULL`` shard when the key has NULLs. Half-open ranges put a key value that repeats
across a split point entirely into one shard, so duplicates never straddle two reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "KeyRange",
    "KeyStats",
    "ShardPlan",
    "default_shard_count",
    "is_dense_integer",
    "is_local_host",
    "plan_ranges",
    "quantile_ranks",
]

# Below this many rows a shard costs more in task start-up than it saves in parallel reading.
MIN_ROWS_PER_SHARD = 25_000
# Above this many rows per shard we add shards beyond the CPU count, to bound task memory
# and to let a straggler's work be spread out.
MAX_ROWS_PER_SHARD = 1_000_000
# A key whose values fill at least this share of [min, max] is split arithmetically.
DENSE_FILL = 0.5

NullMode = Literal["exclude", "include", "only"]


@dataclass(frozen=True)
class KeyStats:
    """What the planner needs to know about a key: non-NULL count, NULL count, min, max."""

    count: int
    nulls: int = 0
    min: Any = None
    max: Any = None


@dataclass(frozen=True)
class KeyRange:
    """Rows with ``lo <= key < hi`` (``None`` = unbounded); ``nulls`` says what to do with NULL.

    ``nulls="include"`` with both bounds open means "no predicate at all" (a single shard).
    """

    lo: Any = None
    hi: Any = None
    nulls: NullMode = "exclude"
    rows: int | None = None

    @property
    def unbounded(self) -> bool:
        return self.lo is None and self.hi is None and self.nulls == "include"

    def describe(self, key: str) -> str:
        if self.nulls == "only":
            return f"{key} IS NULL"
        if self.unbounded:
            return "all rows"
        parts = []
        if self.lo is not None:
            parts.append(f"{key} >= {self.lo!r}")
        if self.hi is not None:
            parts.append(f"{key} < {self.hi!r}")
        return " AND ".join(parts) if parts else f"{key} IS NOT NULL"


def default_shard_count(rows: int, cpus: int, server_cpus: int | None = None) -> int:
    """Shards for ``rows`` on a cluster with ``cpus``: one per CPU, fewer for small results,
    more when a shard would exceed :data:`MAX_ROWS_PER_SHARD`.

    ``server_cpus`` is set when the database server runs on the machine that reads (see
    :func:`is_local_host`) and says how many cores that machine has. Each shard then keeps
    two processes busy on those cores, the server's backend encoding rows and the read task
    decoding them, so at most ``server_cpus // 2`` shards run at once (at least one): more
    only make the two sides preempt each other, and cost the server more work (measured on
    2 cores, 1M rows: two key-range index scans 1.10-1.23 CPU-s in PostgreSQL's backends
    against 0.92-1.06 for one sequential scan; the read tasks decode the same bytes either
    way). The row bound still applies: a result too large for one shard is split all the same.
    """
    if rows <= 0:
        return 1
    wanted = math.ceil(rows / MIN_ROWS_PER_SHARD)
    readers = cpus if server_cpus is None else min(cpus, max(1, server_cpus // 2))
    cap = max(readers, math.ceil(rows / MAX_ROWS_PER_SHARD), 1)
    return max(1, min(wanted, cap))


_LOOPBACK = ("localhost", "localhost.localdomain", "127.0.0.1", "::1", "[::1]")


def is_local_host(host: str | None, own_names: frozenset[str] = frozenset()) -> bool:
    """The database server named by ``host`` runs on this machine: no host (a Unix socket),
    a socket folder (``/var/run/postgresql``), a loopback name or address (``127.x.x.x``),
    or one of ``own_names`` (this machine's host name and addresses)."""
    if not host or host.startswith("/"):
        return True
    name = host.strip().lower()
    return name in _LOOPBACK or name.startswith("127.") or name in own_names


def is_dense_integer(stats: KeyStats) -> bool:
    """True when the key is an integer that fills enough of its span to split by arithmetic."""
    lo, hi = stats.min, stats.max
    if not (_is_int(lo) and _is_int(hi)) or stats.count <= 0:
        return False
    return stats.count / (hi - lo + 1) >= DENSE_FILL


def quantile_ranks(count: int, shards: int) -> list[int]:
    """1-based positions in key order whose values split ``count`` keys into ``shards`` parts."""
    shards = max(1, min(shards, count))
    ranks = sorted({max(1, round(count * i / shards)) + 1 for i in range(1, shards)})
    return [r for r in ranks if 1 < r <= count]


def plan_ranges(
    stats: KeyStats, shards: int, split_points: list[Any] | None = None
) -> list[KeyRange]:
    """Split a key into at most ``shards`` half-open ranges (+ a NULL shard when needed).

    Dense integer keys are split arithmetically between min and max; any other key needs
    ``split_points`` (sorted key values at :func:`quantile_ranks`, from the data). Repeated
    split points collapse, so a heavily skewed key yields fewer, still-correct shards.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    total = stats.count + stats.nulls
    if shards == 1 or (stats.count <= 1 and stats.nulls == 0) or total == 0:
        return [KeyRange(nulls="include", rows=total)]

    if split_points is None:
        if not is_dense_integer(stats):
            raise ValueError("split_points are required unless the key is a dense integer")
        split_points = _arithmetic_points(stats.min, stats.max, min(shards, stats.count))
    points = _clean_points(split_points, stats.min, stats.max)
    if not points and stats.nulls == 0:
        return [KeyRange(nulls="include", rows=total)]

    bounds: list[Any] = [None, *points, None]
    per_range = stats.count / (len(points) + 1)
    ranges = [
        KeyRange(bounds[i], bounds[i + 1], "exclude", round(per_range))
        for i in range(len(bounds) - 1)
    ]
    if stats.nulls:
        ranges.append(KeyRange(nulls="only", rows=stats.nulls))
    return ranges


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _arithmetic_points(lo: int, hi: int, shards: int) -> list[int]:
    span = hi - lo + 1
    return [lo + (span * i) // shards for i in range(1, shards)]


def _clean_points(points: list[Any], lo: Any, hi: Any) -> list[Any]:
    """Sorted, distinct split points strictly above the minimum (a split at the minimum
    would only produce an empty first range) and not above the maximum."""
    cleaned = []
    for p in sorted(p for p in points if p is not None):
        if lo is not None and p <= lo:
            continue
        if hi is not None and p > hi:
            continue
        if not cleaned or p != cleaned[-1]:
            cleaned.append(p)
    return cleaned


@dataclass
class ShardPlan:
    """How a query will be read: the key (or row locator) and one shard per Ray ReadTask."""

    strategy: str  # "key", "rowid", "ctid" or "single"
    key: str | None
    rows: int
    shards: list[Any] = field(default_factory=list)  # ReadShard objects
    reason: str = ""
    key_range: tuple[Any, Any] | None = None  # (min, max) of the key when planned by key
    notes: tuple[str, ...] = ()  # more lines for the reader (e.g. where column types came from)

    def __len__(self) -> int:
        return len(self.shards)

    def __str__(self) -> str:
        head = {
            "key": f"{len(self)} shard(s) by key range on {self.key!r}",
            "rowid": f"{len(self)} shard(s) by SQLite rowid range (table has no key)",
            "ctid": f"{len(self)} shard(s) by PostgreSQL ctid page range (table has no key)",
            "single": f"1 shard, read in one task ({self.reason})",
        }[self.strategy]
        lines = [f"{head}; ~{self.rows} rows"]
        lines += [f"  [{i}] {s.describe()}  (~{s.rows} rows)" for i, s in enumerate(self.shards)]
        lines += list(self.notes)
        return "\n".join(lines)
