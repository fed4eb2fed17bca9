"""What Ray shows of a job, as a client of the test's token-auth cluster sees it: the job
API's ``JobSubmissionClient.get_job_info`` and the dashboard's REST listing ``/api/jobs/``.

Usage: python job_view.py ADDRESS JOB_ID   (prints {"info": ..., "listing": ...})
"""

from __future__ import annotations

import json
import sys
import urllib.request

from ray._private.authentication.http_token_authentication import (
    get_auth_headers_if_auth_enabled,
)
from ray.job_submission import JobSubmissionClient


def main() -> None:
    address, job_id = sys.argv[1:3]
    info = JobSubmissionClient(address).get_job_info(job_id)
    request = urllib.request.Request(
        f"{address.rstrip('/')}/api/jobs/", headers=get_auth_headers_if_auth_enabled({})
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        listing = response.read().decode()
    print(json.dumps({"info": info.dict(), "listing": listing}, default=str))


if __name__ == "__main__":
    main()
