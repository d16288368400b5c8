"""``logbroker mirror`` (the library, logbroker.remote.mirror) against ``logbroker serve`` on another
data directory: records byte for byte at source - base, group positions translated, reruns, refusals."""

from __future__ import annotations

import socket
import threading
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from logbroker import Broker, errors
from logbroker.remote.mirror import MIRROR_GROUP, Mirror

from kafka_support import module_server
from mirror_support import append, commit, end_offsets, fill, shifted, source_records, target_records

pytestmark = pytest.mark.slow  # a server process and Kafka clients per module, copies of thousands of records


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    yield from module_server(tmp_path_factory, "mirror-target")


@pytest.fixture
def source(tmp_path) -> str:
    return str(tmp_path / "source")


def test_every_record_lands_byte_for_byte_at_source_offset_minus_the_log_start(target, source):
    fill(source, "copied", partitions=3, records=40, config={"retention.ms": 3_600_000})
    Broker(source).delete_records([("copied", 0, 25), ("copied", 2, 1)])  # retention-advanced log starts
    report = Mirror(source, target.bootstrap, ["copied"]).run()
    src = source_records(source, "copied")
    assert [src[p][0][0] for p in range(3)] == [25, 0, 1]
    assert target_records(target.bootstrap, "copied", 3) == shifted(src)
    assert report.rows() == [("copied", 15 + 40 + 39, 3, 0)]
    # The kinds of record the source holds all went over: bytes keys, repeated and null headers,
    # non-JSON and non-canonical values, a null value.
    values = {r[4] for rows in src.values() for r in rows}
    assert {b"\x89PNG\r\n\x1a\n", b"v1", b'{"spaced": true}', None, b""} <= values


def test_the_target_topic_gets_the_partitions_and_the_kafka_configs_set_on_the_source(target, source):
    fill(source, "configured", partitions=2, records=1,
         config={"retention.ms": 3_600_000, "segment.bytes": 4096, "fsync": "never"})
    Mirror(source, target.bootstrap, ["configured"]).run()
    described = Broker(target.data_dir).describe_topic("configured")
    assert described["partitions"] == 2
    assert described["config"]["retention.ms"] == 3_600_000
    assert described["config"]["segment.bytes"] == 4096
    assert described["config"]["fsync"] == "always"  # logbroker's own setting is not Kafka's: not sent


def test_a_rerun_copies_only_what_was_added_since(target, source):
    fill(source, "rerun", partitions=2, records=10)
    assert Mirror(source, target.bootstrap, ["rerun"]).run().rows() == [("rerun", 20, 2, 0)]
    assert Mirror(source, target.bootstrap, ["rerun"]).run().rows() == [("rerun", 0, 2, 0)]
    append(source, "rerun", 2, 10, 5)
    # Retention moves the source's log start after the first copy: the base stays where it was.
    Broker(source).delete_records([("rerun", 0, 8)])
    assert Mirror(source, target.bootstrap, ["rerun"]).run().rows() == [("rerun", 10, 2, 0)]
    src = source_records(source, "rerun")
    got = target_records(target.bootstrap, "rerun", 2)
    assert src[0][0][0] == 8 and got[0][8:] == src[0]
    assert got[1] == src[1]


def test_a_group_of_kafka_consumers_on_the_target_gets_exactly_what_it_had_not_consumed(target, source):
    fill(source, "resume", partitions=3, records=30)
    Broker(source).delete_records([("resume", 1, 20)])
    # Partition 0: a position in the middle; 1: a position below the log start (the first record
    # that still exists); 2: a position at the end (nothing left to read).
    commit(source, "billing", {("resume", 0): 12, ("resume", 1): 5, ("resume", 2): 30})
    report = Mirror(source, target.bootstrap, ["resume"]).run()
    [translation] = report.groups
    assert (translation.group, translation.offsets) == ("billing", {0: (12, 12), 1: (5, 0), 2: (30, 30)})
    assert report.rows() == [("resume", 30 + 10 + 30, 3, 1)]
    src = source_records(source, "resume")
    expected = {(p, r[0] - src[p][0][0], r[4]) for p, start in ((0, 12), (1, 20), (2, 30))
                for r in src[p] if r[0] >= start}
    got = consume_as_group(target.bootstrap, "resume", "billing", members=2, want=len(expected))
    assert sorted(got) == sorted(expected)  # each record once: nothing skipped, nothing read twice


