"""Topic identity (FORMAT.md, "Topic identity"): no process writes into or reads from a topic it did
not open, whatever the timing of `topics delete` and `topics create` of the same name.

The real-process tests run `cli.py` as a user would and delete and re-create the topic under it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from waiting import wait_until
from logbroker import Broker, Consumer, Producer
from logbroker.errors import CorruptionError, TopicDeletedError
from logbroker.storage.fsutil import FileLock
from logbroker.tools.inspect import inspect_path
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import TOPIC_FILE, Topic

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "cli.py")]


def _env(data_dir: str) -> dict[str, str]:
    return {**os.environ, "LOGBROKER_DATA_DIR": data_dir, "PYTHONUNBUFFERED": "1"}


def _total(data_dir: str, name: str) -> int:
    t = Topic(data_dir, name)
    try:
        total = 0
        for p in range(t.partitions):
            r = t.reader(p)
            try:
                total += r.high_watermark() - r.log_start_offset()
            finally:
                r.close()
        return total
    finally:
        t.close()


def _segment_bytes(topic: Topic) -> int:
    return sum(os.path.getsize(os.path.join(topic.partition_path(p), e))
               for p in range(topic.partitions) for e in os.listdir(topic.partition_path(p)) if e.endswith(".log"))


# -- the identity itself ------------------------------------------------------------------------

def test_a_created_topic_has_a_random_topic_id_in_topic_json(data_dir):
    a = Topic.create(data_dir, "t", 1)
    meta = json.loads(Path(a.path, TOPIC_FILE).read_bytes())
    assert meta["topic_id"] == a.topic_id and len(a.topic_id) == 22
    a.delete()
    b = Topic.create(data_dir, "t", 1)
    assert b.topic_id != a.topic_id


def test_a_topic_created_before_topic_ids_opens_and_takes_records(data_dir):
    t = Topic.create(data_dir, "old", 1)
    meta_path = Path(t.path, TOPIC_FILE)
    meta = json.loads(meta_path.read_bytes())
    del meta["topic_id"]
    meta_path.write_bytes(orjson.dumps(meta))
    t.close()
    old = Topic(data_dir, "old")
    assert old.topic_id is None
    old.log(0).append([PendingRecord(1, None, None, {"n": 1})])
    assert [r.value for r in old.reader(0).read(0)] == [{"n": 1}]
    old.close()


# -- writers ------------------------------------------------------------------------------------

def test_a_producer_whose_topic_was_deleted_and_recreated_fails_its_records_and_writes_nothing_new(data_dir):
    Broker(data_dir).create_topic("t", 2)
    producer = Producer(data_dir, batch_size=1 << 20)
    assert producer.send("t", {"n": 0}, partition=0).get().offset == 0
    with producer._acc.io_lock:  # the sender waits: the five records stay buffered across the delete
        buffered = [producer.send("t", {"n": i}, partition=1) for i in range(5)]
        Broker(data_dir).delete_topic("t")
        new = Broker(data_dir).create_topic("t", 2)
    with pytest.raises(TopicDeletedError) as caught:
        producer.flush()
    assert caught.value.topic == "t" and caught.value.partition == 1
    assert "was deleted" in str(caught.value) and "\n" not in str(caught.value)
    for future in buffered:
        with pytest.raises(TopicDeletedError):
            future.get()
    with pytest.raises(TopicDeletedError):
        producer.send_batch("t", [{"n": 9}] * 3, partition=0)
    with pytest.raises(TopicDeletedError):
        producer.send("t", {"n": 10}, partition=0).get()
    assert _total(data_dir, "t") == 0 and _segment_bytes(new) == 0
    producer.close()  # nothing is left to fail


def test_a_writer_holding_the_partition_lock_keeps_a_recreation_of_the_name_waiting(data_dir, caplog):
    """The drain: a writer that passed its check may finish its append into the deleted topic, so the
    name must not name a new topic until it lets go of the partition lock."""
    old = Broker(data_dir).create_topic("t", 1)
    held = FileLock(os.path.join(old.partition_path(0), ".lock"))
    held.acquire()
    done = {}
    Broker(data_dir).delete_topic("t")  # returns: the topic is gone, its files wait for the writer
    assert not os.path.exists(old.path) and "still held" in caplog.text
    assert [e for e in os.listdir(data_dir) if e.startswith("__deleting-t-")]

    def create():
        done["created"] = Broker(data_dir).create_topic("t", 1)
    creator = threading.Thread(target=create)
    creator.start()
    creator.join(0.3)
    assert "created" not in done and not os.path.exists(old.path)
    held.release()
    held.close()
    creator.join(30)
    assert "created" in done and os.path.exists(os.path.join(data_dir, "t", TOPIC_FILE))
    assert not [e for e in os.listdir(data_dir) if e.startswith("__")]


@pytest.mark.slow
def test_a_streaming_publish_across_delete_and_create_fails_cleanly_and_nothing_lands_in_the_new_topic(data_dir):
    Broker(data_dir).create_topic("t", 2, {"segment.bytes": 64 * 1024})
    proc = subprocess.Popen([*CLI, "publish", "t"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(data_dir))
    pad = "x" * 4000
    # 300 lines of 4 KB: the producer's 256 KiB batches are written several times per partition,
    # rolling 64 KiB segments; what is left stays buffered when the topic goes.
    for i in range(300):
        proc.stdin.write(orjson.dumps({"n": i, "pad": pad}) + b"\n")
    proc.stdin.flush()
    wait_until(lambda: _total(data_dir, "t") > 0, "the first records")
    seen, stable = -1, 0
    while stable < 25:  # the publisher has read every line: nothing more is written
        now = _total(data_dir, "t")
        stable, seen = (stable + 1, seen) if now == seen else (0, now)
        time.sleep(0.02)
    Broker(data_dir).delete_topic("t")
    new = Broker(data_dir).create_topic("t", 2, {"segment.bytes": 64 * 1024})

    def feed():
        try:
            for i in range(300, 600):
                proc.stdin.write(orjson.dumps({"n": i, "pad": pad}) + b"\n")
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # the publisher stopped reading
    writer = threading.Thread(target=feed)
    writer.start()
    out, err = proc.communicate(timeout=120)
    writer.join()
    err = err.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "was deleted" in err
    summary = [line for line in err.splitlines() if line.startswith("Published ")]
    assert summary, err
    published = int(summary[-1].split()[1])
    failed = int(summary[-1].split("(")[1].split()[0])
    assert published == seen and failed >= 1, err
    assert _total(data_dir, "t") == 0 and _segment_bytes(new) == 0
    assert Topic(data_dir, "t").topic_id == new.topic_id


# -- readers ------------------------------------------------------------------------------------

def test_a_reader_of_a_deleted_topic_never_returns_records_of_the_topic_created_under_its_name(data_dir):
    old = Broker(data_dir).create_topic("t", 1)
    old.log(0).append([PendingRecord(1, None, None, {"old": i}) for i in range(3)])
    reader = old.reader(0)
    assert [r.value for r in reader.read(0)] == [{"old": 0}, {"old": 1}, {"old": 2}]
    old.close()
    Broker(data_dir).delete_topic("t")
    new = Broker(data_dir).create_topic("t", 1)
    new.log(0).append([PendingRecord(1, None, None, {"new": i}) for i in range(6)])
    for call in (lambda: reader.read(3), lambda: reader.read(0), reader.high_watermark, reader.log_start_offset,
                 lambda: reader.offset_for_timestamp(0)):
        with pytest.raises(TopicDeletedError):
            call()
    new.close()


def test_a_consumer_follows_a_recreated_topic_from_its_reset_policy(data_dir, caplog):
    Producer(data_dir).send_batch("t", [{"old": i} for i in range(3)], partition=0)
    consumer = Consumer("t", data_dir=data_dir, auto_offset_reset="earliest")
    got = []
    wait_until(lambda: got.extend(r.value for rs in consumer.poll(10).values() for r in rs) or len(got) >= 3,
               "the old topic's records", seen=lambda: got)
    Broker(data_dir).delete_topic("t")
    Broker(data_dir).create_topic("t", 2)
    with Producer(data_dir) as producer:
        producer.send_batch("t", [{"new": i} for i in range(4)], partition=1)
    wait_until(lambda: got.extend(r.value for rs in consumer.poll(10).values() for r in rs) or len(got) >= 7,
               "the new topic's records", seen=lambda: got)
    consumer.close()
    assert got == [{"old": 0}, {"old": 1}, {"old": 2}] + [{"new": i} for i in range(4)]
    assert any("was deleted" in m for m in caplog.messages)
    assert any("exists again" in m for m in caplog.messages)


def test_a_consumer_with_reset_policy_none_stops_with_a_clear_error_when_its_topic_is_deleted(data_dir):
    Broker(data_dir).create_topic("t", 1)
    consumer = Consumer(data_dir=data_dir, auto_offset_reset="none")
    consumer.assign([("t", 0)])
    consumer.seek("t", 0, 0)
    assert consumer.poll(0) == {}
    Broker(data_dir).delete_topic("t")
    with pytest.raises(TopicDeletedError) as caught:
        consumer.poll(0)
    assert "was deleted" in str(caught.value) and "'none'" in str(caught.value)
    consumer.close()


def test_a_group_member_of_a_deleted_topic_follows_the_new_one_without_a_raw_os_error(data_dir, caplog):
    Producer(data_dir).send_batch("t", [{"old": i} for i in range(2)], partition=0)
    consumer = Consumer("t", data_dir=data_dir, group_id="g", auto_offset_reset="earliest")
    got = []
    wait_until(lambda: got.extend(r.value for rs in consumer.poll(10).values() for r in rs) or len(got) >= 2,
               "the old topic's records", seen=lambda: got)
    consumer.commit()
    Broker(data_dir).delete_topic("t")
    assert consumer.poll(50) == {}  # nothing to read, nothing raised
    Broker(data_dir).create_topic("t", 1)
    with Producer(data_dir) as producer:
        producer.send_batch("t", [{"new": 0}], partition=0)
    wait_until(lambda: got.extend(r.value for rs in consumer.poll(10).values() for r in rs) or len(got) >= 3,
               "the new topic's record", seen=lambda: got)
    consumer.commit()
    consumer.close()
    assert got == [{"old": 0}, {"old": 1}, {"new": 0}]
    from logbroker.groups.admin import describe_group
    assert [(row.partition, row.current_offset) for row in describe_group(data_dir, "g")] == [(0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("group", [None, "g"], ids=["no-group", "group"])
def test_a_console_consumer_follows_its_topic_across_delete_and_create(data_dir, group):
    Broker(data_dir).create_topic("t", 2)
    with Producer(data_dir) as producer:
        producer.send_batch("t", [{"old": i} for i in range(3)], partition=0)
    args = [*CLI, "consume", "t", "--from-beginning", "--max-messages", "7", "--timeout-ms", "60000"]
    proc = subprocess.Popen(args + (["--group", group] if group else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(data_dir))
    lines = []
    for _ in range(3):
        lines.append(json.loads(proc.stdout.readline()))
    Broker(data_dir).delete_topic("t")
    time.sleep(0.3)  # let it see the deletion alone too (it must neither fail nor read anything)
    Broker(data_dir).create_topic("t", 1)
    with Producer(data_dir) as producer:
        producer.send_batch("t", [{"new": i} for i in range(4)], partition=0)
    out, err = proc.communicate(timeout=120)
    err = err.decode()
    lines += [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0, err
    assert lines == [{"old": 0}, {"old": 1}, {"old": 2}] + [{"new": i} for i in range(4)]
    assert "was deleted" in err and "Traceback" not in err and "No such file" not in err, err


# -- partition counts only grow -----------------------------------------------------------------

def _lower_partition_count(data_dir: str, name: str, count: int) -> None:
    meta_path = Path(data_dir, name, TOPIC_FILE)
    meta = json.loads(meta_path.read_bytes())
    meta["partitions"] = count
    meta_path.write_bytes(orjson.dumps(meta))


def test_a_partition_count_lowered_in_topic_json_is_refused_naming_the_file_and_the_orphans(data_dir):
    with Producer(data_dir) as producer:
        for p in range(3):
            producer.send_batch("t", [{"p": p}] * 40, partition=p)
    _lower_partition_count(data_dir, "t", 2)
    with pytest.raises(CorruptionError) as caught:
        Topic(data_dir, "t")
    message = str(caught.value)
    assert os.path.join(data_dir, "t", TOPIC_FILE) in message and "t-2" in message and "\n" not in message
    assert caught.value.partitions == [2]
    result = subprocess.run([*CLI, "consume", "t", "--from-beginning", "--timeout-ms", "200"],
                            capture_output=True, env=_env(data_dir), timeout=60)
    err = result.stderr.decode()
    assert result.returncode != 0 and result.stdout == b""
    assert err.count("\n") == 1 and err.startswith("error: ") and "t-2" in err and TOPIC_FILE in err, err


def test_an_empty_partition_directory_past_the_count_is_not_an_orphan(data_dir):
    """`topics alter --partitions` creates the new directories before it rewrites topic.json."""
    Broker(data_dir).create_topic("t", 2)
    os.mkdir(os.path.join(data_dir, "t", "t-2"))
    assert Topic(data_dir, "t").partitions == 2


# -- recover and inspect notice segments that do not belong -------------------------------------

def test_recover_and_inspect_refuse_a_partition_whose_segments_do_not_follow_on(data_dir):
    """What an older version left behind: a writer of a deleted topic wrote its own offsets into
    the partition of the topic created under the same name."""
    t = Broker(data_dir).create_topic("t", 1, {"segment.bytes": 300})
    log = t.log(0)
    for i in range(30):
        log.append([PendingRecord(1, None, None, {"n": i})])
    t.close()
    directory = t.partition_path(0)
    bases = sorted(int(e[:20]) for e in os.listdir(directory) if e.endswith(".log"))
    assert len(bases) >= 4
    gone = bases[1]
    for suffix in (".log", ".index", ".timeindex"):
        os.unlink(os.path.join(directory, f"{gone:020d}{suffix}"))
    with pytest.raises(CorruptionError) as caught:
        Topic(data_dir, "t").log(0).recover()
    assert f"{bases[2]:020d}.log" in str(caught.value) and "does not continue" in str(caught.value)
    # The broker recovers every partition and reports what it left alone instead of raising.
    problems = [p for r in Broker(data_dir).recover("t") for p in r.problems]
    assert len(problems) == 1 and str(caught.value) == problems[0]
    result = subprocess.run([*CLI, "recover", "t"], capture_output=True, env=_env(data_dir), timeout=60)
    assert result.returncode == 3 and result.stderr.decode().count("\n") == 1, result.stderr
    result = subprocess.run([*CLI, "inspect", directory, "--verify"], capture_output=True, env=_env(data_dir),
                            timeout=60)
    assert result.returncode == 3 and f"segment starts at {bases[2]}" in (result.stdout + result.stderr).decode()


def test_recover_finishes_a_deletion_that_stopped_half_way(data_dir):
    t = Broker(data_dir).create_topic("t", 2)
    os.rename(t.path, os.path.join(data_dir, "__deleting-t-0badf00d"))  # killed right after the rename
    Broker(data_dir).create_topic("other", 1)
    Broker(data_dir).recover()
    assert sorted(os.listdir(data_dir)) == ["other"]


def test_a_reset_plan_of_a_deleted_topic_is_not_executed_on_the_topic_created_since(data_dir):
    from logbroker.groups.admin import execute_reset, plan_reset_offsets
    with Producer(data_dir) as producer:
        producer.send_batch("t", [{"n": i} for i in range(5)], partition=0)
    plan = plan_reset_offsets(data_dir, "g", "t", [0], "to-latest")
    assert [row.new for row in plan] == [5]
    Broker(data_dir).delete_topic("t")
    new = Broker(data_dir).create_topic("t", 1)
    with pytest.raises(TopicDeletedError):
        execute_reset(plan)
    assert not os.path.exists(os.path.join(new.path, "groups"))


_WRITER = r"""
import sys, time
from logbroker import Producer
from logbroker.errors import TopicDeletedError, UnknownTopicError
data_dir, seconds, me = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + seconds
acked = deleted = 0
while time.monotonic() < deadline:
    producer = Producer(data_dir, batch_size=0, auto_create=False, fsync="never")
    try:
        producer.partitions_for("t")
        tid = producer._topics["t"].topic_id  # the topic this producer opened
        n = 0
        while time.monotonic() < deadline:
            if n % 3:
                producer.send("t", {"tid": tid, "w": me, "n": n}).get()
            else:
                producer.send_batch("t", [{"tid": tid, "w": me, "n": n}] * 5)
            n += 1
            acked += 1
    except TopicDeletedError:
        deleted += 1
    except UnknownTopicError:
        time.sleep(0.001)
    finally:
        try:
            producer.close()
        except TopicDeletedError:
            pass
