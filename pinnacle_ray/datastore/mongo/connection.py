"""What the MongoDB store's parts use of the store: its URI, database and one helper that
runs a pymongo call with the store's error translation.

:class:`~.store.MongoDatastore` is the one implementation. Its parts (queries, writes,
GridFS blobs) type against :class:`MongoConnection` instead of the class, so no part
imports the store, which imports them: imports in this folder run one way. The underscored
members are internal to the datastore room, not user API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..base import Datastore

if TYPE_CHECKING:
    from ..base import ModelVersions

__all__ = ["MongoConnection"]

T = TypeVar("T")


class MongoConnection(Datastore, Protocol):
    """A connected MongoDB datastore, as its queries, writers and GridFS files see it: the
    :class:`~..base.Datastore` surface and the internals below."""

    database: str  # the database named in the URL
    _uri: str  # with its password: read tasks connect with it, never show it
    _secrets: tuple[str, ...]  # masked in every error message

    @property
    def models(self) -> ModelVersions:
        """The model registry the store was handed (``q.since`` reads a version's lineage)."""
        ...

    def _call(self, fn: Callable[[Any], T], context: str) -> T:
        """``fn(database)``, its driver errors as ``PinnacleError``s naming ``context``."""
        ...

    def _database(self) -> Any:
        """The pymongo ``Database``."""
        ...

    def _check_collection_name(self, name: object) -> str:
        """``name`` if MongoDB allows it as a collection name, else ``InvalidIdentifier``."""
        ...

    def _require_collection(self, name: str) -> str:
        """``name`` if the collection exists, else ``TableNotFound``."""
        ...
