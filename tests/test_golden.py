"""Files written by format v1 stay readable: tests/golden/v1/ holds a committed partition.

tests/golden/make_golden.py wrote it (two segments, batches of one and of several records, keys,
headers, unicode, index entries). These tests read those bytes with the current code and check the
index entries by unpacking them directly, without logbroker's index module or ``inspect``.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys

import orjson

from logbroker.storage.topic import Topic

import corrupt

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "v1")
PARTITION = os.path.join(GOLDEN, "golden", "golden-0")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
from make_golden import BATCHES, T0  # noqa: E402  (what the script wrote)

EXPECTED = [(ts, key, headers or {}, value) for batch in BATCHES for ts, key, headers, value in batch]
# (relative offset, position) of .index; (max timestamp before, relative offset) of .timeindex
INDEX = {0: [(9, 1332), (19, 2964)], 29: [(10, 1638), (17, 2696)]}
TIMEINDEX = {0: [(T0 + 24, 9), (T0 + 34, 19), (T0 + 44, 29)], 29: [(T0 + 54, 10), (T0 + 100, 17)]}  # active: no closing entry


def test_the_golden_partition_reads_back_exactly_the_records_written(tmp_path):
    before = corrupt.snapshot(GOLDEN)
    t = Topic(GOLDEN, "golden")
    reader = t.reader(0)
    records = reader.read(0, 1000)
    assert [r.offset for r in records] == list(range(len(EXPECTED)))
    assert [(r.timestamp, r.key, r.headers, r.value) for r in records] == EXPECTED
    assert [orjson.loads(r.value) for r in reader.read(0, 1000, raw=True)] == [v for *_, v in EXPECTED]
    assert [reader.offset_for_timestamp(T0 + d) for d in (-1, 2, 3, 99, 100, 101, 200, 201)] == [0, 2, 3, 44, 44, 46, 46, None]
    assert reader.read(30, 2)[0].value == {"i": 26, "pad": "p" * 60}
    reader.close()
    t.close()
    assert corrupt.snapshot(GOLDEN) == before  # reading wrote nothing


def test_the_golden_index_entries_point_at_the_batches_they_name():
    for base in (0, 29):
        with open(os.path.join(PARTITION, f"{base:020d}.index"), "rb") as f:
            index = [struct.unpack(">II", c) for c in iter(lambda: f.read(8), b"")]
        with open(os.path.join(PARTITION, f"{base:020d}.timeindex"), "rb") as f:
            times = [struct.unpack(">qI", c) for c in iter(lambda: f.read(12), b"")]
        assert index == INDEX[base] and times == TIMEINDEX[base]
        with open(os.path.join(PARTITION, f"{base:020d}.log"), "rb") as f:
            data = f.read()
        for rel, pos in index:
            assert data[pos - 1:pos] == b"\n"
            assert data[pos + 18:].startswith(b'"offset":%d,' % (base + rel))


def test_the_golden_partition_recovers_clean_and_takes_appends_in_a_copy(tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(GOLDEN, copy)
    t = Topic(str(copy), "golden")
    assert not t.log(0).recover()
    from logbroker.storage.record import PendingRecord
    [res] = t.log(0).append([PendingRecord(T0 + 300, None, None, "new")])
    assert res.base_offset == len(EXPECTED)
    t.close()
