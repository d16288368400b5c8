"""The server's codecs without a network: wire primitives and schemas, record batches v2, CRC-32C."""

from __future__ import annotations

import gzip
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.kafka import crc32c as crc_module
from logbroker.kafka.batch import BatchError, decode_batches, encode_batch, encode_plain_batch
from logbroker.kafka.schemas import API_VERSIONS, APIS, by_key
from logbroker.kafka.wire import DecodeError, Reader, decode, encode, read_varint, write_varint


def test_crc32c_matches_the_standard_check_value_native_and_fallback():
    assert crc_module.crc32c_python(b"123456789") == 0xE3069283
    assert crc_module.crc32c(b"123456789") == 0xE3069283


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300))
def test_crc32c_fallback_agrees_with_the_native_package(data):
    assert crc_module.crc32c_python(data) == crc_module.crc32c(data)


records = st.lists(st.tuples(st.integers(0, 2**40), st.none() | st.binary(max_size=20),
                             st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)), max_size=3),
                             st.none() | st.binary(max_size=30)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(records, st.integers(0, 2**40))
def test_batch_encoded_for_fetch_decodes_as_produced_records(recs, base):
    data = encode_batch(base, [(base + i, ts, k, h, v) for i, (ts, k, h, v) in enumerate(recs)])
    [batch] = decode_batches(data)
    assert [(ts, k, list(h), v) for ts, k, h, v in batch.records] == recs


_SIZES = st.sampled_from([0, 1, 63, 64, 65, 127, 128, 8191, 8192, 20_000])  # varints of one, two and three bytes


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 20_000), st.none() | _SIZES, st.none() | _SIZES), min_size=1, max_size=150),
       st.integers(0, 2**40))
def test_batch_with_long_fields_many_records_and_spread_timestamps_decodes_as_produced(shape, base_ts):
    recs = [(base_ts + max(0, dt), None if k is None else b"k" * k, [], None if v is None else bytes([i % 256]) * v)
            for i, (dt, k, v) in enumerate(shape)]
    data = encode_batch(7, [(7 + i, ts, k, h, v) for i, (ts, k, h, v) in enumerate(recs)])
    [batch] = decode_batches(data)
    assert batch.records == [(ts, k, (), v) for ts, k, _, v in recs]  # no headers: the empty tuple


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(-5000, 5000), st.binary(max_size=20), _SIZES),
                min_size=1, max_size=40), st.integers(0, 2**40), st.integers(0, 2**41), st.booleans())
def test_a_batch_encoded_column_by_column_is_the_batch_encoded_record_by_record(shape, base, ts0, with_keys):
    offsets, timestamps, keys, values, offset = [], [], [], [], base
    for gap, dt, key, size in shape:  # offsets ascending with gaps (a compacted log), timestamps in any order
        offsets.append(offset)
        timestamps.append(ts0 + dt)
        keys.append(key)
        values.append(b"v" * size)
        offset += 1 + gap
    expected = encode_batch(base, [(o, ts, k if with_keys else None, [], v)
                                   for o, ts, k, v in zip(offsets, timestamps, keys, values)])
    assert encode_plain_batch(offsets, timestamps, keys if with_keys else None, values) == expected


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=20), _SIZES | st.sampled_from([4040, 4053, 4060, 4085, 4090])),
                min_size=1, max_size=40), st.integers(0, 2**40), st.integers(2**41, 2**42), st.sampled_from([0, 1, 100, 4095, 4096, 2**40]), st.booleans())
def test_a_batch_of_contiguous_offsets_encoded_column_by_column_is_the_batch_encoded_record_by_record(
        shape, base, ts0, ts_step, with_keys):
    # A fetch from a log that is not compacted: offsets a range; timestamps equal (step 0), close
    # together or far apart, some before the first; records just under and over 4096 bytes.
    offsets = range(base, base + len(shape))
    timestamps = [ts0 + (0, 2, 1, -1)[i % 4] * ts_step for i in range(len(shape))]
    keys = [key for key, _ in shape]
    values = [b"v" * size for _, size in shape]
    expected = encode_batch(base, [(o, ts, k if with_keys else None, [], v)
                                   for o, ts, k, v in zip(offsets, timestamps, keys, values)])
    assert encode_plain_batch(offsets, timestamps, keys if with_keys else None, values) == expected


def _gzip_batch(recs):
    plain = encode_batch(0, [(i, ts, k, h, v) for i, (ts, k, h, v) in enumerate(recs)])
    body = gzip.compress(plain[61:])
    after = struct.pack(">hiqqqhii", 1, len(recs) - 1, *struct.unpack(">qqqhi", plain[27:57]), len(recs)) + body
    from logbroker.kafka.crc32c import crc32c
    return struct.pack(">qiibI", 0, len(after) + 9, 0, 2, crc32c(after)) + after


