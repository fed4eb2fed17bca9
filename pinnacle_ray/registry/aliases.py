"""User-set handles (``production``, ``staging``, ...) that point at a version, with history.

A handle is an alias, as in MLflow's model aliases or PostgresML's deployments: promoting
moves it to a version, and every move is kept as a row of ``<prefix>_handle_moves``, so a
rollback is one call. The rows are the only state: the version a handle points at is what
its moves leave when replayed in order (a promote pushes a version, a rollback pops one),
so no second table can disagree with the history. Move numbers are claimed with an
insert-only write, as versions are, so concurrent moves never share a number.

``latest``, ``best`` and ``epoch_<n>`` name a version's checkpoints and cannot be aliases.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .._internal.clock import as_utc
from ..datastore.base import Datastore
from ..errors import ConfigError, DuplicateKey, ModelNotFound, RegistryError
from .records import validate_handle

__all__ = [
    "DEFAULT_ALIAS",
    "MOVES",
    "MOVE_KEY",
    "AliasBook",
    "HandleMove",
    "is_checkpoint_handle",
    "validate_alias",
]

logger = logging.getLogger("pinnacle_ray.registry")

DEFAULT_ALIAS = "production"
PROMOTE, ROLLBACK = "promote", "rollback"
MAX_MOVE_ATTEMPTS = 50

MOVES = pa.schema(
    [
        ("name", pa.string()),
        ("handle", pa.string()),
        ("seq", pa.int64()),  # 1, 2, ... per (name, handle)
        ("action", pa.string()),  # "promote" or "rollback"
        ("version", pa.int64()),  # where the handle points after this move
        ("previous_version", pa.int64()),  # where it pointed before (NULL: unset)
        ("moved_at", pa.timestamp("us", tz="UTC")),
    ]
)
MOVE_KEY = ["name", "handle", "seq"]

_CHECKPOINT_HANDLE = re.compile(r"latest|best|epoch_\d+")


def is_checkpoint_handle(handle: str) -> bool:
    """Whether ``handle`` is one the trainers give checkpoints (``latest``, ``best``,
    ``epoch_<n>``), which an alias may not take."""
    return bool(_CHECKPOINT_HANDLE.fullmatch(handle))


def validate_alias(handle: object) -> str:
    """``handle`` if it can name an alias (a safe name that is not a checkpoint handle)."""
    handle = validate_handle(handle)
    if is_checkpoint_handle(handle):
        raise ConfigError(
            f"handle {handle!r} is reserved: 'latest', 'best' and 'epoch_<n>' name a version's "
            "checkpoints. Promote under another name, e.g. 'production' or 'staging'"
        )
    return handle


@dataclass(frozen=True)
class HandleMove:
    """One move of a handle: promote or rollback, from ``previous_version`` to ``version``."""

    name: str
    handle: str
    seq: int
    action: str
    version: int
    previous_version: int | None
    moved_at: dt.datetime

    def __repr__(self) -> str:
        before = "unset" if self.previous_version is None else self.previous_version
        return (
            f"HandleMove({self.name!r}, {self.handle!r} #{self.seq}: {self.action} {before} -> "
            f"{self.version}, at {self.moved_at.isoformat(timespec='seconds')})"
        )


class AliasBook:
    """The handle moves of one registry, in table ``table`` of ``store``."""

    def __init__(self, store: Datastore, table: str) -> None:
        self.store = store
        self.table = table

    def current(self, name: str) -> dict[str, int]:
        """Each handle of model ``name`` that points at a version, and that version."""
        moves = self._moves(name, None)
        out = {}
        for handle in sorted({m.handle for m in moves}):
            stack = _replay([m for m in moves if m.handle == handle])
            if stack:
                out[handle] = stack[-1]
        return out

    def version_of(self, name: str, handle: str) -> int | None:
        """The version ``handle`` points at, or None when it was never set (or rolled off)."""
        stack = _replay(self._moves(name, handle))
        return stack[-1] if stack else None

    def history(self, name: str, handle: str) -> list[HandleMove]:
        """Every move of ``handle``, oldest first."""
        return self._moves(name, handle)

    def promote(self, name: str, handle: str, version: int) -> HandleMove | None:
        """Point ``handle`` at ``version`` (already checked to exist); None when it already
        does (nothing is recorded)."""
        for attempt in range(MAX_MOVE_ATTEMPTS):
            moves = self._moves(name, handle)
            stack = _replay(moves)
            previous = stack[-1] if stack else None
            if previous == version:
                logger.info("%s %r already points at version %d", name, handle, version)
                return None
            move = self._move(name, handle, moves, PROMOTE, version, previous)
            if move is not None:
                return move
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))
        raise RegistryError(
            f"could not record the move of {name!r} handle {handle!r} after "
            f"{MAX_MOVE_ATTEMPTS} attempts (other moves kept taking the next number); try again"
        )

    def rollback(self, name: str, handle: str) -> HandleMove:
        """Point ``handle`` back at the version it pointed at before its last promote."""
        moves = self._moves(name, handle)
        stack = _replay(moves)
        if len(stack) < 2:
            if not moves:
                raise ModelNotFound(
                    f"model {name!r} has no handle {handle!r} to roll back: it was never "
                    f"promoted. Use store.models.promote({name!r}, version=..., handle="
                    f"{handle!r}) first"
                )
            now = f"points at version {stack[-1]}" if stack else "is unset"
            raise RegistryError(
                f"cannot roll back {name!r} handle {handle!r}: it {now} and there is no earlier "
                f"version in its history ({len(moves)} move(s)). Promote the version you want "
                "instead"
            )
        move = self._move(name, handle, moves, ROLLBACK, stack[-2], stack[-1])
        if move is None:
            # Retrying could undo a second promote the user never saw; say so instead.
            raise RegistryError(
                f"{name!r} handle {handle!r} was moved by someone else while rolling back; "
                f"check store.models.history({name!r}, {handle!r}) and try again"
            )
        return move

    def _move(
        self,
        name: str,
        handle: str,
        moves: list[HandleMove],
        action: str,
        version: int,
        previous: int | None,
    ) -> HandleMove | None:
        """Record a move as the next number; None when a concurrent move took that number."""
        move = HandleMove(
            name=name,
            handle=handle,
            seq=max((m.seq for m in moves), default=0) + 1,
            action=action,
            version=version,
            previous_version=previous,
            moved_at=dt.datetime.now(dt.timezone.utc),
        )
        row = {f: getattr(move, f) for f in MOVES.names}
        try:
            self.store.insert(self.table, pa.Table.from_pylist([row], schema=MOVES), MOVE_KEY)
        except DuplicateKey:
            return None
        logger.info("%s %r: %s %s -> %d", name, handle, action, previous, version)
        return move

    def _moves(self, name: str, handle: str | None) -> list[HandleMove]:
        if self.table not in self.store.tables():
            return []  # created by the first promote
        where: dict[str, Any] = {"name": name}
        if handle is not None:
            where["handle"] = handle
        rows = self.store.table(self.table, where=where).to_arrow().to_pylist()
        moves = [
            HandleMove(
                name=r["name"],
                handle=r["handle"],
                seq=int(r["seq"]),
                action=r["action"],
                version=int(r["version"]),
                previous_version=None if r["previous_version"] is None else r["previous_version"],
                moved_at=as_utc(r["moved_at"]),
            )
            for r in rows
        ]
        return sorted(moves, key=lambda m: (m.handle, m.seq))


def _replay(moves: list[HandleMove]) -> list[int]:
    """The versions a handle went through that a rollback can return to, last = current."""
    stack: list[int] = []
    for m in moves:
        if m.action == ROLLBACK:
            stack = stack[:-1]
        else:
            stack.append(m.version)
    return stack
