"""The log cleaner on real files: what it keeps, the bytes it writes, gaps for every reader, the
swap protocol crashing at every step, delete-records, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import T0, read_all, reopen, rec
from logbroker.broker import Broker
from logbroker.storage.cleaner import clean_partition
from logbroker.clients.consumer import Consumer
from logbroker.errors import InvalidRecordError, OffsetOutOfRangeError
from logbroker.tools.inspect import inspect_path
from logbroker.clients.producer import Producer
from logbroker.storage.record import PendingRecord
from logbroker.storage.segment import list_segments

NOW = T0 + 10_000


def tomb(key, i):
    return PendingRecord(T0 + i, key, None, None)


def fill(topic, n=60, keys=5, batch=3, tombstones=()):
    """Append n records with keys k0..k{keys-1} in batches of ``batch``; offsets in ``tombstones``
    are tombstones. Returns what was written: offset -> (key, value, timestamp)."""
    log = topic.log(0)
    written = {}
    for start in range(0, n, batch):
        recs = []
        for i in range(start, min(start + batch, n)):
            key = f"k{i % keys}"
            recs.append(tomb(key, i) if i in tombstones else rec({"i": i}, key=key, i=i))
            written[i] = (key, None if i in tombstones else {"i": i}, T0 + i)
        log.append(recs)
    return written


def compacted(written, end):
    """What a pass keeps below ``end``: each key's last record; everything from ``end`` on."""
    latest = {}
    for off, (key, _v, _t) in written.items():
        if off < end:
            latest[key] = off
    return sorted(set(latest.values()) | {o for o in written if o >= end})


def closed_end(topic):
    return list_segments(topic.log(0).directory)[-1]


def test_a_pass_keeps_the_latest_record_of_each_key_with_its_offset_and_leaves_the_active_segment(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t)
    end = closed_end(t)
    report = clean_partition(t.log(0), now=NOW, force=True)
    assert report.ran and report.records_before == end and report.records_after == 5
    assert report.bytes_reclaimed > 0
    t = reopen(t)
    got = read_all(t)
    assert [r.offset for r in got] == compacted(written, end)
    for r in got:
        assert (r.key, r.value, r.timestamp) == written[r.offset]
    assert inspect_path(t.log(0).directory)["ok"]


def test_kept_lines_keep_their_bytes_and_only_rebatched_first_lines_get_new_checksums(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=100_000)
    log = t.log(0)
    # batch 1: a, b, c (only c survives: its first line loses the batch field);
    # batch 2: a, b, d (all survive: bytes untouched); then a record to roll past them
    log.append([rec(1, key="a"), rec(2, key="b"), rec(3, key="c")])
    log.append([rec(4, key="a", headers={"h": "v"}), rec(5, key="b"), rec(6, key="d")])
    seg = os.path.join(log.directory, "00000000000000000000.log")
    before = open(seg, "rb").read().splitlines()
    t.alter({"segment.bytes": 100})
    t = reopen(t)
    t.log(0).append([rec(7, key="e")])  # rolls
    clean_partition(t.log(0), now=NOW, force=True)
    after = open(seg, "rb").read().splitlines()
    assert after[0] == before[2]  # c alone: it was not a batch's first line, so nothing changed
    assert after[1:] == before[3:]  # the second batch whole
    assert [r.offset for r in read_all(reopen(t))] == [2, 3, 4, 5, 6]


def test_a_run_cut_from_the_start_of_a_batch_gets_a_new_batch_field(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=100_000)
    log = t.log(0)
    log.append([rec(1, key="a"), rec(2, key="b"), rec(3, key="c"), rec(4, key="d")])
    log.append([rec(5, key="a")])
    t.alter({"segment.bytes": 100})
    t = reopen(t)
    t.log(0).append([rec(6, key="z")])
    clean_partition(t.log(0), now=NOW, force=True)
    lines = open(os.path.join(t.log(0).directory, "00000000000000000000.log"), "rb").read().splitlines()
    assert b'"batch":{"count":3' in lines[0] and json.loads(lines[0])["offset"] == 1
    assert [r.offset for r in read_all(reopen(t))] == [1, 2, 3, 4, 5]
    assert inspect_path(t.log(0).directory)["ok"]


