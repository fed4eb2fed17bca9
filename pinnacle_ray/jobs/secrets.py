"""Secrets for a submitted job through a channel Ray does not display.

Ray shows a job's ``runtime_env`` (``env_vars`` included), entrypoint and metadata in its
dashboard and returns them from the job API (``JobSubmissionClient.get_job_info``,
``/api/jobs/``; ray-project/ray#39502). So a variable whose value is secret (its name says
PASSWORD, SECRET, TOKEN, KEY..., or its value is a URL with a password such as
``${PINNACLE_RAY_STORE}``) is not put there: it travels in a file, ``env.json``, inside a small
package of its own shipped with the job (``py_modules``, uploaded like the working dir and
shown only as a ``gcs://`` URI). Only that package's name is in ``env_vars``. The job's driver
(``pinnacle-ray train|sweep|predict``) reads the file into its environment before the spec
is loaded and deletes it at once: :func:`load_job_secrets`. Ray unpacks the package on
every node that starts a worker for the job too; there a worker setup hook deletes it as
the first worker starts (:func:`with_removal_hook`, ``pinnacle_ray._internal.secrets_hook``).

On a cluster whose pods already hold the variable in their environment (KubeRay's
``secretKeyRef``), the cluster's value is used and the shipped one is only deleted.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._internal.constants import env_text
from .._internal.secrets import is_secret_variable, mask
from .._internal.secrets_hook import (
    HOOK,
    PACKAGE_PREFIX,
    SECRETS_ENV,
    SECRETS_FILE,
    USER_HOOK_ENV,
    package_locations,
)
from ..errors import ConfigError

__all__ = [
    "SECRETS_ENV",
    "is_secret",
    "load_job_secrets",
    "secrets_package",
    "with_removal_hook",
]

logger = logging.getLogger("pinnacle_ray.jobs")

_FILE = SECRETS_FILE
_PREFIX = PACKAGE_PREFIX


def is_secret(name: str, value: str) -> bool:
    """Whether environment variable ``name`` = ``value`` must stay out of Ray's job view."""
    return is_secret_variable(name) or mask(value) != value


@contextmanager
def secrets_package(values: Mapping[str, str]) -> Iterator[str]:
    """A temporary package folder holding ``values`` (for ``runtime_env["py_modules"]``),
    removed when the block ends; yields its path. Readable by this user only."""
    with tempfile.TemporaryDirectory(prefix="pinnacle-secrets-") as parent:
        folder = Path(parent) / f"{_PREFIX}{uuid.uuid4().hex}"
        folder.mkdir(mode=0o700)
        (folder / "__init__.py").write_text("")
        path = folder / _FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dict(values), f)
        yield str(folder)


def package_name(folder: str) -> str:
    """The name the job finds the package under (``SECRETS_ENV``'s value)."""
    return Path(folder).name


def load_job_secrets() -> list[str]:
    """In a job's driver: set the variables shipped by ``pinnacle-ray submit`` in this
    process's environment and delete their file; the names set (none outside such a job).
    A variable the cluster already gives the driver (e.g. KubeRay pods' ``PINNACLE_RAY_STORE``
    from a Kubernetes secret) keeps the cluster's value: inside the cluster, that is the
    address that works."""
    name = env_text(SECRETS_ENV)
    if not name.startswith(_PREFIX) or not name.isidentifier():
        return []
    for location in package_locations(name):
        path = Path(location) / _FILE
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        finally:
            path.unlink(missing_ok=True)  # read once: no copy stays on this node's disk
        given = {str(k): str(v) for k, v in values.items() if str(k) not in os.environ}
        os.environ.update(given)
        kept = sorted(set(map(str, values)) - set(given))
        if kept:
            logger.info("kept the cluster's own value of %s", ", ".join(kept))
        return sorted(given)
    logger.warning(
        "%s=%s names no secrets file (already read by an earlier driver on this node?)",
        SECRETS_ENV,
        name,
    )
    return []


def with_removal_hook(runtime_env: dict[str, Any], **env_vars: str) -> dict[str, Any]:
    """``runtime_env`` (plus ``env_vars``) whose worker processes, on whatever node they
    start, delete that node's copy of the job's secret files
    (``pinnacle_ray._internal.secrets_hook``); a ``worker_process_setup_hook`` of the job's
    own runs after it."""
    shipped = dict(runtime_env)
    variables = {**(runtime_env.get("env_vars") or {}), **env_vars}
    own = runtime_env.get("worker_process_setup_hook")
    if own is not None and own != HOOK:
        if not isinstance(own, str) or "." not in own:
            raise ConfigError(
                "runtime_env['worker_process_setup_hook'] of a submitted job must be an import "
                f"path such as 'mypkg.setup.configure' (Ray's job API takes no function), got "
                f"{own!r}"
            )
        variables[USER_HOOK_ENV] = own
    shipped["worker_process_setup_hook"] = HOOK
    shipped["env_vars"] = variables
    return shipped
