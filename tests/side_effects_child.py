"""``python side_effects_child.py {user-ray|our-ray} DB``: reads table ``t`` of SQLite file
DB through a Ray Dataset, with Ray started by the user first (``user-ray``, after setting the
``ray.data`` logger to DEBUG) or by pinnacle_ray (``our-ray``); prints one JSON line: the
``ray.*`` logger levels and filters afterwards, whether ``RAY_num_workers_soft_limit`` is
left in this process's environment, and what a Python child started from a Ray task (with
the worker's environment) shows of its own DeprecationWarning."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import ray

import pinnacle_ray as pr


@ray.remote
def child_warning() -> dict[str, str]:
    code = "import warnings; warnings.warn('user-notice', DeprecationWarning)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return {
        "stderr": done.stderr,
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", ""),
        "RAY_DATA_LOGGING_CONFIG": os.environ.get("RAY_DATA_LOGGING_CONFIG", ""),
    }


def main(mode: str, db: str) -> None:
    before = {n: os.environ.get(n) for n in ("PYTHONWARNINGS", "RAY_DATA_LOGGING_CONFIG")}
    if mode == "user-ray":
        logging.getLogger("ray.data").setLevel(logging.DEBUG)
        ray.init(num_cpus=2, include_dashboard=False)
    store = pr.connect(db)
    rows = store.table("t").to_dataset().count()
    names = ("ray.data", "ray.train", "ray.tune", "ray.data._internal.progress")
    out = {
        "rows": rows,
        "levels": {n: logging.getLogger(n).level for n in names},
        "dataset_filters": len(logging.getLogger("ray.data.dataset").filters),
        "soft_limit_left": "RAY_num_workers_soft_limit" in os.environ,
        "worker_env_changed": [n for n, v in before.items() if os.environ.get(n) != v],
        "child": ray.get(child_warning.remote()),
    }
    print(json.dumps(out), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
