"""Another process, later: find a job by its id in the datastore (``store.jobs.get``) and
wait for it, read its record reconciled with Ray, or stop it. Prints JSON.

Usage: python job_client.py wait|record|stop URL ARTIFACT_ROOT JOB_ID
"""

from __future__ import annotations

import json
import sys
import time

import pinnacle_ray as pr


def main() -> None:
    action, url, artifact_root, job_id = sys.argv[1:5]
    store = pr.connect(url, artifact_root=artifact_root)
    job = store.jobs.get(job_id)
    out: dict = {"id": job.id}
    if action == "wait":
        try:
            result = job.wait(timeout=400)
        except pr.JobFailed as exc:
            out.update(status=exc.status, error=exc.error, message=str(exc), logs=job.logs())
        else:
            out.update(
                status=job.status(),
                name=result.name,
                version=result.version,
                metrics={k: v for k, v in result.metrics.items() if isinstance(v, float)},
                checkpoint=result.checkpoint.path if result.checkpoint else None,
            )
    elif action == "stop":
        deadline = time.monotonic() + 200
        while job.status() != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)  # polls a condition, with a deadline: the driver marks RUNNING
        out.update(before=job.status(), after=job.stop(timeout=120))
    elif action != "record":
        raise SystemExit(f"unknown action {action!r}")
    out["record"] = job.record.to_dict()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
