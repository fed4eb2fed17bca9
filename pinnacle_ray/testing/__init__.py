"""What you may test your own pipelines with, without a database server.

- ``pinnacle_ray.testing.mongo``: ``pinnacle_ray.testing.mongo.MongoStandIn``, a
  MongoDB stand-in on a localhost port that the real ``pymongo`` client (and every Ray
  worker) talks to; needs the ``testing`` extra (``pip install "pinnacle-ray[testing]"``).

Importing this package imports nothing else; ``MongoStandIn`` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mongo import MongoStandIn

__all__ = ["MongoStandIn"]


def __getattr__(name: str) -> Any:
    if name == "MongoStandIn":
        from .mongo import MongoStandIn

        return MongoStandIn
    raise AttributeError(f"module 'pinnacle_ray.testing' has no attribute {name!r}")
