"""Run specs, Ray Jobs submission, and job records in the datastore.

- :func:`load_spec` reads and validates a YAML run spec (``${ENV_VAR}`` interpolation);
- :func:`run_train` / :func:`run_sweep` / :func:`run_predict` run one (``pinnacle-ray train``);
- :func:`submit_spec` submits one to a Ray cluster with Ray's ``JobSubmissionClient``;
- :class:`JobRecords` is the jobs table; :mod:`.tracking` reads Ray's side and reconciles;
- :class:`JobCatalog` is ``store.jobs`` (``pinnacle_ray.connect`` hands the datastore its factory),
  :class:`Job` the handle ``trainer.submit(...)`` and ``store.jobs.get(id)`` return.
"""

from __future__ import annotations

from .catalog import JobCatalog
from .handle import Job
from .recording import current_submission_id
from .records import JobRecord, JobRecords
from .runner import RunOutcome, run_predict, run_sweep, run_train
from .spec import LoadedSpec, load_spec, parse_spec
from .submit import submit_spec

__all__ = [
    "Job",
    "JobCatalog",
    "JobRecord",
    "JobRecords",
    "LoadedSpec",
    "RunOutcome",
    "current_submission_id",
    "load_spec",
    "parse_spec",
    "run_predict",
    "run_sweep",
    "run_train",
    "submit_spec",
]
