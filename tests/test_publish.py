"""publish_lines in process: lines cut across reads, and a summary that stays true when an append fails."""

from __future__ import annotations

import errno
import io

import pytest

from logbroker import Broker, DiskFullError
from logbroker.tools import publish
from logbroker.tools.publish import PublishSummary, publish_lines


def _values(data_dir, topic="t", partition=0):
    return [r.value for r in Broker(data_dir).topic(topic).reader(partition).read(0, 100_000)]


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1 << 20])
def test_lines_cut_anywhere_across_reads_are_published_whole(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(publish, "CHUNK", chunk)
    Broker(tmp_path).create_topic("t", 1, {"max.message.bytes": 200})
    errors = []
    text = (b'{"n": 0}\r\n\n' + b'"' + b"a" * 300 + b'"\n' + b'{"n": 1}\n' + b"not json\n" + b'{"n": 2}')
    summary = publish_lines(str(tmp_path), "t", io.BytesIO(text), on_error=errors.append)
    assert _values(tmp_path) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (summary.published, summary.failed, summary.skipped, summary.lines_read) == (3, 2, 1, 6)
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 5"]
    assert summary.per_partition == {0: 3} and summary.last_offsets == {0: 2}


@pytest.mark.slow
def test_a_disk_that_fills_mid_publish_stops_it_and_the_summary_counts_only_what_was_acknowledged(
        tmp_path, fault_hook):
    Broker(tmp_path).create_topic("t", 1)
    syncs = []

    def full_after_the_first_append(op, target):
        if str(target).endswith(".log"):
            if op == "fsync":
                syncs.append(target)  # the tail check's sync at open, then each append's
            elif op == "write" and len(syncs) >= 2:
                raise OSError(errno.ENOSPC, "No space left on device")

    fault_hook(full_after_the_first_append)
    lines = b"".join(b'{"n": %d}\n' % i for i in range(200_000))
    summary = PublishSummary()
    with pytest.raises(DiskFullError):
        publish_lines(str(tmp_path), "t", io.BytesIO(lines), summary=summary)
    fault_hook(None)
    stored = _values(tmp_path)
    assert 0 < summary.published == len(stored) < 200_000
    assert summary.not_acknowledged > 0 and isinstance(summary.error, DiskFullError)
    assert stored == [{"n": i} for i in range(len(stored))]  # the first lines: a rerun resumes after them
    assert summary.last_offsets == {0: len(stored) - 1}


def test_the_summary_counts_records_per_partition_with_their_last_offsets(tmp_path):
    Broker(tmp_path).create_topic("t", 3)
    summary = publish_lines(str(tmp_path), "t", io.BytesIO(b"".join(b"%d\n" % i for i in range(10))))
    assert sorted(summary.per_partition.values()) == [3, 3, 4]  # round-robin
    for p in range(3):
        assert len(_values(tmp_path, "t", p)) == summary.per_partition[p] == summary.last_offsets[p] + 1


_LINES = [b'{"n": 0}', b'  {"n": 1}  ', b'[1, 2]', b'"text"', b"12", b"", b"   ", b"not json", b"NaN", b'{"n": Infinity}',
          b"[" * 300 + b"]" * 300, b"[" * 200 + b"]" * 200, b"[" * 256 + b"]" * 256, b"[" * 255 + b"]" * 255,
          b'"' + b"{" * 300 + b'"', b"[" * 300, b'{"big": 12345678901234567890}', b'{"ok": 1234567890123456789}',
          b'"' + b"9" * 25 + b'"', b"\xff", b'{"a": 1', b"1, 2", b"[3", b"4]", b"x" * 80, b'"' + b"y" * 60 + b'"', None]


@pytest.mark.parametrize("max_len", [70, 1000])
@pytest.mark.parametrize("seed", range(40))
def test_a_read_checked_at_once_is_accepted_exactly_when_every_line_is_on_its_own(seed, max_len):
    import random
    rng = random.Random(seed)
    lines = [rng.choice(_LINES) for _ in range(rng.randrange(1, 6))]
    alone = []
    for line in lines:
        try:
            if line is None or len(line.strip()) > max_len:
                raise ValueError("too long")
            publish.parse_value(line)
            alone.append(line.strip())
        except ValueError:
            alone = None
            break
    got = publish.acceptable_values(lines, max_len)
    if alone is None:
        assert got is None  # never accepts what a line alone would be refused for
    else:
        assert got in (None, alone)  # None: a long run of digits or many brackets, left to line by line


def test_a_read_of_ordinary_lines_is_accepted_at_once_and_stored_stripped():
    lines = [b'{"n": 0}', b'  [1, 2] ', b'"text"', b"12", b'{"ok": 123456789012345678}']
    assert publish.acceptable_values(lines, 70) == [line.strip() for line in lines]


@pytest.mark.parametrize("line", [b'{"big": 12345678901234567890}', b"[" * 300 + b"]" * 300, b"NaN", b"  ", b'{"a": 1'])
def test_a_read_with_one_line_refused_alone_is_not_accepted_at_once(line):
    assert publish.acceptable_values([b'{"n": 0}', line, b"1"], 1000) is None


def test_a_read_is_refused_at_once_exactly_when_one_line_opens_more_brackets_than_the_depth_limit():
    deep = publish.MAX_DEPTH
    many_shallow = [b"[" * 200 + b"1" + b"]" * 200] * 10  # 2,000 brackets in the read, 200 a line
    assert publish.acceptable_values(many_shallow, 10_000) == many_shallow
    mixed_ok = b"[" * (deep - 128) + b'{"a":' * 128 + b"1" + b"}" * 128 + b"]" * (deep - 128)
    mixed_deep = b"[" + mixed_ok + b"]"  # one level more, "{" and "[" counted together
    assert publish.acceptable_values([b"1", mixed_ok, b"2"], 10_000) == [b"1", mixed_ok, b"2"]
    assert publish.acceptable_values([b"1", mixed_deep, b"2"], 10_000) is None
    with pytest.raises(ValueError, match="nested deeper"):
        publish.parse_value(mixed_deep)


def test_a_pipe_is_widened_so_that_a_fast_writer_fills_reads_of_a_whole_chunk():
    import os
    if not hasattr(pytest.importorskip("fcntl"), "F_SETPIPE_SZ"):
        pytest.skip("pipes keep their size where F_SETPIPE_SZ does not exist (Linux only)")
    r, w = os.pipe()
    with open(r, "rb") as stream:
        publish.widen_pipe(stream)
        os.set_blocking(w, False)
        data = b'{"n": 1}\n' * ((publish.CHUNK - 4096) // 9)
        assert os.write(w, data) == len(data)  # 64 KiB without widening
        os.close(w)
        chunks = [lines for _, lines in publish.iter_line_chunks(stream, 1000)]
    assert [len(lines) for lines in chunks] == [len(data) // 9]


def test_lines_too_short_to_be_nested_too_deep_skip_the_depth_check_and_are_still_judged_alone():
    deep = publish.MAX_DEPTH
    brackets_in_a_string = b'"' + b"[" * (deep + 50) + b'"'  # many openers, depth 0: accepted alone
    assert len(brackets_in_a_string) < 2 * (deep + 1)
    assert publish.acceptable_values([b"1", brackets_in_a_string], 10_000) == [b"1", brackets_in_a_string]
    unclosed = b"[" * (deep + 50)  # too short to be that deep and valid: not JSON, refused alone
    assert publish.acceptable_values([b"1", unclosed], 10_000) is None
    with pytest.raises(ValueError):
        publish.parse_value(unclosed)
    shortest_too_deep = b"[" * (deep + 1) + b"]" * (deep + 1)
    assert len(shortest_too_deep) == 2 * (deep + 1)
    assert publish.acceptable_values([b"1", shortest_too_deep], 10_000) is None
