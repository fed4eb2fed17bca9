"""Console logging for the Ray processes of a local instance pinnacle_ray starts.

Ray Data's actors log every epoch's execution at INFO; their log files under
``/tmp/ray/session_*/logs`` keep everything, only the console is quieter.
"""

from __future__ import annotations

from pathlib import Path

from .constants import PYTHONWARNINGS_ENV, RAY_DATA_LOGGING_CONFIG_ENV

__all__ = ["RAY_DATA_LOGGING_CONFIG", "worker_env"]

RAY_DATA_LOGGING_CONFIG = Path(__file__).with_name("ray_data_logging.yaml")


# The one deprecation notice Ray prints for its own code on every fit (Ray Train's dataset
# manager reads a deprecated Ray Data option); a field of PYTHONWARNINGS matches the start
# of the message. Every other warning, the user's own tasks' included, shows as usual.
_RAY_OWN_NOTICES = ("ignore:`ExecutionOptions.exclude_resources` is deprecated",)


def worker_env() -> dict[str, str]:
    """Environment for the Ray workers of a local instance pinnacle_ray starts: Ray Data
    logs at WARNING on the console, and the deprecation notice Ray prints about its own
    code on every fit is hidden; nothing else (a blanket ``ignore::DeprecationWarning``
    would hide the user's own warnings in every task)."""
    return {
        RAY_DATA_LOGGING_CONFIG_ENV: str(RAY_DATA_LOGGING_CONFIG),
        PYTHONWARNINGS_ENV: ",".join(_RAY_OWN_NOTICES),
    }