def test_readers_seek_lookups_and_timestamps_handle_gaps(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t)
    end = closed_end(t)
    clean_partition(t.log(0), now=NOW, force=True)
    t = reopen(t)
    kept = compacted(written, end)
    reader = t.reader(0)
    try:
        for offset in range(0, kept[-1] + 1):
            # a fetch at a removed offset returns the next record that exists
            nxt = next(o for o in kept if o >= offset)
            assert reader.read(offset, 1)[0].offset == nxt
            assert reader.offset_for_timestamp(T0 + offset) == nxt
    finally:
        reader.close()
    # reading one record at a time walks the gaps, including those at the ends of segments
    reader = t.reader(0)
    try:
        offset, seen = 0, []
        while True:
            got = reader.read(offset, 1)
            if not got:
                break
            seen.append(got[0].offset)
            offset = got[0].offset + 1
        assert seen == kept
    finally:
        reader.close()


def test_a_consumer_mid_log_continues_without_skipping_a_surviving_record(make_topic, data_dir):
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t, n=90, keys=4)
    consumer = Consumer(data_dir=data_dir, auto_offset_reset="earliest")
    consumer.assign([("t", 0)])
    seen = [r.offset for recs in consumer.poll(max_records=23).values() for r in recs]
    assert seen == list(range(23))
    end = closed_end(t)
    clean_partition(t.log(0), now=NOW, force=True)
    while True:
        got = consumer.poll(max_records=7)
        if not got:
            break
        seen.extend(r.offset for recs in got.values() for r in recs)
    consumer.close()
    survivors = compacted(written, end)
    assert seen == sorted(set(seen))  # no duplicate, in order
    # every survivor above its position is seen; it may also see older records of the segment it
    # had open when the swap happened (that inode stays readable), never a renumbered one
    assert set(o for o in survivors if o >= 23) <= set(seen)
    assert seen[-1] == survivors[-1]


def test_a_reader_that_listed_segments_before_a_pass_merged_them_finds_the_merged_segment(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t, n=90, keys=4)
    end = closed_end(t)
    bases = list_segments(t.log(0).directory)
    reader = t.reader(0)
    try:
        assert reader.read(0, 1)[0].offset == 0  # lists the segments and opens the first one
        t.alter({"segment.bytes": 100_000})  # so the pass merges every closed segment into one
        t = reopen(t)
        clean_partition(t.log(0), now=NOW, force=True)
        assert list_segments(t.log(0).directory) == [0, bases[-1]]
        survivors = compacted(written, end)
        for offset in (bases[2] + 1, bases[1], 1):  # inside segments that are gone now, then back
            got = reader.read(offset, 1)
            assert got[0].offset == next(o for o in survivors if o >= offset)
    finally:
        reader.close()


def test_a_timestamp_lookup_running_while_a_pass_merges_segments_still_finds_the_first_record(
        make_topic, monkeypatch):
    from logbroker.storage import reader as reader_module
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t, n=90, keys=4)
    end = closed_end(t)
    stale = list_segments(t.log(0).directory)
    t.alter({"segment.bytes": 100_000})  # the pass merges every closed segment into segment 0
    t = reopen(t)
    survivors = compacted(written, end)
    real = reader_module.segment_max_timestamp
    passes = []

    def pass_runs_right_after(directory, base, size):
        found = real(directory, base, size)
        if not passes:  # the lookup has looked at the old segment 0 and will skip it
            passes.append(None)  # (the pass itself calls this function too)
            passes[0] = clean_partition(t.log(0), now=NOW, force=True)
        return found
    monkeypatch.setattr(reader_module, "segment_max_timestamp", pass_runs_right_after)
    target = stale[2] + 1  # its segment is merged away while the lookup runs
    reader = t.reader(0)
    try:
        assert reader.offset_for_timestamp(T0 + target) == next(o for o in survivors if o >= target)
    finally:
        reader.close()
    assert passes[0].ran and list_segments(t.log(0).directory) == [0, stale[-1]]
    # and the newest timestamp of a compacted segment without its indexes is found by a scan over the gaps
    directory = t.log(0).directory
    os.unlink(os.path.join(directory, "00000000000000000000.timeindex"))
    assert real(directory, 0, os.path.getsize(os.path.join(directory, "00000000000000000000.log"))) \
        == T0 + max(o for o in survivors if o < end)


