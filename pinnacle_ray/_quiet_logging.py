"""Console logging for the Ray processes of a local instance pinnacle_ray starts.

Ray Data's actors log every epoch's execution at INFO; their log files under
``/tmp/ray/session_*/logs`` keep everything, only the console is quieter.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RAY_DATA_LOGGING_CONFIG", "worker_env"]

RAY_DATA_LOGGING_CONFIG = Path(__file__).with_name("_ray_data_logging.yaml")


def worker_env() -> dict[str, str]:
    """Environment for the Ray workers of a local instance: Ray Data logs at WARNING on
    the console, and Ray's own deprecation notices (meant for Ray's developers) hidden."""
    return {
        "RAY_DATA_LOGGING_CONFIG": str(RAY_DATA_LOGGING_CONFIG),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
