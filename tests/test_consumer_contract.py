"""At-least-once at the edges: a consumer stopped mid-batch commits only what it handed over,
seeks past the log end meet the reset policy, and member identities stay file-safe."""

from __future__ import annotations

import logging

import pytest

from conftest import SEGMENT_SIZES, segment_files
from logbroker import Broker, Consumer, InvalidConfigError, OffsetOutOfRangeError, Producer
from logbroker.tools.console import consume


@pytest.fixture
def topic10(tmp_path, segment_bytes):
    """Topic t: one partition, values 0..9 at offsets 0..9, at each segment size."""
    Broker(tmp_path).create_topic("t", 1, {"segment.bytes": segment_bytes, "fsync": "never"})  # not about power loss
    with Producer(tmp_path, batch_size=0) as producer:  # one append per record: small segments roll between records
        for value in range(10):
            producer.send("t", value, partition=0)
    if segment_bytes == SEGMENT_SIZES["one-record"]:
        assert len(segment_files(str(tmp_path), "t", 0)) == 10
    return str(tmp_path)


def test_a_console_consumer_interrupted_mid_batch_commits_only_the_records_it_printed(topic10):
    printed = []

    def sink(record, n):
        if n == 4:
            raise KeyboardInterrupt
        printed.append(record.value)

    assert consume(topic10, "t", sink, group="g", from_beginning=True) == 3
    rest = []
    consume(topic10, "t", lambda r, n: rest.append(r.value), group="g", timeout_ms=300)
    assert printed == [0, 1, 2] and rest == list(range(3, 10))


def test_a_console_consumer_whose_output_pipe_closes_commits_nothing_past_its_last_commit(topic10):
    # The reader (e.g. `head`) may have taken records from the pipe without showing them: they come
    # again to the group rather than being skipped.
    written = []
    consume(topic10, "t", lambda r, n: written.append(r.value), group="g", from_beginning=True, max_messages=2)

    def sink(record, n):
        if n == 4:
            raise BrokenPipeError(32, "Broken pipe")
        written.append(record.value)

    with pytest.raises(BrokenPipeError):
        consume(topic10, "t", sink, group="g")
    rest = []
    consume(topic10, "t", lambda r, n: rest.append(r.value), group="g", timeout_ms=300)
    assert written == [0, 1, 2, 3, 4] and rest == list(range(2, 10))


def test_a_console_consumer_stops_without_committing_when_its_output_closes_while_it_waits(topic10):
    seen = []
    with pytest.raises(BrokenPipeError):
        consume(topic10, "t", lambda r, n: seen.append(r.value), group="g", from_beginning=True,
                output_closed=lambda: bool(seen))
    again = []
    consume(topic10, "t", lambda r, n: again.append(r.value), group="g", from_beginning=True, timeout_ms=300)
    assert seen == again == list(range(10))


def test_leaving_a_with_block_by_an_exception_commits_nothing_new(topic10):
    with pytest.raises(RuntimeError):
        with Consumer("t", data_dir=topic10, group_id="g", auto_offset_reset="earliest") as consumer:
            for record in consumer:
                if record.offset == 3:
                    raise RuntimeError("processing failed")
    with Consumer("t", data_dir=topic10, group_id="g", auto_offset_reset="earliest",
                  consumer_timeout_ms=300) as consumer:
        assert [r.offset for r in consumer][0] <= 3


@pytest.mark.parametrize("policy", ["earliest", "latest"])
def test_a_seek_past_the_log_end_is_reset_by_the_policy_with_a_warning(topic10, policy, caplog):
    consumer = Consumer(data_dir=topic10, auto_offset_reset=policy)
    consumer.assign([("t", 0)])
    consumer.seek("t", 0, 15)
    with caplog.at_level(logging.WARNING, logger="logbroker"):
        got = [r.offset for records in consumer.poll(timeout_ms=200).values() for r in records]
    assert got == (list(range(10)) if policy == "earliest" else [])
    assert consumer.position("t", 0) == 10
    assert "beyond the log end" in caplog.text
    consumer.close()


def test_a_seek_past_the_log_end_with_reset_none_raises(topic10):
    consumer = Consumer(data_dir=topic10, auto_offset_reset="none")
    consumer.assign([("t", 0)])
    consumer.seek("t", 0, 15)
    with pytest.raises(OffsetOutOfRangeError):
        consumer.poll(timeout_ms=50)
    consumer.close()


@pytest.mark.parametrize("client_id", ["team/billing", "../escaped", "x" * 65, "", "caf\u00e9"])
def test_a_client_id_that_cannot_name_a_file_is_refused(topic10, client_id):
    with pytest.raises(InvalidConfigError, match="client_id"):
        Consumer("t", data_dir=topic10, group_id="g", client_id=client_id)


def test_a_session_timeout_shorter_than_the_heartbeat_floor_is_refused(topic10):
    with pytest.raises(InvalidConfigError, match="session_timeout_ms"):
        Consumer("t", data_dir=topic10, group_id="g", session_timeout_ms=10)


def test_unsubscribing_commits_the_positions_it_hands_back(topic10):
    consumer = Consumer("t", data_dir=topic10, group_id="g", auto_offset_reset="earliest",
                        auto_commit_interval_ms=3_600_000)
    got = [r.offset for records in consumer.poll(timeout_ms=500, max_records=3).values() for r in records]
    assert got == [0, 1, 2]
    consumer.unsubscribe()
    assert consumer.committed("t", 0) == 3
    consumer.close()
