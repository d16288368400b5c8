"""Shared fixtures of the storage tests.

- ``segment_bytes``: parametrized over a segment of about one record, a few records and the default,
  so every test that uses it also exercises rolling (queuelib runs its suite at chunk sizes 1-4).
- ``make_topic``: creates a topic in a fresh data directory with config overrides.
- ``rec``: a :class:`PendingRecord` with a fixed, deterministic timestamp unless given one.

Timestamps are fixed (``T0`` plus a step) so that roll-by-time and retention never depend on the
wall clock; retention is always applied with an explicit ``now``.
"""

from __future__ import annotations

import os

import pytest

from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic

from badinput import box, span, template  # noqa: E402,F401 (the bad-input catalogue's fixtures)

#: 2025-11-27T08:00:00Z, the example timestamp of FORMAT.md
T0 = 1_764_230_400_000

SEGMENT_SIZES = {
    "one-record": 150,  # every batch after the first in a segment rolls
    "few-records": 600,
    "default": 16 * 1024 * 1024,
}


def rec(value, key=None, headers=None, ts=None, i=0) -> PendingRecord:
    return PendingRecord(T0 + i if ts is None else ts, key, headers, value)


@pytest.fixture(params=list(SEGMENT_SIZES.values()), ids=list(SEGMENT_SIZES))
def segment_bytes(request) -> int:
    return request.param


@pytest.fixture
def data_dir(tmp_path) -> str:
    path = tmp_path / "data"
    path.mkdir()
    return str(path)


@pytest.fixture
def make_topic(data_dir):
    """``make_topic(name="t", partitions=1, **config)``; config keys use '_' for '.'."""
    topics = []

    def make(name: str = "t", partitions: int = 1, **config) -> Topic:
        t = Topic.create(data_dir, name, partitions, {k.replace("_", "."): v for k, v in config.items()})
        topics.append(t)
        return t

    yield make
    for t in topics:
        t.close()


def reopen(topic: Topic) -> Topic:
    """Close every descriptor of ``topic`` and open it again as a fresh process would."""
    topic.close()
    return Topic(topic.data_dir, topic.name)


def read_all(topic: Topic, partition: int = 0, start: int | None = None) -> list:
    reader = topic.reader(partition)
    try:
        offset = reader.log_start_offset() if start is None else start
        out = []
        while True:
            got = reader.read(offset, 1000)
            if not got:
                return out
            out.extend(got)
            offset = got[-1].offset + 1
    finally:
        reader.close()


def segment_files(data_dir: str, topic: str, partition: int) -> list[str]:
    """The ``.log`` files of one partition, oldest first: how many times it rolled, plus one."""
    t = Topic(data_dir, topic)
    try:
        return sorted(f for f in os.listdir(t.partition_path(partition)) if f.endswith(".log"))
    finally:
        t.close()


def tmp_files(data_dir: str) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(data_dir):
        found.extend(os.path.join(root, f) for f in files if f.endswith(".tmp"))
    return found


@pytest.fixture
def fault_hook(monkeypatch):
    """``fault_hook(hook)`` routes every write/fsync of logbroker.storage.fsutil through ``hook(op, target)``
    until the test ends (or ``fault_hook(None)``)."""
    from logbroker.storage import fsutil

    def install(hook):
        monkeypatch.setattr(fsutil, "fault_hook", hook)
        return hook
    return install