def consume_as_group(bootstrap: str, topic: str, group: str, members: int, want: int) -> list[tuple]:
    consumers = [ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "latest",
                              "enable.auto.commit": False}) for _ in range(members)]
    got: list[tuple] = []
    try:
        for c in consumers:
            c.subscribe([topic])
        deadline = time.monotonic() + 60
        quiet_since = None
        while time.monotonic() < deadline:
            polled = False
            for c in consumers:
                msg = c.poll(0.2)
                if msg is not None and msg.error() is None:
                    got.append((msg.partition(), msg.offset(), msg.value()))
                    polled = True
            if len(got) >= want:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2:  # and nothing more comes (no duplicates)
                    break
            if polled:
                quiet_since = None if len(got) < want else quiet_since
    finally:
        for c in consumers:
            c.close()
    return got


def test_group_offsets_are_not_committed_while_the_group_has_live_members_on_the_target(target, source):
    fill(source, "busy", partitions=1, records=5)
    commit(source, "live", {("busy", 0): 2})
    Mirror(source, target.bootstrap, ["busy"], groups=[]).run()  # the topic exists on the target
    member = ck.Consumer({"bootstrap.servers": target.bootstrap, "group.id": "live", "auto.offset.reset": "earliest"})
    try:
        member.subscribe(["busy"])
        deadline = time.monotonic() + 30
        while not member.assignment():
            assert time.monotonic() < deadline
            member.poll(0.2)
        with pytest.raises(errors.GroupNotEmptyError, match="group 'live' has live members on"):
            Mirror(source, target.bootstrap, ["busy"]).run()
    finally:
        member.close()
    report = Mirror(source, target.bootstrap, ["busy"]).run()
    assert [(g.group, g.offsets, g.committed) for g in report.groups] == [("live", {0: (2, 2)}, True)]


def test_groups_select_which_groups_are_translated_and_a_named_group_must_exist(target, source):
    fill(source, "selected", partitions=1, records=5)
    commit(source, "one", {("selected", 0): 1})
    commit(source, "two", {("selected", 0): 2})
    report = Mirror(source, target.bootstrap, ["selected"], groups=["two"]).run()
    assert [g.group for g in report.groups] == ["two"]
    with pytest.raises(errors.UnknownGroupError, match="group 'nope' has no committed offsets"):
        Mirror(source, target.bootstrap, ["selected"], groups=["nope"]).run()
    assert [g.group for g in Mirror(source, target.bootstrap, ["selected"]).run().groups] == ["one", "two"]


def test_a_target_topic_with_fewer_partitions_is_refused_naming_both_counts(target, source):
    fill(source, "narrow", partitions=3, records=2)
    create_on_target(target.bootstrap, "narrow", 2)
    with pytest.raises(errors.MirrorError, match="3 partitions in the source but 2 on"):
        Mirror(source, target.bootstrap, ["narrow"]).run()
    assert end_offsets(target.bootstrap, "narrow", 2) == [0, 0]


def test_a_target_partition_holding_records_mirror_did_not_write_is_refused(target, source):
    fill(source, "foreign", partitions=1, records=2)
    create_on_target(target.bootstrap, "foreign", 1)
    producer = ck.Producer({"bootstrap.servers": target.bootstrap})
    producer.produce("foreign", b"not from mirror", partition=0)
    producer.flush(10)
    with pytest.raises(errors.MirrorError, match="foreign-0 .* holds 1 records that mirror did not write"):
        Mirror(source, target.bootstrap, ["foreign"]).run()
    assert end_offsets(target.bootstrap, "foreign", 1) == [1]


def test_records_lost_to_retention_before_they_were_copied_are_refused(target, source):
    fill(source, "lost", partitions=1, records=10)
    Mirror(source, target.bootstrap, ["lost"]).run()
    append(source, "lost", 1, 10, 10)
    Broker(source).delete_records([("lost", 0, 15)])
    with pytest.raises(errors.MirrorError, match="lost offsets 10 to 14"):
        Mirror(source, target.bootstrap, ["lost"]).run()


