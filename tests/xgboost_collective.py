"""Two XGBoost workers in two processes joined by XGBoost's own collective (a RabitTracker),
without Ray: what the report-decision test runs in each of them."""

from __future__ import annotations

from typing import Any


def report_decision(rank: int, args: dict[str, Any], clock_due: bool, out: Any) -> None:
    """Put ``(rank, reports)`` on ``out``: whether this worker's report callback reports
    after round 0 when its own clock says a report is ``clock_due`` (or never is)."""
    from xgboost.collective import CommunicatorContext

    from pinnacle_ray.trainers import xgboost_loop

    # Due at once on this worker, or not for a very long time.
    xgboost_loop.MIN_REPORT_INTERVAL_S = 0.0 if clock_due else 1e9
    with CommunicatorContext(**args, dmlc_task_id=f"{rank:08}"):
        out.put((rank, xgboost_loop._Report(frequency=0).reports_after(0)))
