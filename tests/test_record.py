"""One record line and one batch (FORMAT.md, "One record line"): encoding, decoding, checksums."""

from __future__ import annotations

import math
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.errors import InvalidRecordError
from logbroker.storage.record import (BadBatch, BatchStatus, PendingRecord, batch_records, decode_batch,
                              encode_values, parse_line)

from conftest import T0
from corrupt import batch_bytes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
records = st.tuples(
    st.integers(0, 2**53), st.none() | st.text(max_size=20),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), json_values,
)


def decode_all(data: bytes, raw: bool = False):
    first, rest, end = decode_batch(data, 0, len(data))
    assert end == len(data)
    return batch_records(data, 0, first, rest, end, "t", 0, 0, raw)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**12), st.lists(records, min_size=1, max_size=20))
def test_batch_round_trips_offsets_timestamps_keys_headers_and_values(base, batch):
    pending = [PendingRecord(ts, key, headers, value) for ts, key, headers, value in batch]
    data, max_ts = batch_bytes(base, pending)
    assert max_ts == max(ts for ts, *_ in batch)
    got = decode_all(data)
    assert [r.offset for r in got] == list(range(base, base + len(batch)))
    assert [(r.timestamp, r.key, r.headers, r.value) for r in got] == [
        (ts, key, headers, value) for ts, key, headers, value in batch]
    raw = decode_all(data, raw=True)
    assert [orjson.loads(r.value) for r in raw] == [value for *_, value in batch]
    assert [(r.key, r.headers) for r in raw] == [(key, headers) for _, key, headers, _ in batch]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 2**53), st.none() | st.text(alphabet="%db{}\\\"x", max_size=8),
       st.dictionaries(st.text(alphabet="%db", max_size=4), st.text(alphabet="%dbx", max_size=4), max_size=2),
       st.lists(json_values, min_size=2, max_size=12))
def test_records_sharing_timestamp_key_and_headers_round_trip_whatever_their_text(base, ts, key, headers, values):
    # Such a batch is built from one template holding the key and headers: a % in them is text.
    pending = [PendingRecord(ts, key, headers, value) for value in values]
    data, max_ts = batch_bytes(base, pending)
    assert max_ts == ts
    got = decode_all(data)
    assert [(r.offset, r.timestamp, r.key, r.headers, r.value) for r in got] == [
        (base + i, ts, key, headers, value) for i, value in enumerate(values)]
    assert all(parse_line(line + b"\n") for line in data.splitlines())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 50), st.integers(0, 50))
def test_the_line_checksum_is_zlibs_crc32_whichever_implementation_computes_it(data, head, tail):
    from logbroker.storage.framing import crc32 as _crc32

    assert _crc32(data) == zlib.crc32(data)
    view = memoryview(data)[head:len(data) - tail]
    assert _crc32(view) == zlib.crc32(bytes(view))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=50), st.booleans())
def test_crcs_are_written_as_eight_lowercase_hex_digits_by_either_path(crcs, fallback):
    import logbroker.storage.record as record
    saved = record._U32
    record._U32 = None if fallback else saved
    try:
        assert record._hex8(crcs) == [b"%08x" % c for c in crcs]
    finally:
        record._U32 = saved


@pytest.mark.parametrize("base", [0, 1, 990, 999, 1000, 1001, 9_999_990, 10**12 - 5, 2**62])
@pytest.mark.parametrize("n", [1, 2, 15, 2_500])
@pytest.mark.parametrize("shared", [True, False])
def test_offsets_are_written_right_across_every_thousand(base, n, shared):
    # Lines sharing timestamp, key and headers write an offset's digits above the last three once
    # per thousand offsets; the others format each offset. Both must read back the same.
    pending = [PendingRecord(T0 if shared else T0 + i, None, None, i) for i in range(n)]
    data, _ = batch_bytes(base, pending)
    assert [(r.offset, r.value) for r in decode_all(data)] == [(base + i, i) for i in range(n)]
    assert [parse_line(line)["offset"] for line in data.splitlines(keepends=True)] == list(range(base, base + n))
    if shared:  # the bulk path (Producer.send_batch) builds its lines the same way
        [(parts, *_)] = encode_values(base, list(range(n)), T0, b"null", b"")
        assert b"".join(parts) == data


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**12), st.lists(st.integers(1, 40), min_size=1, max_size=12),
       st.none() | st.text(alphabet="%db{}\\\"x", max_size=6), st.booleans())
