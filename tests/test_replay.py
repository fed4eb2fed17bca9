"""The managed loop's validation replay (trainers/replay.py): a first complete pass under
the byte limit is kept and replayed; anything else streams every time. End to end (the
replayed validation reports the loss of the model on every holdout row):
test_torch_managed.py."""

from __future__ import annotations

import sys

import numpy as np
import torch

from pinnacle_ray.trainers.replay import Replay, tensor_bytes


class Stream:
    """A stream of batches that counts how often it was started."""

    def __init__(self, batches: list) -> None:
        self.batches = batches
        self.started = 0

    def __call__(self):
        self.started += 1
        yield from self.batches


def _batches(n: int, rows: int = 4) -> list:
    return [(torch.full((rows, 3), float(i)), torch.full((rows,), float(i))) for i in range(n)]


def test_the_first_complete_pass_is_kept_and_the_next_passes_replay_it():
    stream = Stream(_batches(5))
    replay = Replay(limit=1 << 20)
    first = list(replay(stream))
    assert replay.replaying and stream.started == 1
    for _ in range(3):
        again = list(replay(stream))
        assert len(again) == 5
        assert all(a[0] is b[0] and a[1] is b[1] for a, b in zip(again, first, strict=True))
    assert stream.started == 1  # the stream was never asked again


def test_a_pass_over_the_limit_keeps_nothing_and_every_pass_streams():
    batches = _batches(5)  # 4 x 3 + 4 float32 values: 64 bytes per batch
    assert tensor_bytes(batches[0]) == 64
    stream = Stream(batches)
    replay = Replay(limit=4 * 64 - 1)  # the fourth batch crosses it
    for n in range(1, 4):
        assert [b[1][0].item() for b in replay(stream)] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert stream.started == n and not replay.replaying


def test_a_pass_that_stops_part_way_is_not_replayed():
    stream = Stream(_batches(5))
    replay = Replay(limit=1 << 20)
    passing = replay(stream)
    next(passing), next(passing)
    passing.close()  # e.g. an error in the loop: the pass is incomplete
    assert not replay.replaying
    assert len(list(replay(stream))) == 5 and stream.started == 2 and replay.replaying


def test_limit_zero_always_streams_and_an_empty_pass_replays_empty():
    stream = Stream(_batches(2))
    off = Replay(limit=0)
    list(off(stream)), list(off(stream))
    assert stream.started == 2 and not off.replaying
    empty = Stream([])
    on = Replay(limit=1 << 20)
    assert list(on(empty)) == [] and list(on(empty)) == [] and empty.started == 1


def test_nested_inputs_are_counted_and_unknown_objects_are_never_kept():
    nested = ({"a": torch.zeros(2, 2), "b": [torch.zeros(3, dtype=torch.int64)]}, torch.zeros(2))
    assert tensor_bytes(nested) == 16 + 24 + 8
    assert tensor_bytes((np.zeros(4), "abc", 1, None)) == 32 + 3 + 8 + 8
    assert tensor_bytes(np.array(["x"], dtype=object)) == sys.maxsize
    assert tensor_bytes((torch.zeros(1), object())) == sys.maxsize
    stream = Stream([(object(), torch.zeros(1))])
    replay = Replay(limit=1 << 20)
    list(replay(stream)), list(replay(stream))
    assert stream.started == 2 and not replay.replaying


def test_forget_drops_the_kept_pass_and_the_next_pass_streams_and_keeps_again():
    # The managed loop forgets when not every worker kept its pass, so all stream together.
    stream = Stream(_batches(3))
    replay = Replay(limit=1 << 20)
    list(replay(stream))
    replay.forget()
    assert not replay.replaying
    assert len(list(replay(stream))) == 3 and stream.started == 2 and replay.replaying
    list(replay(stream))
    assert stream.started == 2
