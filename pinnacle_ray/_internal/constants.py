"""Every environment variable pinnacle_ray reads, named and defaulted in this one module.

Nothing else in the package reads ``os.environ`` for a setting: it imports a name or a getter
from here (Ray Train V2's ``_internal/constants.py`` habit), so this file is the list of
every knob the environment can turn. Our own variables share one prefix, ``PINNACLE_RAY_``.
Variables that belong to Ray, Hugging Face or the user's job keep their owners' names and
are named here too, so a grep of this file finds them all.

Five of ours had shorter names before (``PINNACLE_STORE`` ...); :func:`env_text` still reads
the old name for one release, with a ``FutureWarning`` that names the new one.

Standard library only: Ray worker processes import it (the job setup hook among them).
"""

from __future__ import annotations

import os
import warnings

__all__ = [
    "ARTIFACT_ROOT_ENV",
    "CACHE_DIR_ENV",
    "HF_CACHE_ENV",
    "HF_ENDPOINT_ENV",
    "HF_OFFLINE_ENV",
    "JOB_PAYLOAD_ENV",
    "JOB_SECRETS_ENV",
    "JOB_SETUP_HOOK_ENV",
    "PYTHONWARNINGS_ENV",
    "RAY_ADDRESS_ENV",
    "RAY_DATA_LOGGING_CONFIG_ENV",
    "RAY_JOB_CONFIG_ENV",
    "RAY_TRAIN_HEALTH_CHECK_ENV",
    "RAY_TRAIN_PREEMPTION_ENV",
    "RAY_WORKERS_SOFT_LIMIT_ENV",
    "RENAMED",
    "RUN_STORAGE_DEFAULT",
    "RUN_STORAGE_ENV",
    "SQL_READER_ENV",
    "STORE_ENV",
    "TRUSTED_MODULES_ENV",
    "VERBOSE_ENV",
    "cache_dir",
    "env_flag",
    "env_text",
    "hf_offline",
    "ray_address",
    "run_storage_mode",
    "sql_reader",
    "trusted_module_names",
    "verbose",
]

# --- ours: one prefix ---------------------------------------------------------------------
# The datastore URL the CLI uses when neither --store nor a spec gives one; default: none.
STORE_ENV = "PINNACLE_RAY_STORE"
# Force one SQL reader for every query: "dbapi" or "adbc"; default "": chosen per backend.
SQL_READER_ENV = "PINNACLE_RAY_SQL_READER"
# Where Ray Train writes run folders: "auto" (shared storage when the cluster has, or can
# get, more than one node) or "shared" (the datastore's shared storage even on one node).
RUN_STORAGE_ENV = "PINNACLE_RAY_RUN_STORAGE"
RUN_STORAGE_DEFAULT = "auto"
# Local cache of downloaded artifacts; default ~/.cache/pinnacle_ray/artifacts.
CACHE_DIR_ENV = "PINNACLE_RAY_CACHE_DIR"
# Where a store keeps registered artifacts when connect() is given none (s3://, gs://,
# file://, a path); default "": beside an SQLite file, inside a server database.
ARTIFACT_ROOT_ENV = "PINNACLE_RAY_ARTIFACT_ROOT"
# "1": keep Ray's INFO logging and Ray Train's per-report lines; default "" (quiet).
VERBOSE_ENV = "PINNACLE_RAY_VERBOSE"
# Comma-separated module names whose classes a torch artifact may import on load.
TRUSTED_MODULES_ENV = "PINNACLE_RAY_TRUSTED_MODULES"
# Set by job submission for the job's processes, never by users: the import name of the
# package that carries a job's secrets, the working_dir file holding trainer.submit's
# pickled fit, and the job's own worker_process_setup_hook, run after ours.
JOB_SECRETS_ENV = "PINNACLE_RAY_JOB_SECRETS"
JOB_PAYLOAD_ENV = "PINNACLE_RAY_JOB_PAYLOAD"
JOB_SETUP_HOOK_ENV = "PINNACLE_RAY_JOB_SETUP_HOOK"