def test_runs_of_one_timestamp_give_the_same_lines_as_records_encoded_alone(base, runs, key, with_headers):
    # Records sharing key and headers are written run by run of equal timestamps, from templates;
    # a record alone takes the per-line path. Every line after a batch's first must be identical.
    headers = {"h": "v%d"} if with_headers else None
    pending = [PendingRecord(T0 + r, key, headers, {"run": r, "i": i})
               for r, length in enumerate(runs) for i in range(length)]
    data, _ = batch_bytes(base, pending)
    lines = data.splitlines(keepends=True)
    assert len(lines) == len(pending)
    for i in range(1, len(pending)):
        assert lines[i] == batch_bytes(base + i, [pending[i]])[0]
    assert [(r.offset, r.timestamp, r.key, dict(r.headers)) for r in decode_all(data)] == [
        (base + i, p[0], key, headers or {}) for i, p in enumerate(pending)]


def test_unicode_and_line_separators_stay_inside_one_line():
    value = {"text": "K-pop 🎤 ß é \u2028 \u2029 \n \r \0 end", "中文": ["\t"]}
    data, _ = batch_bytes(0, [PendingRecord(T0, "ключ", {"h": "\n"}, value)])
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    [r] = decode_all(data)
    assert (r.key, r.headers, r.value) == ("ключ", {"h": "\n"}, value)


def test_big_batch_of_many_records_round_trips_and_is_one_write_unit():
    pending = [PendingRecord(T0 + i, f"k{i % 7}", {"n": str(i)} if i % 3 == 0 else None, {"i": i, "pad": "x" * (i % 50)})
               for i in range(5000)]
    data, _ = batch_bytes(42, pending)
    got = decode_all(data)
    assert [r.offset for r in got] == list(range(42, 5042))
    assert [r.value["i"] for r in got] == list(range(5000))


def test_line_grammar_matches_format_md():
    data, _ = batch_bytes(7, [PendingRecord(T0, "u1", None, {"item": "lightstick"}),
                               PendingRecord(T0 + 1, None, None, [1, 2])])
    first, second, empty = data.split(b"\n")
    assert empty == b""
    for line in (first, second):
        assert line[:8] == b'{"crc":"' and line[16:18] == b'",'
        assert line[8:16] == b"%08x" % zlib.crc32(line[18:])
    assert first[18:].startswith(b'"offset":7,"timestamp":%d,"key":"u1","batch":{"count":2,"bytes":%d,"crc":"%08x"}'
                                 % (T0, len(second) + 1, zlib.crc32(second + b"\n")))
    assert second[18:] == b'"offset":8,"timestamp":%d,"key":null,"value":[1,2]}' % (T0 + 1)
    assert parse_line(second + b"\n")["offset"] == 8


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"a": {"b": math.inf}}])
def test_nan_and_infinity_are_refused(bad):
    with pytest.raises(InvalidRecordError, match="NaN or Infinity"):
        PendingRecord(T0, None, None, bad)


def test_null_values_and_finite_floats_are_accepted():
    data, _ = batch_bytes(0, [PendingRecord(T0, None, None, [None, 1.5, {"x": None}])])
    assert decode_all(data)[0].value == [None, 1.5, {"x": None}]


@pytest.mark.parametrize("key, headers", [(1, None), (b"k", None), (None, {"a": 1}), (None, {1: "a"})])
def test_keys_and_headers_that_are_not_strings_are_refused(key, headers):
    with pytest.raises(InvalidRecordError):
        PendingRecord(T0, key, headers, 1)


def test_values_json_cannot_hold_are_refused():
    with pytest.raises(InvalidRecordError):
        PendingRecord(T0, None, None, {1, 2})


@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_single_bit_flip_of_a_batch_is_detected(batch_size):
    pending = [PendingRecord(T0 + i, "key", {"h": "v"}, {"n": i, "s": "abcdef0123"}) for i in range(batch_size)]
    data, _ = batch_bytes(1000, pending)
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BadBatch):
            decode_batch(bytes(damaged), 0, len(damaged))


def test_crc_field_in_upper_case_or_with_spaces_is_not_accepted():
    data, _ = batch_bytes(0, [PendingRecord(T0, None, None, 1)])
    for fake in (data[8:16].upper(), b" " + data[9:16]):
        if fake != data[8:16]:
            with pytest.raises(BadBatch):
                decode_batch(data[:8] + fake + data[16:], 0, len(data))


def test_a_batch_cut_short_is_incomplete_not_invalid():
    data, _ = batch_bytes(0, [PendingRecord(T0, None, None, "a" * 50) for _ in range(3)])
    for cut in range(1, len(data)):
        with pytest.raises(BadBatch) as info:
            decode_batch(data[:cut], 0, cut)
        assert info.value.status == BatchStatus.INCOMPLETE
