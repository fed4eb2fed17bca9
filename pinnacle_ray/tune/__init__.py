"""Ray Tune sweeps of any pinnacle_ray trainer, on datastore queries: ``pr.sweep``.

``sweep`` runs the trials and registers the best (``sweeper``); around it, one module per
job: the parameter paths a sweep sets (``params``), the checks before any trial
(``checks``), the plan made once for every trial (``plan``), the data read once for all
trials (``data``), one trial (``trial``), what happens after them (``outcome``, with
``history`` for the trials' reports), the live line (``progress``) and the release of
stopped trials' workers (``cleanup``).
"""

from __future__ import annotations

from .result import SweepResult
from .sweeper import sweep

__all__ = ["SweepResult", "sweep"]