# The names of one release ago -> today's; still read, with a FutureWarning.
RENAMED = {
    "PINNACLE_STORE": STORE_ENV,
    "PINNACLE_SQL_READER": SQL_READER_ENV,
    "PINNACLE_RUN_STORAGE": RUN_STORAGE_ENV,
    "PINNACLE_CACHE_DIR": CACHE_DIR_ENV,
    "PINNACLE_ARTIFACT_ROOT": ARTIFACT_ROOT_ENV,
}
_OLD_NAME = {new: old for old, new in RENAMED.items()}

# --- others': their owners' names ---------------------------------------------------------
# Ray: the cluster to join (ray.init and the job client read it too).
RAY_ADDRESS_ENV = "RAY_ADDRESS"
# Ray Jobs: the job's runtime_env as JSON, in a job's driver process.
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# Ray Train V2, set for one fit when unset: controller poll interval, preemption watcher.
RAY_TRAIN_HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
RAY_TRAIN_PREEMPTION_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
# Ray: idle worker processes kept per node, set while a local Ray starts.
RAY_WORKERS_SOFT_LIMIT_ENV = "RAY_num_workers_soft_limit"
# Ray Data: its logging config file, given to the workers of a local Ray.
RAY_DATA_LOGGING_CONFIG_ENV = "RAY_DATA_LOGGING_CONFIG"
# Python: warning filters, extended for a local Ray's workers.
PYTHONWARNINGS_ENV = "PYTHONWARNINGS"
# Hugging Face Hub: offline mode, the Hub's address, the model cache.
HF_OFFLINE_ENV = "HF_HUB_OFFLINE"
HF_ENDPOINT_ENV = "HF_ENDPOINT"
HF_CACHE_ENV = "HF_HUB_CACHE"

_TRUE = ("1", "true", "yes", "on")


def env_text(name: str, default: str = "") -> str:
    """The value of environment variable ``name``, stripped, or ``default`` when unset or
    empty; for a renamed variable, its old name is read too (with a ``FutureWarning``
    saying which new name to set) when the new one is unset."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    old = _OLD_NAME.get(name)
    old_value = os.environ.get(old, "").strip() if old else ""
    if old and old_value:
        # The value is not repeated: a store URL carries its password.
        warnings.warn(
            f"environment variable {old} is renamed {name}; set {name} instead (the old "
            "name is read until the next release)",
            FutureWarning,
            stacklevel=2,
        )
        return old_value
    return default


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value (1, true, yes, on)."""
    return env_text(name).lower() in _TRUE


def verbose() -> bool:
    """Whether ``PINNACLE_RAY_VERBOSE`` asks for Ray's INFO logging (any value but 0)."""
    return env_text(VERBOSE_ENV) not in ("", "0")


def sql_reader() -> str:
    """The SQL reader forced by ``PINNACLE_RAY_SQL_READER`` ("dbapi", "adbc"), or ""."""
    return env_text(SQL_READER_ENV).lower()


def run_storage_mode() -> str:
    """``PINNACLE_RAY_RUN_STORAGE`` in lower case, default ``"auto"``."""
    return env_text(RUN_STORAGE_ENV, RUN_STORAGE_DEFAULT).lower()


def cache_dir() -> str:
    """The artifact cache folder from ``PINNACLE_RAY_CACHE_DIR``, or "" for the default."""
    return env_text(CACHE_DIR_ENV)


def ray_address() -> str:
    """The Ray cluster address in ``RAY_ADDRESS``, or "" (start or find a local one)."""
    return env_text(RAY_ADDRESS_ENV)


def hf_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` keeps the Hugging Face Hub offline."""
    return env_flag(HF_OFFLINE_ENV)


def trusted_module_names() -> list[str]:
    """The module names listed in ``PINNACLE_RAY_TRUSTED_MODULES`` (comma-separated)."""
    return [n.strip() for n in env_text(TRUSTED_MODULES_ENV).split(",") if n.strip()]
