"""A user's own training script, run with plain ``ray job submit -- python train_in_ray_job.py``
(no pinnacle CLI): its ``fit`` finds it runs inside a Ray job and records the job.

Usage: python train_in_ray_job.py URL ARTIFACT_ROOT TABLE NAME [ok|fail|die]
  ok: fit and register; fail: a fit that raises; die: fit, then the driver is killed.
"""

from __future__ import annotations

import os
import signal
import sys

from sklearn.linear_model import Ridge

import pinnacle_ray as pr

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def main() -> None:
    url, artifact_root, table, name = sys.argv[1:5]
    mode = sys.argv[5] if len(sys.argv) > 5 else "ok"
    store = pr.connect(url, artifact_root=artifact_root)
    features = FEATURES + (["no_such_column"] if mode == "fail" else [])
    trainer = pr.SklearnTrainer(Ridge(alpha=0.1), features=features, label="target", name=name)
    result = trainer.fit(
        train=store.table(table, where={"split": "train"}, key="id"),
        valid=store.table(table, where={"split": "valid"}, key="id"),
    )
    print(f"registered {result.name} version {result.version}", flush=True)
    if mode == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # the driver dies before the job can end well


if __name__ == "__main__":
    main()
