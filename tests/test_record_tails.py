"""Records encoded ahead of their offsets (``encode_tail`` / ``encode_tails``, what the producer does in
the caller's thread) make the same bytes as the same records encoded at the append (``encode_records``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.storage.record import (PendingRecord, TailGroup, encode_records, encode_tail, encode_tails,
                                      tail_template)

_text = st.text(alphabet=st.sampled_from('ab"\\,:{}%\u00e9 value'), max_size=12)
_records = st.lists(
    st.builds(PendingRecord,
              st.integers(0, 2**63 - 1),
              st.none() | _text,
              st.none() | st.dictionaries(st.sampled_from(["value", "h", ',"value":']), st.none() | _text, max_size=3),
              st.none() | st.integers(-2**63, 2**63 - 1) | _text | st.lists(st.integers(0, 10**6), max_size=3)),
    min_size=1, max_size=12)


def _group(records: list[PendingRecord]) -> TailGroup:
    tails, cuts = [], {}
    for i, record in enumerate(records):
        tail, cut = encode_tail(record)
        tails.append(tail)
        if record.headers_json:
            cuts[i] = cut
    stamps = [r.timestamp for r in records]
    return TailGroup(tails, cuts, stamps[0], max(stamps))


@settings(max_examples=200, deadline=None)
@given(_records, st.integers(0, 10**15), st.sampled_from([1 << 62, 2000, 600, 400]))
def test_tails_encode_to_the_bytes_of_records_encoded_at_the_append(records, base_offset, max_bytes):
    try:
        expected = encode_records(base_offset, records, max_bytes)
    except Exception as exc:  # a line alone longer than max_bytes: refused the same way
        try:
            encode_tails(base_offset, _group(records), max_bytes)
        except type(exc):
            return
        raise AssertionError(f"encode_tails accepted what encode_records refused with {exc!r}")
    assert encode_tails(base_offset, _group(records), max_bytes) == expected


def test_a_header_holding_the_value_mark_does_not_move_the_batch_field_into_it():
    records = [PendingRecord(5, "k", {"a": "b", "value": "c"}, {"v": 1}), PendingRecord(5, None, None, 2)]
    batches = encode_tails(0, _group(records))
    assert batches == encode_records(0, records)
    assert b'"headers":{"a":"b","value":"c"},"batch":{' in batches[0][0][0]


def test_the_tail_template_makes_the_tail_of_a_record_without_key_or_headers():
    record = PendingRecord(1764230400000, None, None, {"item": "lightstick"})
    assert tail_template(1764230400000) % record.value_json == encode_tail(record)[0]


@pytest.mark.parametrize("base_offset", [0, 5, 995, 1_998, 9_995, 999_990, 10**15 - 3])
def test_a_batch_whose_offsets_cross_a_thousand_or_gain_a_digit_encodes_as_at_the_append(base_offset):
    records = [PendingRecord(1_000 + i % 3, None if i % 2 else "k", None, {"i": i}) for i in range(12)]
    assert encode_tails(base_offset, _group(records)) == encode_records(base_offset, records)