def test_compacted_topics_are_refused(target, source):
    fill(source, "compacted", partitions=1, records=0, config={"cleanup.policy": "compact"})
    with pytest.raises(errors.MirrorError, match="cleanup.policy=compact: compaction leaves offset gaps"):
        Mirror(source, target.bootstrap, ["compacted"]).run()


def test_a_dry_run_sends_nothing_and_says_what_would_happen(target, source):
    fill(source, "planned", partitions=2, records=7, config={"retention.ms": 60_000})
    Broker(source).delete_records([("planned", 1, 3)])
    commit(source, "g", {("planned", 1): 1})
    before = len(target.requests())
    report = Mirror(source, target.bootstrap, ["planned"]).dry_run()
    sent = {key for _, key, _ in target.requests()[before:]}
    assert sent.isdisjoint({0, 8, 19})  # no Produce, OffsetCommit or CreateTopics
    assert "planned" not in Broker(target.data_dir).list_topics()
    [plan] = report.topics
    assert (plan.create, plan.configs, [(p.base, p.to_copy) for p in plan.parts]) == (
        True, {"retention.ms": "60000"}, [(0, 7), (3, 4)])
    assert [(g.group, g.offsets) for g in report.groups] == [("g", {1: (1, 0)})]
    assert report.rows() == [("planned", 11, 2, 1)]


def test_follow_copies_new_records_and_new_commits_until_stopped(target, source):
    fill(source, "followed", partitions=2, records=5)
    stop = threading.Event()
    result = {}
    mirror = Mirror(source, target.bootstrap, ["followed"])
    thread = threading.Thread(target=lambda: result.setdefault("report", mirror.run(follow=True, stop=stop)))
    thread.start()
    try:
        wait_for(lambda: end_offsets(target.bootstrap, "followed", 2) == [5, 5])
        append(source, "followed", 2, 5, 3)
        wait_for(lambda: end_offsets(target.bootstrap, "followed", 2) == [8, 8])
        commit(source, "late", {("followed", 0): 6})
        wait_for(lambda: committed_on_target(target.bootstrap, "late", "followed", 0) == 6)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert result["report"].rows() == [("followed", 16, 2, 1)]
    assert target_records(target.bootstrap, "followed", 2) == source_records(source, "followed")


def test_the_base_is_kept_on_the_target_in_the_mirror_group(target, source):
    fill(source, "based", partitions=1, records=6)
    Broker(source).delete_records([("based", 0, 4)])
    Mirror(source, target.bootstrap, ["based"]).run()
    assert committed_on_target(target.bootstrap, MIRROR_GROUP, "based", 0) == 4


def test_an_unreachable_cluster_is_one_line_naming_the_address_and_the_timeout(source):
    fill(source, "nowhere", partitions=1, records=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
    with pytest.raises(errors.ClusterUnreachableError) as caught:
        Mirror(source, address, ["nowhere"], timeout_s=1).run()
    assert str(caught.value) == f"no broker of {address} answered within 1 s (listing topics)"


def create_on_target(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.create_topics([NewTopic(topic, partitions)]).values()
    future.result(10)


def committed_on_target(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [tp] = consumer.committed([ck.TopicPartition(topic, partition)], timeout=10)
        return tp.offset if tp.offset >= 0 else None
    finally:
        consumer.close()


def wait_for(condition, timeout: float = 30) -> None:
    """Until ``condition()`` holds; a client error (a topic not created yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except ck.KafkaException:
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_mirror_group_of_a_source_that_was_itself_a_target_is_not_translated(target, source):
    fill(source, "relayed", partitions=1, records=3)
    commit(source, MIRROR_GROUP, {("relayed", 0): 1})
    commit(source, "app", {("relayed", 0): 2})
    report = Mirror(source, target.bootstrap, ["relayed"]).run()
    assert [g.group for g in report.groups] == ["app"]
    assert committed_on_target(target.bootstrap, MIRROR_GROUP, "relayed", 0) == 0  # the base, not the 1