def test_a_segment_deleted_while_the_pass_reads_it_ends_the_pass_cleanly(make_topic, monkeypatch):
    from logbroker.storage import cleaner
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t)
    real = cleaner._offset_map

    def racing(directory, segments, log_start):
        t.log(0).delete_records(segments[1].base_offset)  # as if delete-records ran right now
        return real(directory, segments, log_start)
    monkeypatch.setattr(cleaner, "_offset_map", racing)
    report = clean_partition(t.log(0), now=NOW, force=True)
    assert report.skipped_groups and "deleted during the pass" in report.reason
    got = read_all(reopen(t))
    assert all((r.key, r.value, r.timestamp) == written[r.offset] for r in got)


def test_tombstones_survive_one_pass_then_go_after_delete_retention_ms(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=600, delete_retention_ms=1000)
    written = fill(t, n=40, keys=4, tombstones={37})  # k1's last record, a tombstone
    t.log(0).append([rec({"x": 1}, key="k9", i=100)] * 5)  # roll past the tombstone
    t.log(0).append([rec({"x": 1}, key="k9", i=100)] * 5)
    first = clean_partition(t.log(0), now=T0 + 1037, force=True)
    assert first.tombstones_removed == 0
    got = {r.offset: r for r in read_all(reopen(t))}
    assert 37 in got and got[37].value is None and got[37].key == "k1"
    young = clean_partition(t.log(0), now=T0 + 37 + 1000, force=True)
    assert young.tombstones_removed == 0
    old = clean_partition(t.log(0), now=T0 + 37 + 1001, force=True)
    assert old.tombstones_removed == 1
    offsets = [r.offset for r in read_all(reopen(t))]
    assert 37 not in offsets and not any(written[o][0] == "k1" for o in offsets if o in written)


def test_a_tombstone_is_the_marked_null_and_a_json_null_is_an_ordinary_value(make_topic, data_dir):
    make_topic(cleanup_policy="compact")
    with Producer(data_dir) as p:
        p.send("t", None, key="gone")
        p.send_json("t", b"null", key="json-null")
    lines = open(os.path.join(data_dir, "t", "t-0", "00000000000000000000.log"), "rb").read().splitlines()
    assert b'"venc":"null"' in lines[0] and b"venc" not in lines[1]


def test_compacted_topics_refuse_records_without_a_key_and_write_nothing(make_topic, data_dir):
    t = make_topic(cleanup_policy="compact")
    with pytest.raises(InvalidRecordError, match="Compacted topic cannot accept message without key"):
        t.log(0).append([rec(1, key="a"), rec(2)])
    with pytest.raises(InvalidRecordError, match="without key"):
        t.log(0).append_values([1, 2], T0, b"null", b"")
    with Producer(data_dir) as p, pytest.raises(InvalidRecordError, match="without key"):
        p.send("t", {"v": 1}).get()
    assert read_all(reopen(t)) == []


