"""One trial of a sweep, as it runs in a Tune trial actor: build the trainer with the
trial's parameters, fit it without registering, and report its final metrics to Tune
with the run record the driver needs to register it later."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray.tune

from ..trainers.registration import RunRecord
from ..trainers.storage import StorageChoice, storage_for_trials
from .params import with_params

if TYPE_CHECKING:
    from ..trainers import Trainer

__all__ = ["DONE_KEY", "RECORD_FILE", "run_trial"]

RECORD_FILE = "pinnacle_run.json"
# The last report of a trial that ran to its end carries this; a trial stopped by the
# scheduler never sends it.
DONE_KEY = "pinnacle/done"


def run_trial(
    config: dict[str, Any], *, trainer: Trainer, train: Any, valid: Any, storage: StorageChoice
) -> None:
    """Build the trainer with this trial's parameters, fit it without registering (its
    checkpoints in the sweep's ``storage``), and report its final metrics to Tune with the
    record needed to register it later."""
    candidate = with_params(trainer, config)
    with storage_for_trials(storage):
        result = candidate.fit(train, valid, register=False)
    record: RunRecord | None = getattr(result, "record", None)
    checkpointed = record is not None and record.reported
    metrics = record.main_metrics() if checkpointed else dict(result.metrics or {})
    with tempfile.TemporaryDirectory(prefix="pinnacle-trial-") as folder:
        payload = {"record": record.to_json() if record is not None else None}
        Path(folder, RECORD_FILE).write_text(json.dumps(payload))
        ray.tune.report(
            {**_numbers(metrics), DONE_KEY: 1},
            checkpoint=ray.tune.Checkpoint.from_directory(folder),
        )


def _numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (int, float, bool)) and not str(k).startswith("timing/")
    }
