"""Secrets for a submitted job through a channel Ray does not display.

Ray shows a job's ``runtime_env`` (``env_vars`` included), entrypoint and metadata in its
dashboard and returns them from the job API (``JobSubmissionClient.get_job_info``,
``/api/jobs/``; ray-project/ray#39502). So a variable whose value is secret (its name says
PASSWORD, SECRET, TOKEN, KEY..., or its value is a URL with a password such as
``${PINNACLE_STORE}``) is not put there: it travels in a file, ``env.json``, inside a small
package of its own shipped with the job (``py_modules``, uploaded like the working dir and
shown only as a ``gcs://`` URI). Only that package's name is in ``env_vars``. The job's driver
(``pinnacle-ray train|sweep|predict``) reads the file into its environment before the spec
is loaded and deletes it at once: :func:`load_job_secrets`.

On a cluster whose pods already hold the variable in their environment (KubeRay's
``secretKeyRef``), the cluster's value is used and the shipped one is only deleted.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ..datastore.url import mask

__all__ = [
    "SECRETS_ENV",
    "is_secret",
    "load_job_secrets",
    "secrets_package",
]

logger = logging.getLogger("pinnacle_ray.jobs")

SECRETS_ENV = "PINNACLE_RAY_JOB_SECRETS"
_FILE = "env.json"
_PREFIX = "_pinnacle_job_secrets_"
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY", re.I
)


def is_secret(name: str, value: str) -> bool:
    """Whether environment variable ``name`` = ``value`` must stay out of Ray's job view."""
    return bool(_SECRET_NAME.search(name)) or mask(value) != value


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
    A variable the cluster already gives the driver (e.g. KubeRay pods' ``PINNACLE_STORE``
    from a Kubernetes secret) keeps the cluster's value: inside the cluster, that is the
    address that works."""
    name = os.environ.get(SECRETS_ENV, "")
    if not name.startswith(_PREFIX) or not name.isidentifier():
        return []
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
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