def test_inspect_verify_accepts_compacted_gaps_but_not_a_missing_segment_in_a_log_never_compacted(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    fill(t)
    clean_partition(t.log(0), now=NOW, force=True)
    report = inspect_path(t.log(0).directory)
    assert report["ok"] and sum(s["gaps"] for s in report["segments"]) > 0
    plain = make_topic("plain", segment_bytes=600)
    fill(plain)
    directory = plain.log(0).directory
    middle = list_segments(directory)[1]
    for ext in ("log", "index", "timeindex"):
        os.unlink(os.path.join(directory, f"{middle:020d}.{ext}"))
    report = inspect_path(directory)
    assert not report["ok"] and any("previous one ends before" in p for p in report["problems"])


@pytest.mark.slow
def test_recovery_rebuilds_a_compacted_segment_index_without_calling_the_gap_corruption(make_topic):
    t = make_topic(cleanup_policy="compact", segment_bytes=600, index_interval_bytes=50)
    written = fill(t, n=120)
    end = closed_end(t)
    clean_partition(t.log(0), now=NOW, force=True)
    directory = t.log(0).directory
    for base in list_segments(directory)[:-1]:
        os.unlink(os.path.join(directory, f"{base:020d}.index"))
    t = reopen(t)
    assert any("indexes of closed segment" in a for a in t.log(0).recover().actions)
    assert not reopen(t).log(0).recover()  # and then nothing more to do
    assert [r.offset for r in read_all(reopen(t))] == compacted(written, end)


def _crash_at(k):
    count = [0]

    def hook(op, target):
        count[0] += 1
        if count[0] == k:
            raise OSError(5, "injected crash")
    return hook, count


@pytest.mark.slow
def test_a_pass_that_dies_at_any_durability_step_leaves_old_or_new_segments_and_recovery_finishes(
        make_topic, fault_hook):
    def fresh(name):
        t = make_topic(name, cleanup_policy="compact", segment_bytes=400, fsync="never")
        return t, fill(t, n=60, keys=3)

    t, written = fresh("steps")
    end = closed_end(t)
    want = compacted(written, end)
    old = {(r.offset, r.key, json.dumps(r.value)) for r in read_all(reopen(t))}
    hook, count = _crash_at(0)
    fault_hook(hook)
    clean_partition(t.log(0), now=NOW, force=True)  # counts the fsyncs and writes of one pass
    fault_hook(None)
    steps = count[0]
    assert steps > 10
    for k in range(1, steps + 1):
        t, _ = fresh(f"crash{k}")
        directory = t.log(0).directory
        fault_hook(_crash_at(k)[0])
        with pytest.raises(OSError):
            clean_partition(t.log(0), now=NOW, force=True)
        fault_hook(None)
        t = reopen(t)
        # whatever step it died at, readers see old records, and every survivor
        mid = [(r.offset, r.key, json.dumps(r.value)) for r in read_all(t)]
        assert set(mid) <= old
        assert [o for o, _k, _v in mid] == sorted({o for o, _k, _v in mid})
        assert set(want) <= {o for o, _k, _v in mid}
        t.log(0).recover()
        assert not [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap", ".tmp"))]
        assert inspect_path(directory)["ok"]
        clean_partition(t.log(0), now=NOW, force=True)
        assert [r.offset for r in read_all(reopen(t))] == want


def test_delete_records_moves_the_log_start_and_deletes_whole_segments_below_it(make_topic, data_dir):
    t = make_topic(segment_bytes=600)
    fill(t)
    directory = t.log(0).directory
    bases = list_segments(directory)
    cut = bases[2] + 1  # inside the third segment
    [report] = Broker(data_dir).delete_records([("t", 0, cut)])
    assert report.log_start_offset == cut and len(report.deleted) == 2
    assert list_segments(directory)[0] == bases[2]
    t = reopen(t)
    with pytest.raises(OffsetOutOfRangeError):
        t.reader(0).read(cut - 1)
    assert t.reader(0).read(cut, 1)[0].offset == cut
    assert [r.offset for r in read_all(t)][0] == cut
    consumer = Consumer(data_dir=data_dir, auto_offset_reset="earliest")
    consumer.assign([("t", 0)])
    consumer.seek("t", 0, 0)
    got = [r.offset for recs in consumer.poll(max_records=5).values() for r in recs]
    consumer.close()
    assert got[0] == cut
    with pytest.raises(OffsetOutOfRangeError):
        Broker(data_dir).delete_records([("t", 0, 10**6)])
    [again] = Broker(data_dir).delete_records([("t", 0, 1)])  # below the log start: nothing changes
    assert again.log_start_offset == cut and not again.deleted


def _cli(data_dir, *args, stdin=None):
    env = dict(os.environ, LOGBROKER_DATA_DIR=data_dir)
    return subprocess.run([sys.executable, "-m", "logbroker", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_compact_delete_records_and_topic_configs(data_dir, tmp_path):
    r = _cli(data_dir, "topics", "create", "prof", "-p", "1", "-c", "cleanup.policy=compact", "-c", "segment.bytes=300")
    assert r.returncode == 0, r.stderr
    described = json.loads(_cli(data_dir, "topics", "describe", "prof", "--json").stdout)
    assert described["config"]["cleanup.policy"] == "compact"
    assert described["config"]["delete.retention.ms"] == 86400000
    r = _cli(data_dir, "publish", "prof", stdin='{"a": 1}\n')
    assert r.returncode != 0 and "Compacted topic cannot accept message without key" in r.stderr
    lines = "".join(json.dumps({"k": f"k{i % 3}", "i": i}) + "\n" for i in range(30))
    assert _cli(data_dir, "publish", "prof", "--key-field", "k", stdin=lines).returncode == 0
    # one more record rolls the segment, so the 30 above are in a closed one
    assert _cli(data_dir, "publish", "prof", "--key-field", "k", stdin='{"k": "k0", "i": 30}\n').returncode == 0
    dry = _cli(data_dir, "compact", "--dry-run", "--force", "--json")
    [plan] = json.loads(dry.stdout)
    assert plan["dry_run"] and plan["ran"] and plan["records_after"] < plan["records_before"]
    r = _cli(data_dir, "compact", "prof", "--force")
    assert r.returncode == 0 and "cleaned" in r.stdout, r.stdout + r.stderr
    assert _cli(data_dir, "inspect", os.path.join(data_dir, "prof", "prof-0"), "--verify").returncode == 0
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({"partitions": [{"topic": "prof", "partition": 0, "offset": 29}], "version": 1}))
    r = _cli(data_dir, "delete-records", "--offset-json-file", str(offsets))
    assert r.returncode == 0 and "low_watermark: 29" in r.stdout, r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"partitions":[{"topic":"prof"}]}')
    r = _cli(data_dir, "delete-records", "--offset-json-file", str(bad))
    assert r.returncode == 2 and "partitions[0]" in r.stderr and "bad.json" in r.stderr
    r = _cli(data_dir, "delete-records", "prof", "--partition", "0", "--before-offset", "-1")
    assert r.returncode == 0 and "low_watermark: 31" in r.stdout


def test_inspect_lists_a_pending_swap_as_a_repair_not_damage_and_recover_finishes_it(make_topic, monkeypatch):
    from logbroker.storage import cleaner
    t = make_topic(cleanup_policy="compact", segment_bytes=600)
    written = fill(t, n=90, keys=4)
    end = closed_end(t)
    t.alter({"segment.bytes": 100_000})  # one group: a swap that replaces segment 0 and removes others
    t = reopen(t)
    real = cleaner._finish_swap

    def dies_after_replacing(log, base, next_offset, entries):
        # what a kill -9 right after step 5 leaves: the new segment 0, old segments after it, the .swap
        directory = log.directory
        from logbroker.storage import fsutil
        swap = os.path.join(directory, cleaner._swap_name(base, next_offset))
        fsutil.replace_keeping(swap, os.path.join(directory, f"{base:020d}.log"))
        raise KeyboardInterrupt
    monkeypatch.setattr(cleaner, "_finish_swap", dies_after_replacing)
    with pytest.raises(KeyboardInterrupt):
        clean_partition(t.log(0), now=NOW, force=True)
    monkeypatch.setattr(cleaner, "_finish_swap", real)
    directory = t.log(0).directory
    report = inspect_path(directory)
    assert not report["damage"] and any("finish the cleaner's swap" in r for r in report["repairs"])
    t = reopen(t)
    assert any("finished the swap" in a for a in t.log(0).recover().actions)
    assert inspect_path(directory)["ok"]
    assert [r.offset for r in read_all(reopen(t))] == compacted(written, end)


def test_a_run_whose_first_record_has_a_header_named_value_keeps_its_headers_and_value(make_topic):
    # `,"value":` also occurs inside a headers object whose second name is "value": the new batch
    # field must go before the record's value, not inside its headers
    t = make_topic(cleanup_policy="compact", segment_bytes=100_000)
    log = t.log(0)
    headers = {"x": "1", "value": "2"}
    log.append([rec(1, key="a"), rec({"value": 2, "y": 3}, key="b", headers=headers), rec(3, key="c"),
                rec(4, key="d")])
    log.append([rec(5, key="a")])
    t.alter({"segment.bytes": 100})
    t = reopen(t)
    t.log(0).append([rec(6, key="z")])
    clean_partition(t.log(0), now=NOW, force=True)
    got = read_all(reopen(t))
    assert [r.offset for r in got] == [1, 2, 3, 4, 5]
    assert got[0].headers == headers and got[0].value == {"value": 2, "y": 3}
    assert inspect_path(t.log(0).directory)["ok"]
