"""Give back the workers of trials a scheduler stopped, so the next trials can start.

When Tune stops a trial early (ASHA), it ends the trial's process, and with it the Ray
Train controller that process started. The controller's workers sit in a placement group
that Ray Train V2 removes from a detached cleaner actor, which looks the controller up
through Ray's State API. Where that API is unavailable (no dashboard, or several local
Ray instances on one machine, where it cannot tell which one to ask), the group is never
removed: its CPUs stay taken and the next trial waits for them forever. This callback
removes the groups this sweep's trials' Ray Train runs created, once no trial of the sweep
is running, which is when nothing of the sweep can still be using them. Tune's own groups
for the trials (which reserve only memory) are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
import ray.tune
from ray.util.placement_group import PlacementGroup, remove_placement_group

__all__ = ["ReleaseStoppedRuns"]

logger = logging.getLogger("pinnacle_ray.tune")


class ReleaseStoppedRuns(ray.tune.Callback):
    """A Tune callback (driver side) removing placement groups left by stopped trials."""

    def __init__(self, trial_bundle: dict[str, float]) -> None:
        self.job = ray.get_runtime_context().get_job_id()
        self.trial_bundle = {k: float(v) for k, v in trial_bundle.items()}
        self.before = _live_groups(self.job, self.trial_bundle)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.release([t for t in trials if t is not trial])

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.release([t for t in trials if t is not trial])

    def release(self, others: list[Any] = ()) -> None:  # type: ignore[assignment]
        """Remove the groups created since the sweep started, unless a trial still runs."""
        if any(getattr(t, "status", None) == "RUNNING" for t in others):
            return
        left = _live_groups(self.job, self.trial_bundle) - self.before
        for group_id in left:
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))
        if left:
            logger.info("released %d placement group(s) of stopped trials", len(left))


def _live_groups(job: str, trial_bundle: dict[str, float]) -> set[str]:
    """Ids of this job's placement groups that hold (or wait for) resources, except Tune's
    groups for the trials themselves (every bundle is ``trial_bundle``)."""
    table = ray.util.placement_group_table()
    return {
        group_id
        for group_id, entry in table.items()
        if group_id.endswith(job)
        and entry.get("state") in ("CREATED", "PENDING", "RESCHEDULING")
        and any(dict(b) != trial_bundle for b in (entry.get("bundles") or {}).values())
    }
