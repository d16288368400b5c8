"""Kafka's bytes keys, values and headers in a record line (FORMAT.md, "Bytes keys, values and headers")."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.tools.pretty import format_envelope, format_value
from logbroker.storage.record import PendingRecord, parse_line
from logbroker.storage.record_bytes import kafka_headers, kafka_key, kafka_value

from conftest import T0

kafka_bytes = st.none() | st.binary(max_size=40) | st.sampled_from(
    [b"null", b"v1", b'{"a":1}', b'{"a": 1}', b'"s"', b"1.0", b"1e5", b"\xff\xfe", b"", b"[1,2]"])
headers = st.lists(st.tuples(st.sampled_from(["a", "b", "\u00e9"]) | st.text(max_size=6), kafka_bytes), max_size=4)


def _append_and_read(make_topic, records):
    topic = make_topic()
    topic.log(0).append([PendingRecord.from_kafka(T0 + i, *r) for i, r in enumerate(records)])
    raw = list(topic.reader(0).read(0, max_records=len(records) + 1, raw=True))
    native = list(topic.reader(0).read(0, max_records=len(records) + 1))
    return topic, raw, native


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(kafka_bytes, headers, kafka_bytes), min_size=1, max_size=5))
def test_kafka_keys_values_and_headers_come_back_byte_for_byte(tmp_path_factory, records):
    from logbroker.storage.topic import Topic
    topic = Topic.create(str(tmp_path_factory.mktemp("d")), "t", 1)
    topic.log(0).append([PendingRecord.from_kafka(T0 + i, *r) for i, r in enumerate(records)])
    got = [(kafka_key(r._d), kafka_headers(r._d), kafka_value(r._d, r.value))
           for r in topic.reader(0).read(0, max_records=10, raw=True)]
    assert got == [(k, list(h), v) for k, h, v in records]
    # Native readers see the same records, and the lines stay valid JSON under their checksums.
    assert len(topic.reader(0).read(0, max_records=10)) == len(records)


def test_canonical_json_value_is_stored_as_json_and_other_bytes_are_marked(make_topic):
    topic, raw, native = _append_and_read(make_topic, [
        (b"k", None, b'{"item":"poster"}'), (b"k", None, b'{"item": "poster"}'), (None, None, b"\x00\xff"),
        (None, None, None), (None, None, b"null")])
    path = topic.partition_path(0) + "/00000000000000000000.log"
    lines = [parse_line(line) for line in open(path, "rb").read().splitlines(keepends=True)]
    assert lines[0]["value"] == {"item": "poster"} and "venc" not in lines[0]
    assert lines[1]["venc"] == "text" and lines[1]["value"] == '{"item": "poster"}'
    assert lines[2]["venc"] == "base64"
    assert lines[3]["venc"] == "null" and lines[3]["value"] is None
    assert "venc" not in lines[4] and lines[4]["value"] is None
    assert [r.value for r in native] == [{"item": "poster"}, b'{"item": "poster"}', b"\x00\xff", None, None]
    # The tombstone and the four bytes "null" differ for Kafka clients.
    assert [kafka_value(r._d, r.value) for r in raw][3:] == [None, b"null"]


def test_utf8_key_is_a_string_and_other_key_bytes_are_bytes_natively(make_topic):
    _, _, native = _append_and_read(make_topic, [(b"k1", None, b"1"), (b"\xfe\x00", None, b"2"), (None, None, b"3")])
    assert [r.key for r in native] == ["k1", b"\xfe\x00", None]


def test_repeated_or_bytes_headers_keep_order_and_native_mapping_takes_the_last(make_topic):
    _, raw, native = _append_and_read(make_topic, [
        (None, [("a", b"1"), ("b", None), ("a", b"\xff")], b"1"), (None, [("x", b"1"), ("y", b"2")], b"2")])
    assert kafka_headers(raw[0]._d) == [("a", b"1"), ("b", None), ("a", b"\xff")]
    assert native[0].header_list == [("a", "1"), ("b", None), ("a", b"\xff")]
    assert dict(native[0].headers) == {"a": b"\xff", "b": None}
    assert dict(native[1].headers) == {"x": "1", "y": "2"}  # the v1 object form, as native headers


def test_native_records_reach_kafka_clients_as_their_compact_json(make_topic):
    topic = make_topic()
    topic.log(0).append([PendingRecord(T0, "u1", {"src": "cli"}, {"item": "poster", "n": [1, 2.5]})])
    [r] = topic.reader(0).read(0, raw=True)
    assert kafka_key(r._d) == b"u1"
    assert kafka_headers(r._d) == [("src", b"cli")]
    assert kafka_value(r._d, r.value) == orjson.dumps({"item": "poster", "n": [1, 2.5]})


def test_bytes_values_print_losslessly_as_base64_objects(make_topic):
    _, _, native = _append_and_read(make_topic, [(b"\xfe", [("h", b"\xff")], b"v1")])
    assert format_value(native[0].value) == b'{"$base64":"djE="}'
    envelope = orjson.loads(format_envelope(native[0]))
    assert envelope["key"] == {"$base64": "/g=="} and envelope["headers"] == {"h": {"$base64": "/w=="}}