print(acked, deleted)
"""


@pytest.mark.slow
def test_writers_racing_30_deletions_and_creations_only_ever_write_into_the_topic_they_opened(data_dir):
    """Every record carries the topic id its writer opened; each incarnation must hold its own only,
    with offsets that follow on (recover and inspect would see segments of another log)."""
    import random
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    config = {"segment.bytes": 2048}
    Broker(data_dir).create_topic("t", 2, config)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, data_dir, "12", str(w)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=_env(data_dir)) for w in range(3)]
    checked = records = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.02, 0.2))
        t = Topic(data_dir, "t")
        tags = set()
        for p in range(t.partitions):
            # Every segment file, read whole: a foreign one past the log end would never be read by offset.
            report = inspect_path(t.partition_path(p), records=True)
            tags.update(r["value"]["tid"] for seg in report["segments"] for b in seg["batches"]
                        for r in b.get("records", ()))
            records += sum(seg["records"] for seg in report["segments"])
            # Only damage counts: the writers are appending right now, so the repairs recovery would
            # make (batches not recorded yet, indexes not finished) are their work in progress.
            assert not report["damage"], (seed, report["damage"])
        assert tags <= {t.topic_id}, f"seed {seed}: records of {tags - {t.topic_id}} in {t.topic_id}"
        Broker(data_dir).recover("t")  # refuses segments that do not follow on
        t.delete()
        Broker(data_dir).create_topic("t", 2, config)
        checked += 1
    results = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()
        results.append([int(x) for x in out.split()])
    assert checked >= 10 and records > 0, (seed, checked, records)
    assert sum(r[1] for r in results) >= checked, (seed, results)  # the writers did meet deletions
    assert not [e for e in os.listdir(data_dir) if e.startswith("__")]
