"""Which of a run's reported checkpoints its handles name, and so which must be kept.

Handles, as in hosted trainable models: ``latest`` (the last checkpoint), ``best`` (by the
listened metric and its mode) and ``epoch_<n>`` (the end of epoch n, the last ``keep``
epochs). One pure policy decides them, used twice: by Ray Train's controller while the
run goes (:class:`~pinnacle_ray.trainers.run_folder.KeepHandled` deletes what no handle
names any more, so the run folder never holds more than the registry will keep) and by
registration at the end (which copies exactly those). Ray's own
``CheckpointConfig(num_to_keep=...)`` cannot say this: it keeps the best ``num_to_keep`` by
one metric plus the latest, which would drop the checkpoints the ``epoch_<n>`` handles
name. This module imports nothing heavy: Ray Train's controller loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import MetricNotReported

__all__ = ["Retention", "check_listened", "choose_handles"]

Reported = tuple[Any, dict[str, Any]]  # (ray.train.Checkpoint, its metrics)


def choose_handles(
    reported: list[Reported],
    listen: str | None,
    mode: str,
    keep_epochs: int,
    *,
    strict: bool = True,
) -> dict[str, Reported]:
    """Map each handle to the reported checkpoint it names (several may share one).

    ``strict``: a listened metric no report carries is ``MetricNotReported`` (at
    registration); with ``strict=False`` (during the run, when it may come later) there
    is no ``best`` yet."""
    if not reported:
        return {}
    handles: dict[str, Reported] = {"latest": reported[-1]}
    if listen:
        scored = (
            check_listened(reported, listen)
            if strict
            else [r for r in reported if _number(r[1].get(listen)) is not None]
        )
        if scored:
            pick = min if mode == "min" else max
            # Ties go to the earliest checkpoint that reached the value.
            handles["best"] = pick(scored, key=lambda r: _number(r[1][listen]))
    # The managed loop flags epoch ends; a custom loop reporting {"epoch": n} reports at
    # epoch ends by convention, and the last report of an epoch names it.
    ends: dict[int, Reported] = {}
    for r in reported:
        epoch = r[1].get("epoch")
        if isinstance(epoch, int) and r[1].get("epoch_done", True):
            ends[epoch] = r
    for epoch in sorted(ends)[-keep_epochs:] if keep_epochs > 0 else []:
        handles[f"epoch_{epoch}"] = ends[epoch]
    return handles


def check_listened(reported: list[Reported], listen: str | None) -> list[Reported]:
    """The reports carrying a number for ``listen``; MetricNotReported when none does."""
    if not listen:
        return []
    scored = [r for r in reported if _number(r[1].get(listen)) is not None]
    if not scored:
        seen = sorted({k for _, m in reported for k in m})
        raise MetricNotReported(
            f"listen={listen!r} was never reported; the run reported {seen}. Listen to "
            "one of those (e.g. 'valid/loss') or report it from the loop"
        )
    return scored


@dataclass(frozen=True)
class Retention:
    """The handle rule of one run (``listen``, ``mode``, ``keep_epochs`` as the trainer
    registers with), applied one report at a time.

    Example::

        rule = Retention("valid/loss", "min", keep_epochs=2)
        kept, dropped = rule.step(kept, (checkpoint, metrics))   # delete ``dropped``
        rule.surviving(all_reported) == kept                      # the same, replayed
    """

    listen: str | None
    mode: str
    keep_epochs: int

    def step(self, kept: list[Reported], new: Reported) -> tuple[list[Reported], list[Reported]]:
        """After checkpoint ``new`` arrives: the checkpoints still named by a handle (in
        report order) and those no handle names any more (``new`` is always kept: it is
        ``latest``). Once dropped, a checkpoint is gone, so only ``kept`` is looked at."""
        candidates = [*kept, new]
        named = {id(c) for c, _ in choose_handles(candidates, *self._rule(), strict=False).values()}
        return (
            [r for r in candidates if id(r[0]) in named],
            [r for r in candidates if id(r[0]) not in named],
        )

    def surviving(self, reported: list[Reported]) -> list[Reported]:
        """The checkpoints of ``reported`` (in report order) that :meth:`step`, applied to
        each in turn, never dropped: what a run pruned by this rule still holds."""
        kept: list[Reported] = []
        for r in reported:
            kept, _ = self.step(kept, r)
        return kept

    def _rule(self) -> tuple[str | None, str, int]:
        return self.listen, self.mode, self.keep_epochs


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
