"""The consumer in one process: positions, seeks, commits, auto.offset.reset, iteration, and a
stateful model test of commit / seek / reset / retention / reopen."""

from __future__ import annotations

import logging

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import SEGMENT_SIZES, T0, segment_files
from logbroker import Broker, Producer
from logbroker.groups.admin import execute_reset, plan_reset_offsets
from logbroker.clients.consumer import Consumer, OffsetAndTimestamp, TopicPartition
from logbroker.errors import GroupError, InvalidConfigError, OffsetOutOfRangeError, UnknownPartitionError


def produce(data_dir, n, start=0, topic="t", partition=0):
    with Producer(data_dir, batch_size=0) as p:  # one append per record: small segments roll between records
        for i in range(start, start + n):
            p.send(topic, {"i": i}, partition=partition, timestamp_ms=T0 + 1000 * i)


@pytest.fixture
def topic(data_dir, segment_bytes):
    """Topic t: two partitions, offsets 0..9 in partition 0 at T0 + 1000*i, at each segment size."""
    Broker(data_dir).create_topic("t", 2, {"segment.bytes": segment_bytes, "fsync": "never"})  # not about power loss
    produce(data_dir, 10)
    if segment_bytes == SEGMENT_SIZES["one-record"]:
        assert len(segment_files(data_dir, "t", 0)) == 10
    return data_dir


def values(polled):
    return [r.value["i"] for recs in polled.values() for r in recs]


def retain_below(data_dir, offset):
    """Move the log start offset of t-0 to ``offset`` the way retention does."""
    from logbroker.storage.checkpoint import write_log_start
    t = Broker(data_dir).topic("t")
    write_log_start(t.partition_path(0), "t", 0, offset)
    t.log(0).recover()
    t.close()


def test_without_a_group_a_consumer_starts_at_the_end_and_sees_new_records(topic):
    with Consumer("t", data_dir=topic) as c:
        assert c.poll(timeout_ms=20) == {}
        produce(topic, 3, start=10)
        got = c.poll(timeout_ms=200)
        assert list(got) == [TopicPartition("t", 0)] and values(got) == [10, 11, 12]
        assert c.position("t", 0) == 13 and c.committed("t", 0) is None
        with pytest.raises(GroupError):
            c.commit()


def test_earliest_reads_from_the_log_start_and_max_records_is_honoured(topic):
    with Consumer("t", data_dir=topic, auto_offset_reset="earliest", max_poll_records=4) as c:
        assert values(c.poll(timeout_ms=100)) == [0, 1, 2, 3]
        assert values(c.poll(timeout_ms=100, max_records=100)) == [4, 5, 6, 7, 8, 9]


def test_poll_gives_each_partition_a_read_only_sequence_of_records(topic):
    from logbroker import Record, Records
    with Consumer("t", data_dir=topic, auto_offset_reset="earliest", max_poll_records=6) as c:
        got = c.poll(timeout_ms=100)[TopicPartition("t", 0)]
    assert isinstance(got, Records) and len(got) == 6 and bool(got)
    assert [r.offset for r in got] == [0, 1, 2, 3, 4, 5]
    assert got[0].value == {"i": 0} and got[-1].offset == 5 and got[-1].timestamp == T0 + 5000
    assert all(isinstance(r, Record) and (r.topic, r.partition, r.key) == ("t", 0, None) for r in got)
    assert [r.offset for r in got[2:4]] == [2, 3] and isinstance(got[2:4], Records)
    assert got == list(got) and got[1:] + got[:1] != got and got[:3] + got[3:] == got
    assert got[0] == got[0] and list(got) == list(got)  # reached again, a record is an equal record
    assert repr(got) == repr(list(got)) and got.next_offset == 6
    with pytest.raises(IndexError):
        got[6]
    with pytest.raises(TypeError):
        got[0] = None


def test_records_kept_from_a_poll_stay_valid_after_the_consumer_moves_on_and_their_segments_go(data_dir):
    Broker(data_dir).create_topic("t", 1, {"segment.bytes": SEGMENT_SIZES["one-record"]})
    produce(data_dir, 10)
    with Consumer("t", data_dir=data_dir, auto_offset_reset="earliest", max_poll_records=4) as c:
        first = c.poll(timeout_ms=100)[TopicPartition("t", 0)]
        kept = list(first)
        assert values(c.poll(timeout_ms=100)) == [4, 5, 6, 7]
        c.seek("t", 0, 0)
    Broker(data_dir).delete_records([("t", 0, 8)])
    assert segment_files(data_dir, "t", 0)[0] == f"{8:020d}.log"  # the kept records' segments are gone
    assert [r.offset for r in first] == [r.offset for r in kept] == [0, 1, 2, 3]
    assert [r.value for r in first] == [{"i": i} for i in range(4)] and first[3].timestamp == T0 + 3000
    assert kept == list(first) and [r.to_dict()["value"] for r in kept] == [{"i": i} for i in range(4)]


