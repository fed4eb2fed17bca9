"""Validate table and column names before they reach SQL; quoting is SQLAlchemy's job.

The rule lives in :mod:`pinnacle_ray._internal.names`, with the one for model and run names, so
every entry point gives the same message; this module keeps its import path.
"""

from __future__ import annotations

from .._internal.names import IDENTIFIER_LIMITS, MAX_IDENTIFIER_BYTES, validate_identifier

__all__ = ["IDENTIFIER_LIMITS", "MAX_IDENTIFIER_BYTES", "validate_identifier"]
