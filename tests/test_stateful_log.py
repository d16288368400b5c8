"""A Hypothesis state machine running one partition beside the in-memory model of tests/model.py.

Rules: append (random batch sizes, keys, headers, timestamps that may go back), read from random
offsets, offset_for_timestamp, retention with an explicit ``now``, and reopen (close every handle
and open a new Topic, as a new process would). Rolls come from tiny ``segment.bytes`` and a short
``segment.ms``. After every step the log must equal the model: same offsets, records, log start,
high watermark and segment bases.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from logbroker.errors import OffsetOutOfRangeError
from logbroker.storage.record import PendingRecord
from corrupt import batch_bytes
from logbroker.storage.segment import list_segments
from logbroker.storage.topic import Topic

from conftest import SEGMENT_SIZES, T0, tmp_files
from model import LogModel

SEGMENT_MS = 5_000

keys = st.none() | st.sampled_from(["a", "b", "ключ", ""])
headers = st.none() | st.dictionaries(st.sampled_from(["h", "trace"]), st.text(max_size=5), max_size=2)
values = st.none() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=40) | st.lists(st.integers(-9, 9), max_size=5) | st.fixed_dictionaries(
    {"n": st.integers(0, 100)})


class PartitionMachine(RuleBasedStateMachine):
    @initialize(segment_bytes=st.sampled_from(list(SEGMENT_SIZES.values())),
                retention_bytes=st.sampled_from([-1, 0, 800]), retention_ms=st.sampled_from([-1, 0, 3_000]))
    def create(self, segment_bytes, retention_bytes, retention_ms):
        self.dir = tempfile.mkdtemp(prefix="lb-stateful-")
        self.topic = Topic.create(self.dir, "t", 1, {
            "segment.bytes": segment_bytes, "segment.ms": SEGMENT_MS,
            "retention.bytes": retention_bytes, "retention.ms": retention_ms})
        self.model = LogModel(segment_bytes, SEGMENT_MS, retention_bytes, retention_ms)
        self.clock = T0

    def teardown(self):
        if hasattr(self, "topic"):
            self.topic.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(batch=st.lists(st.tuples(st.integers(-2_000, 4_000), keys, headers, values), min_size=1, max_size=5))
    def append(self, batch):
        rows = []
        for step, key, hdrs, value in batch:
            self.clock += step
            rows.append((self.clock, key, hdrs or {}, value))
        pending = [PendingRecord(ts, key, hdrs, value) for ts, key, hdrs, value in rows]
        nbytes = len(batch_bytes(self.model.log_end, pending)[0])
        [result] = self.topic.log(0).append(pending)
        assert result.base_offset == self.model.append(rows, nbytes)
        assert result.count == len(rows)

    @rule(data=st.data(), max_records=st.integers(1, 20))
    def read(self, data, max_records):
        offset = data.draw(st.integers(self.model.log_start, self.model.log_end), label="offset")
        reader = self.topic.reader(0)
        try:
            got = reader.read(offset, max_records)
        finally:
            reader.close()
        expected = self.model.read(offset, max_records)
        assert [(r.offset, r.timestamp, r.key, r.headers, r.value) for r in got] == [
            (m.offset, m.timestamp, m.key, m.headers, m.value) for m in expected]

    @rule(data=st.data())
    def read_out_of_range(self, data):
        offset = data.draw(st.integers(-5, self.model.log_start - 1) | st.integers(self.model.log_end + 1,
                                                                                   self.model.log_end + 5))
        reader = self.topic.reader(0)
        try:
            reader.read(offset)
            raise AssertionError(f"read({offset}) did not raise")
        except OffsetOutOfRangeError:
            pass
        finally:
            reader.close()

    @rule(delta=st.integers(-6_000, 6_000))
    def offset_for_timestamp(self, delta):
        reader = self.topic.reader(0)
        try:
            assert reader.offset_for_timestamp(self.clock + delta) == self.model.offset_for_timestamp(self.clock + delta)
        finally:
            reader.close()

    @rule(delta=st.integers(-10_000, 20_000))
    def retention(self, delta):
        report = self.topic.log(0).apply_retention(now=self.clock + delta)
        assert len(report.deleted) == self.model.apply_retention(self.clock + delta)

    @rule()
    def reopen(self):
        self.topic.close()
        self.topic = Topic(self.dir, "t")

    @precondition(lambda self: hasattr(self, "topic"))
    @invariant()
    def log_equals_model(self):
        reader = self.topic.reader(0)
        try:
            assert reader.high_watermark() == self.model.log_end
            assert reader.log_start_offset() == self.model.log_start
            bases = [s.base for s in self.model.segments]
            # a partition never written has no segment file yet
            assert list_segments(reader.directory) in ([bases, []] if self.model.log_end == 0 else [bases])
            got = reader.read(self.model.log_start, 10_000) if self.model.log_end > self.model.log_start else []
        finally:
            reader.close()
        assert [(r.offset, r.timestamp, r.key, r.headers, r.value) for r in got] == [
            (m.offset, m.timestamp, m.key, m.headers, m.value) for m in self.model.records()]
        assert tmp_files(self.dir) == []


PartitionMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_partition_log_behaves_like_the_model = pytest.mark.slow(PartitionMachine.TestCase)