def test_iteration_yields_records_and_stops_after_consumer_timeout(topic):
    with Consumer("t", data_dir=topic, auto_offset_reset="earliest", consumer_timeout_ms=50) as c:
        assert [r.offset for r in c] == list(range(10))


def test_manual_assignment_seek_and_offset_lookups(topic):
    with Consumer(data_dir=topic, auto_offset_reset="earliest") as c:
        c.assign([("t", 0)])
        assert c.assignment() == {TopicPartition("t", 0)}
        c.seek("t", 0, 7)
        assert values(c.poll(timeout_ms=50)) == [7, 8, 9]
        c.seek_to_beginning()
        assert c.position("t", 0) == 0
        c.seek_to_end(("t", 0))
        assert c.position("t", 0) == 10
        assert c.offsets_for_times({("t", 0): T0 + 4500}) == {("t", 0): OffsetAndTimestamp(5, T0 + 5000)}
        assert c.offsets_for_times({("t", 0): T0 + 99_000}) == {("t", 0): None}
        c.seek_to_timestamp(T0 + 8000)
        assert values(c.poll(timeout_ms=50)) == [8, 9]
        assert c.beginning_offsets([("t", 0)]) == {("t", 0): 0} and c.end_offsets([("t", 1)]) == {("t", 1): 0}
        with pytest.raises(UnknownPartitionError):
            c.seek("t", 1, 0)
        with pytest.raises(GroupError):
            c.subscribe(["t"])


