"""Start a training shard's read pipeline while the worker is still setting up.

On a fresh Ray Train worker the first batch and the optimizer both take about a second:
the first ``next()`` on a shard's batches starts Ray Data's execution for the epoch (the
split coordinator, the read tasks, the first block's conversion), mostly waiting on other
processes, while building the first ``torch.optim`` optimizer imports ``torch._dynamo``
in this one (measured ~1 s on 2 CPUs; hand-written Ray Train loops pay it too). Done one
after the other they add up before the first step. :class:`EarlyFirst` asks for the first
batch on a background thread at once, so the two overlap; the loop then reads the batches
as usual, in the same order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["EarlyFirst"]

_T = TypeVar("_T")


class EarlyFirst(Generic[_T]):
    """``iterator``'s items, the first one fetched on a background thread from creation.

    Example::

        batches = EarlyFirst(shard_batches())   # the read pipeline starts now
        optimizer = torch.optim.Adam(...)        # ... while this imports torch._dynamo
        for batch in batches: ...                # the first batch is waiting, or nearly

    The thread only calls ``next()`` once; the rest is read on the caller's thread, never
    both at a time. An exception raised by that first ``next()`` is raised by the caller's
    first ``next()`` instead (same object, so its type and message reach the user).
    """

    def __init__(self, iterator: Iterator[_T]) -> None:
        self._iterator = iterator
        self._first: tuple[_T, ...] = ()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._fetch, name="pinnacle-first-batch", daemon=True
        )
        self._thread.start()

    def _fetch(self) -> None:
        try:
            self._first = (next(self._iterator),)
        except StopIteration:  # an empty shard: the caller's first next() stops too
            pass
        except BaseException as exc:  # handed to the caller's thread, raised there
            self._error = exc

    def __iter__(self) -> EarlyFirst[_T]:
        return self

    def __next__(self) -> _T:
        if self._thread is None:
            return next(self._iterator)
        self._thread.join()
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if not self._first:
            raise StopIteration
        (item,) = self._first
        self._first = ()
        return item
