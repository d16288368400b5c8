"""A Hypothesis state machine for compaction: produce (keys from a small set, values, tombstones),
compact, read from any offset, and reopen, checked against a model after every step.

The model: after a pass over the closed segments (everything below the active segment's base),
a read from the log start yields, for each key, its latest record below that point, in offset
order, then every record from that point on, untouched; a tombstone goes only once it has been
through one pass and is more than ``delete.retention.ms`` old.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from logbroker.storage.cleaner import clean_partition
from logbroker.tools.inspect import inspect_path
from logbroker.storage.record import PendingRecord
from logbroker.storage.segment import list_segments
from logbroker.storage.topic import Topic

from conftest import T0

KEYS = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.none() | st.integers(0, 1000) | st.fixed_dictionaries({"v": st.text(max_size=30)})


class CompactionMachine(RuleBasedStateMachine):
    @initialize(segment_bytes=st.sampled_from([150, 400, 1500]), delete_retention_ms=st.sampled_from([0, 50, 10**9]))
    def create(self, segment_bytes, delete_retention_ms):
        self.dir = tempfile.mkdtemp(prefix="lb-compaction-")
        self.topic = Topic.create(self.dir, "t", 1, {
            "cleanup.policy": "compact", "segment.bytes": segment_bytes, "fsync": "never",
            "delete.retention.ms": delete_retention_ms, "min.cleanable.dirty.ratio": 0})
        self.delete_retention_ms = delete_retention_ms
        self.records: dict[int, tuple[str, object, int]] = {}  # offset -> (key, value, timestamp)
        self.log_end = 0
        self.first_dirty = 0
        self.clock = T0

    def teardown(self):
        if hasattr(self, "topic"):
            self.topic.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(batch=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4), step=st.integers(0, 40))
    def produce(self, batch, step):
        self.clock += step
        [result] = self.topic.log(0).append([PendingRecord(self.clock, k, None, v) for k, v in batch])
        assert result.base_offset == self.log_end
        for k, v in batch:
            self.records[self.log_end] = (k, v, self.clock)
            self.log_end += 1

    @rule(advance=st.integers(1, 100))
    def compact(self, advance):
        self.clock += advance
        now = self.clock
        bases = list_segments(self.topic.log(0).directory)
        end = bases[-1] if bases else 0  # the active segment's base: a roll decision
        report = clean_partition(self.topic.log(0), now=now, force=True)
        assert report.ran == (len(bases) > 1), report.reason  # only closed segments are cleaned
        if not report.ran:
            return
        latest = {}
        for off, (key, _v, _t) in sorted(self.records.items()):
            if off < end:
                latest[key] = off
        kept = {}
        for off, (key, value, ts) in self.records.items():
            if off >= end:
                kept[off] = (key, value, ts)
            elif latest[key] == off and not (value is None and off < self.first_dirty
                                             and now - ts > self.delete_retention_ms):
                kept[off] = (key, value, ts)
        self.records = kept
        self.first_dirty = end

    @rule(data=st.data())
    def read_from_any_offset(self, data):
        if not self.log_end:
            return
        offset = data.draw(st.integers(0, self.log_end - 1))
        n = data.draw(st.integers(1, 5))
        reader = self.topic.reader(0)
        try:
            got = reader.read(offset, n)
        finally:
            reader.close()
        want = [o for o in sorted(self.records) if o >= offset][:n]
        assert [r.offset for r in got] == want

    @rule()
    def reopen(self):
        self.topic.close()
        self.topic = Topic(self.dir, "t")

    @invariant()
    def log_matches_the_model(self):
        if not hasattr(self, "topic"):
            return
        reader = self.topic.reader(0)
        try:
            out, offset = [], 0
            while True:
                got = reader.read(offset, 7)
                if not got:
                    break
                out.extend((r.offset, r.key, r.value, r.timestamp) for r in got)
                offset = got[-1].offset + 1
        finally:
            reader.close()
        assert out == [(o, *self.records[o]) for o in sorted(self.records)]

    @invariant()
    def the_partition_verifies(self):
        if hasattr(self, "topic") and self.log_end:
            report = inspect_path(self.topic.log(0).directory)
            assert report["ok"], report["problems"]


CompactionMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
test_compaction_against_the_model = pytest.mark.slow(CompactionMachine.TestCase)