def test_gzip_batches_are_decompressed():
    recs = [(5, b"k", [("h", b"v")], b"value"), (6, None, [], None)]
    [batch] = decode_batches(_gzip_batch(recs))
    assert [(ts, k, list(h), v) for ts, k, h, v in batch.records] == recs


def test_without_cramjam_snappy_lz4_and_zstd_are_refused_with_76_naming_the_package(monkeypatch):
    from logbroker.kafka import batch as batch_module
    monkeypatch.setattr(batch_module, "_cramjam", None)
    plain = bytearray(encode_batch(0, [(0, 1, None, [], b"x")]))
    plain[22] = 4  # attributes: zstd
    from logbroker.kafka.crc32c import crc32c
    plain[17:21] = struct.pack(">I", crc32c(bytes(plain[21:])))
    with pytest.raises(BatchError) as info:
        decode_batches(bytes(plain))
    assert info.value.code == 76 and "install the cramjam package" in str(info.value)


def test_a_flipped_byte_fails_the_batch_crc():
    data = bytearray(encode_batch(0, [(0, 1, b"k", [], b"value")]))
    data[-1] ^= 1
    with pytest.raises(BatchError) as info:
        decode_batches(bytes(data))
    assert info.value.code == 2


def test_old_message_formats_are_refused_with_43():
    data = bytearray(encode_batch(0, [(0, 1, b"k", [], b"value")]))
    data[16] = 1
    with pytest.raises(BatchError) as info:
        decode_batches(bytes(data))
    assert info.value.code == 43


@pytest.mark.parametrize("api", APIS, ids=lambda a: a.name)
def test_every_request_and_response_version_round_trips_with_defaults(api):
    for version in range(api.min_version, api.max_version + 1):
        flexible = api.flexible(version)
        for schema in (api.request, api.response):
            out = bytearray()
            encode(schema, {}, version, flexible, out)
            again = bytearray()
            encode(schema, decode(schema, Reader(bytes(out)), version, flexible), version, flexible, again)
            assert again == out


def test_truncated_messages_raise_decode_errors_not_crashes():
    out = bytearray()
    api = by_key[3]
    encode(api.request, {"Topics": [{"Name": "orders"}]}, 8, False, out)
    for cut in range(len(out)):
        try:
            decode(api.request, Reader(bytes(out[:cut])), 8, False)
        except DecodeError:
            pass


def test_the_advertised_table_keeps_the_versions_old_librdkafka_probes():
    table = {k: (lo, hi) for k, lo, hi in API_VERSIONS}
    must = {0: (3, 7), 1: (4, 10, 11), 10: (0,), 11: (0,), 14: (0,), 12: (0,), 13: (0,), 8: (2,), 9: (1,), 2: (1,),
            22: (0,), 18: (0, 3)}
    for key, versions in must.items():
        lo, hi = table[key]
        assert all(lo <= v <= hi for v in versions), (key, versions, table[key])


def test_null_in_a_field_that_cannot_be_null_is_a_decode_error():
    api = by_key[19]  # CreateTopics v4: Topics is not nullable (a fuzzed request once crashed a handler)
    data = struct.pack(">i", -1) + struct.pack(">i", 1000) + b"\x00"
    with pytest.raises(DecodeError, match="Topics is null"):
        decode(api.request, Reader(data), 4, False)
    meta = by_key[3]  # Metadata v4: a null topic list means "all topics"
    assert decode(meta.request, Reader(struct.pack(">i", -1) + b"\x01"), 4, False)["Topics"] is None


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(records, st.data())
def test_mutated_batches_with_a_valid_crc_raise_only_batch_errors(recs, data):
    from logbroker.kafka.crc32c import crc32c
    batch = bytearray(encode_batch(0, [(i, ts, k, h, v) for i, (ts, k, h, v) in enumerate(recs)]))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(57, len(batch) - 1))  # the record count and the records
        batch[i] = data.draw(st.integers(0, 255))
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    try:
        decode_batches(bytes(batch))
    except BatchError as exc:
        assert exc.code in (2, 42)


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_zig_zag_varints_round_trip_through_the_one_codec_that_batches_and_messages_share(n):
    out = bytearray(b"\xff")
    write_varint(out, n)
    assert read_varint(bytes(out), 1) == (n, len(out))
    with pytest.raises(DecodeError, match="runs past the end"):
        read_varint(bytes(out[:-1]), 1)
