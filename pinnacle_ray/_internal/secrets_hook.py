"""Ray worker setup hook of a job that carries secrets in files: removes them on every node.

``pinnacle-ray submit`` ships secret variables in a package of their own
(``runtime_env["py_modules"]``, see ``pinnacle_ray.jobs.secrets``); ``trainer.submit``
ships the pickled fit (the store's URL with its password) as the job's ``working_dir``.
Ray unpacks both on every node that starts a worker process for the job, not only on the
driver's. The driver deletes its copy once read; this hook
(``runtime_env["worker_process_setup_hook"]``, which Ray runs in each of the job's worker
processes as it starts, on any node, the driver excepted) deletes the copy on the node the
worker runs on. Workers never need those files: what they use reaches them from the
driver. A hook the job's own ``runtime_env`` named runs after (:data:`USER_HOOK_ENV`).

Imports nothing but the standard library: every worker process of the job loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from .constants import JOB_PAYLOAD_ENV, JOB_SECRETS_ENV, JOB_SETUP_HOOK_ENV, env_text

__all__ = [
    "HOOK",
    "PAYLOAD_ENV",
    "SECRETS_ENV",
    "SECRETS_FILE",
    "USER_HOOK_ENV",
    "package_locations",
    "remove_job_secrets_file",
]

# The package's import name; a file of the job's working_dir (a plain name) holding
# secrets: trainer.submit's pickle; the job's own worker_process_setup_hook, run after ours.
SECRETS_ENV, PAYLOAD_ENV, USER_HOOK_ENV = JOB_SECRETS_ENV, JOB_PAYLOAD_ENV, JOB_SETUP_HOOK_ENV
SECRETS_FILE = "env.json"
PACKAGE_PREFIX = "_pinnacle_job_secrets_"
HOOK = f"{__name__}.remove_job_secrets_file"


def package_locations(name: str | None = None) -> list[str]:
    """The folders of this node's unpacked copy of the secrets package named ``name``
    (default: :data:`SECRETS_ENV`'s value); none outside such a job."""
    name = env_text(SECRETS_ENV) if name is None else name
    if not name.startswith(PACKAGE_PREFIX) or not name.isidentifier():
        return []
    spec = importlib.util.find_spec(name)
    return list(spec.submodule_search_locations or []) if spec is not None else []


def remove_job_secrets_file() -> None:
    """Delete the secrets file from this node's copy of the job's secrets package and the
    payload from its working dir (a worker's current folder), then run the job's own setup
    hook, if it named one."""
    for location in package_locations():
        Path(location, SECRETS_FILE).unlink(missing_ok=True)
    payload = env_text(PAYLOAD_ENV)
    if payload and payload == Path(payload).name and not payload.startswith("."):
        Path(payload).unlink(missing_ok=True)  # relative: this worker's copy of working_dir
    user_hook = env_text(USER_HOOK_ENV)
    if user_hook:
        module, _, function = user_hook.rpartition(".")
        getattr(importlib.import_module(module), function)()
