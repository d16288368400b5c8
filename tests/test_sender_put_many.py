"""Sender.put_many (the bulk path of publish): the batches it fills are the ones putting the
records one at a time would fill."""

from __future__ import annotations

import random

import pytest

from logbroker.clients.sender import Sender, _BATCH_FIELD_ROOM


def _one_at_a_time(sizes, batch_size, max_bytes, open_size=0):
    """Counts per batch, and the size of the batch left open, when each record joins the open
    batch if it keeps it within max_bytes (an empty batch takes any one record), and a batch that
    reached batch_size is closed."""
    counts, size, count = [], open_size, 0
    for s in sizes:
        if count and size + s > max_bytes:
            counts.append(count)
            size, count = 0, 0
        size += s
        count += 1
        if size >= batch_size:
            counts.append(count)
            size, count = 0, 0
    if count:
        counts.append(count)
    return counts, size


def _fill(sizes, batch_size, max_bytes, first=()):
    def refuse(topic, partition, groups):
        raise OSError("not written in this test")
    sender = Sender(refuse, batch_size=batch_size, linger_ms=5, buffer_memory=1 << 40, max_block_ms=1000)
    sender.open_topic("t", 1, max_bytes + _BATCH_FIELD_ROOM)
    with sender.io_lock:  # the sender thread takes nothing meanwhile
        for s in first:
            sender.put("t", 0, b"x", s, 1, None)
        runs = sender.put_many("t", 0, [b"x"] * len(sizes), sizes, 1, None)
        open_batch = sender.batches["t"][0]
        counts = [count for _, _, count in runs]
        size = open_batch.size
    sender.stop(abort=True)
    return counts, size


@pytest.mark.parametrize("seed", range(60))
def test_put_many_fills_the_batches_putting_records_one_at_a_time_would(seed):
    rng = random.Random(seed)
    batch_size = rng.choice([1, 50, 300, 1000])
    max_bytes = rng.choice([60, 400, 5000])
    sizes = [rng.choice([1, 10, 40, 70, 200, 600]) for _ in range(rng.randrange(1, 60))]
    first = [rng.choice([10, 40])] if rng.random() < 0.5 else []
    want, want_size = _one_at_a_time(first + sizes, batch_size, max_bytes)
    if first:
        want[0] -= 1  # the open batch's first record was put before
        if want[0] == 0:
            want.pop(0)
    counts, size = _fill(sizes, batch_size, max_bytes, first)
    assert counts == want and size == want_size
