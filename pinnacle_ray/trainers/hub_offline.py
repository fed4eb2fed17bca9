"""Hugging Face Hub offline for one task in a Ray worker, and back as it was after.

A Ray worker process is pooled: the next task it runs (another fit, or the user's own
code) inherits whatever a task left in ``os.environ`` and in imported modules. So a
training loop that must never download sets ``HF_HUB_OFFLINE=1`` only while it runs.
``huggingface_hub`` reads the variable once, when it is first imported, into
``huggingface_hub.constants.HF_HUB_OFFLINE`` (which ``transformers`` consults); both are
set for the task and restored after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .._internal.constants import HF_OFFLINE_ENV as OFFLINE_ENV

__all__ = ["OFFLINE_ENV", "hub_offline"]


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Run the block with the Hugging Face Hub offline; the environment variable and the
    hub's own flag are what they were before once it ends (also on an error)."""
    import huggingface_hub.constants as hub

    had_env, env_value = OFFLINE_ENV in os.environ, os.environ.get(OFFLINE_ENV)
    flag = hub.HF_HUB_OFFLINE
    os.environ[OFFLINE_ENV] = "1"
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if had_env:
            os.environ[OFFLINE_ENV] = env_value or ""
        else:
            os.environ.pop(OFFLINE_ENV, None)
        hub.HF_HUB_OFFLINE = flag
