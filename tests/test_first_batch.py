"""EarlyFirst: a training shard's first batch is asked for at once, on a background thread,
and the loop still reads every batch once, in order (unit tier: no Ray)."""

from __future__ import annotations

import threading

import pytest

from pinnacle_ray.trainers.first_batch import EarlyFirst


def test_the_first_item_is_fetched_before_anyone_asks_for_it():
    asked = threading.Event()

    def items():
        asked.set()
        yield from range(3)

    early = EarlyFirst(items())
    assert asked.wait(timeout=30)  # the background thread started the iterator
    assert list(early) == [0, 1, 2]


def test_every_item_comes_once_in_order_and_the_end_is_the_end():
    early = EarlyFirst(iter(range(1_000)))
    assert list(early) == list(range(1_000))
    with pytest.raises(StopIteration):
        next(early)


def test_an_empty_iterator_stops_at_the_first_next():
    assert list(EarlyFirst(iter(()))) == []


def test_an_error_of_the_first_fetch_is_raised_by_the_callers_first_next():
    class BadBatch(ValueError):
        pass

    def items():
        raise BadBatch("label column 'y' is NaN in 3 rows")
        yield  # a generator

    early = EarlyFirst(items())
    with pytest.raises(BadBatch, match="NaN in 3 rows"):
        next(early)


def test_only_the_first_item_is_read_on_the_background_thread():
    threads: list[str] = []

    def items():
        for i in range(3):
            threads.append(threading.current_thread().name)
            yield i

    assert list(EarlyFirst(items())) == [0, 1, 2]
    main = threading.current_thread().name
    assert threads[0] == "pinnacle-first-batch" and threads[1:] == [main, main]
