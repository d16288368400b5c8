"""The checksummed line every file logbroker writes shares (storage.framing), and the codec
functions that keep the other modules from reading record and index bytes themselves."""

from __future__ import annotations

import os

import pytest

from logbroker.groups.offsets import decode_line, encode_line
from logbroker.storage.framing import PREFIX_LEN, check_framed, frame, line_starts
from logbroker.storage.index import IndexEntries, closing_timestamp, write_index
from logbroker.storage.record import (PendingRecord, batch_max_timestamp, decode_batch, encode_records, parse_first_line,
                                      parse_line)

from conftest import T0


def test_a_framed_line_verifies_and_any_flipped_bit_is_caught():
    line = frame(b'"a":1,"b":"x"}')
    assert line.startswith(b'{"crc":"') and line.endswith(b"}\n") and len(line) == PREFIX_LEN + 15
    check_framed(line)
    check_framed(line[:-1])
    for bit in range(len(line[:-1]) * 8):
        damaged = bytearray(line[:-1])
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ValueError):
            check_framed(bytes(damaged))


def test_record_lines_and_group_files_share_the_one_framing():
    [batch] = encode_records(0, [PendingRecord(T0, "k", None, {"v": 1})])
    check_framed(batch.parts[0])
    assert encode_line({"generation": 3}) == frame(b'"generation":3}')
    assert decode_line(frame(b'"generation":3}')) == {"generation": 3}


def test_line_starts_finds_each_framed_line_after_an_lf_only():
    a, b = frame(b'"x":1}'), frame(b'"y":2}')
    data = a + b"garbage" + b + b"\n" + b[:10]
    assert list(line_starts(data)) == [len(a) + 7 + len(b) + 1]  # b follows garbage, not an LF
    data = a + b
    assert list(line_starts(data)) == [len(a)]


def test_the_newest_timestamp_of_a_batch_is_found_without_parsing_its_values():
    records = [PendingRecord(T0 + t, None, {"h": '"timestamp":9'}, {"timestamp": 10**15}) for t in (5, 90, 3, 40)]
    [batch] = encode_records(7, records)
    buf = b"".join(batch.parts)
    first, rest, end = decode_batch(buf, 0, len(buf))
    assert batch_max_timestamp(buf, first, rest, end) == T0 + 90 == batch.max_timestamp


def test_the_first_line_of_some_bytes_is_parsed_when_whole_and_none_when_cut():
    [batch] = encode_records(0, [PendingRecord(T0, None, None, i) for i in range(3)])
    buf = b"".join(batch.parts)
    assert parse_first_line(buf)["offset"] == 0
    assert parse_first_line(buf[:buf.index(b"\n")]) is None
    with pytest.raises(ValueError):
        parse_first_line(b"x" + buf[1:])
    assert parse_line(buf[:buf.index(b"\n") + 1]) == parse_first_line(buf)


def test_a_closed_segments_closing_time_index_entry_is_read_by_the_index_codec(tmp_path):
    index, timeindex = str(tmp_path / "0.index"), str(tmp_path / "0.timeindex")
    entries = IndexEntries(0)
    entries.add(10, 500, T0)
    write_index(index, timeindex, entries)
    assert closing_timestamp(index, timeindex) is None  # an active segment's: no closing entry
    entries.closing = (T0 + 77, 20)
    write_index(index, timeindex, entries)
    assert closing_timestamp(index, timeindex) == T0 + 77
    os.unlink(index)
    with pytest.raises(FileNotFoundError):
        closing_timestamp(index, timeindex)