def test_a_group_resumes_from_its_committed_offset(topic):
    with Consumer("t", data_dir=topic, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        assert values(c.poll(timeout_ms=50, max_records=4)) == [0, 1, 2, 3]
        c.commit()
        assert c.committed("t", 0) == 4
    with Consumer("t", data_dir=topic, group_id="g", auto_offset_reset="earliest") as c:
        assert values(c.poll(timeout_ms=50)) == [4, 5, 6, 7, 8, 9]
    with Consumer("t", data_dir=topic, group_id="g") as c:  # close() auto-committed
        assert c.committed("t", 0) == 10 and c.poll(timeout_ms=20) == {}


def test_auto_commit_commits_returned_records_on_a_later_poll(topic):
    with Consumer("t", data_dir=topic, group_id="g", auto_offset_reset="earliest",
                  auto_commit_interval_ms=0) as c:
        c.poll(timeout_ms=50, max_records=3)
        assert c.committed("t", 0) is None
        c.poll(timeout_ms=0, max_records=1)
        assert c.committed("t", 0) == 3


def test_commit_beyond_the_log_end_is_refused(topic):
    with Consumer("t", data_dir=topic, group_id="g") as c:
        with pytest.raises(OffsetOutOfRangeError):
            c.commit({("t", 0): 11})


@pytest.mark.parametrize("policy, first", [("earliest", 0), ("latest", None)])
def test_a_group_without_a_commit_starts_per_auto_offset_reset(topic, policy, first):
    with Consumer("t", data_dir=topic, group_id="g", auto_offset_reset=policy) as c:
        got = values(c.poll(timeout_ms=30))
        assert (got[0] if got else None) == first


def test_auto_offset_reset_none_raises_without_a_commit(topic):
    with Consumer("t", data_dir=topic, group_id="g", auto_offset_reset="none") as c:
        with pytest.raises(OffsetOutOfRangeError, match="no committed offset"):
            c.poll(timeout_ms=10)


@pytest.mark.parametrize("policy, resumed", [("earliest", 6), ("latest", 10)])
def test_a_commit_below_the_log_start_after_retention_resets_with_a_warning(data_dir, policy, resumed, caplog):
    Broker(data_dir).create_topic("t", 1, {"segment.bytes": 300})
    produce(data_dir, 10)
    with Consumer("t", data_dir=data_dir, group_id="g", auto_offset_reset="earliest") as c:
        c.commit({("t", 0): 2})
    retain_below(data_dir, 6)
    caplog.set_level(logging.WARNING, "logbroker")
    with Consumer("t", data_dir=data_dir, group_id="g", auto_offset_reset=policy, enable_auto_commit=False) as c:
        assert c.position("t", 0) == resumed
    assert f"topic t partition 0: resetting offset 2 to {resumed}" in caplog.text
    assert "records are skipped" in caplog.text


def test_a_commit_below_the_log_start_with_reset_none_raises(data_dir):
    Broker(data_dir).create_topic("t", 1, {"segment.bytes": 300})
    produce(data_dir, 10)
    with Consumer("t", data_dir=data_dir, group_id="g") as c:
        c.commit({("t", 0): 1})
    retain_below(data_dir, 6)
    with Consumer("t", data_dir=data_dir, group_id="g", auto_offset_reset="none") as c:
        with pytest.raises(OffsetOutOfRangeError, match="below the log start offset"):
            c.poll(timeout_ms=10)


def test_a_position_deleted_by_retention_while_reading_resets(data_dir, caplog):
    Broker(data_dir).create_topic("t", 1, {"segment.bytes": 300})
    produce(data_dir, 10)
    with Consumer("t", data_dir=data_dir, auto_offset_reset="earliest") as c:
        c.seek("t", 0, 1)
        retain_below(data_dir, 6)
        assert values(c.poll(timeout_ms=50))[0] >= 6
    assert "resetting offset 1 to" in caplog.text


def test_bad_configuration_is_refused(topic):
    with pytest.raises(InvalidConfigError):
        Consumer("t", data_dir=topic, auto_offset_reset="smallest")


# -- stateful model -------------------------------------------------------------------------------

class ConsumerModel(RuleBasedStateMachine):
    """A group consumer on one partition beside a dict model: committed offset, position, log range.
    Segments of one record, a few records or the default size: polls, seeks and retention cross
    segment rolls and deleted segments."""

    @initialize(segment_bytes=st.sampled_from(list(SEGMENT_SIZES.values())))
    def setup(self, segment_bytes):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="lbmodel-")
        Broker(self.dir).create_topic("t", 1, {"segment.bytes": segment_bytes})
        self.end = 0
        self.start = 0
        self.committed = None
        self.position = 0  # earliest: no commit -> log start
        self.consumer = self._open()

    def _open(self):
        return Consumer("t", data_dir=self.dir, group_id="g", auto_offset_reset="earliest",
                        enable_auto_commit=False, session_timeout_ms=60_000)

    def _expected_position_after_reopen(self):
        c = self.committed
        return self.start if c is None or c < self.start or c > self.end else c

    @rule(n=st.integers(1, 6))
    def produce(self, n):
        produce(self.dir, n, start=self.end)
        self.end += n

    @rule(n=st.integers(1, 5))
    def poll(self, n):
        got = self.consumer.poll(timeout_ms=0, max_records=n)
        offsets = [r.offset for recs in got.values() for r in recs]
        if self.position < self.start:
            self.position = self.start
        want = list(range(self.position, min(self.position + n, self.end)))
        assert offsets == want
        assert [r.value["i"] for recs in got.values() for r in recs] == want
        self.position += len(offsets)

    @rule()
    def commit(self):
        self.consumer.commit()
        if self.committed is None or self.position >= self.committed:
            self.committed = self.position

    @rule(data=st.data())
    def seek(self, data):
        if self.end > self.start:
            target = data.draw(st.integers(self.start, self.end))
            self.consumer.seek("t", 0, target)
            self.position = target

    @rule(data=st.data())
    def reset(self, data):
        self.consumer.close(autocommit=False)
        target = data.draw(st.integers(0, self.end + 2))
        execute_reset(plan_reset_offsets(self.dir, "g", "t", [0], f"to-offset={target}"))
        self.committed = min(max(target, self.start), self.end)
        self.consumer = self._open()
        self.position = self._expected_position_after_reopen()

    @precondition(lambda self: self.end > self.start)
    @rule(data=st.data())
    def retention(self, data):
        new_start = data.draw(st.integers(self.start, self.end))
        Broker(self.dir).delete_records([("t", 0, new_start)])  # deletes the segments wholly below it
        self.start = new_start

    @rule()
    def reopen(self):
        self.consumer.close(autocommit=False)
        self.consumer = self._open()
        self.position = self._expected_position_after_reopen()

    @invariant()
    def committed_offset_matches(self):
        if hasattr(self, "consumer"):
            assert self.consumer.committed("t", 0) == self.committed
            assert self.consumer.position("t", 0) == self.position  # a reset happens at the next fetch
            tp = TopicPartition("t", 0)
            assert self.consumer.beginning_offsets([tp]) == {tp: self.start}
            assert self.consumer.end_offsets([tp]) == {tp: self.end}

    def teardown(self):
        if hasattr(self, "consumer"):
            self.consumer.close(autocommit=False)
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


TestConsumerModel = pytest.mark.slow(ConsumerModel.TestCase)
TestConsumerModel.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
