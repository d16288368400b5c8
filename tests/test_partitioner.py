"""Kafka's default partitioner: murmur2 vectors, key placement, explicit and unkeyed records."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.errors import InvalidRecordError, UnknownPartitionError
from logbroker.clients.partitioner import Partitioner, murmur2, partition_for_key

# Published in Kafka's UtilsTest.testMurmur2.
KAFKA_MURMUR2_VECTORS = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


def reference_murmur2(data: bytes) -> int:
    """A plain, unoptimized transcription of Kafka's Utils.murmur2 to check the fast one with."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(length // 4):
        b = data[4 * i : 4 * i + 4]
        k = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = data[length & ~3 :]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


@pytest.mark.parametrize("text, expected", sorted(KAFKA_MURMUR2_VECTORS.items()))
def test_murmur2_matches_kafka_published_vectors(text, expected):
    assert murmur2(text.encode("utf-8")) == expected


def test_murmur2_returns_a_signed_32_bit_int():
    values = [murmur2(bytes([i]) * i) for i in range(64)]
    assert all(-(2**31) <= v < 2**31 for v in values)
    assert any(v < 0 for v in values)


@given(st.binary(max_size=64))
def test_murmur2_agrees_with_a_plain_transcription_of_kafka_for_any_bytes(data):
    assert murmur2(data) == reference_murmur2(data)


@pytest.mark.parametrize(
    "key, n, expected",
    [
        ("21", 3, 0), ("21", 4, 0), ("21", 10, 0),
        ("foobar", 3, 0), ("foobar", 4, 2), ("foobar", 10, 6),
        ("abc", 3, 0), ("abc", 4, 3), ("abc", 10, 7),
    ],
)  # fmt: skip
def test_partition_for_key_matches_kafka_placement(key, n, expected):
    assert partition_for_key(key, n) == expected


def test_partition_for_key_masks_the_sign_bit_instead_of_taking_abs():
    # murmur2("21") is negative; Kafka clears bit 31, which differs from abs() for this key.
    h = murmur2(b"21")
    assert h < 0
    assert partition_for_key("21", 7) == (h & 0x7FFFFFFF) % 7
    assert (h & 0x7FFFFFFF) % 7 != abs(h) % 7


def test_str_key_is_hashed_as_its_utf8_bytes():
    for key in ["abc", "ключ", "키-🎤", "x" * 300]:
        for n in (1, 3, 16):
            assert partition_for_key(key, n) == partition_for_key(key.encode("utf-8"), n)
    assert partition_for_key(bytearray(b"foobar"), 10) == 6


def test_empty_key_is_a_key_not_a_missing_key():
    expected = (murmur2(b"") & 0x7FFFFFFF) % 5
    assert partition_for_key(b"", 5) == expected
    assert partition_for_key("", 5) == expected
    # Unkeyed records rotate; an empty key always goes to its hashed partition.
    p = Partitioner(5, start=0)
    assert [p.partition(b"") for _ in range(10)] == [expected] * 10


def test_same_key_always_lands_on_the_same_partition():
    p = Partitioner(12, start=0)
    first = {f"user-{i}": p.partition(f"user-{i}") for i in range(500)}
    for _ in range(3):
        assert {k: p.partition(k) for k in first} == first


def test_key_cache_overflow_does_not_change_placement():
    keys = [f"k{i}" for i in range(20000)]  # more keys than the cache holds
    before = [partition_for_key(k, 13) for k in keys]
    after = [partition_for_key(k, 13) for k in keys]
    assert before == after == [(murmur2(k.encode()) & 0x7FFFFFFF) % 13 for k in keys]


def test_non_str_non_bytes_key_is_refused():
    with pytest.raises(InvalidRecordError):
        partition_for_key(42, 3)
    with pytest.raises(InvalidRecordError):
        Partitioner(3).partition(key=3.5)
    with pytest.raises(InvalidRecordError):
        partition_for_key(["unhashable"], 3)


def test_explicit_partition_wins_over_the_key():
    p = Partitioner(4, start=0)
    assert partition_for_key("foobar", 4) == 2
    assert p.partition("foobar", partition=1) == 1
    assert p.partition(None, partition=3) == 3
    assert p.partition(None, partition=0) == 0


@pytest.mark.parametrize("bad", [-1, 4, 100, 1.0, "1", True])
def test_explicit_partition_out_of_range_is_refused(bad):
    p = Partitioner(4, start=0)
    with pytest.raises(UnknownPartitionError) as caught:
        p.partition("k", partition=bad)
    assert isinstance(caught.value, ValueError)
    assert caught.value.partition == bad and caught.value.num_partitions == 4
    assert p.partition() == 0  # the refused record did not move the round-robin on


@pytest.mark.parametrize("n", [0, -3, 2.0])
def test_partition_count_must_be_positive(n):
    with pytest.raises(ValueError):
        Partitioner(n)
    if isinstance(n, int):
        with pytest.raises(ValueError):
            partition_for_key("abc", n)


def test_round_robin_spreads_unkeyed_records_in_turn():
    p = Partitioner(3, start=1)
    assert [p.partition() for _ in range(7)] == [1, 2, 0, 1, 2, 0, 1]


def test_skip_moves_the_round_robin_past_records_the_caller_spread_itself():
    p = Partitioner(3, start=1)
    assert p.partition() == 1
    p.skip(4)  # the caller put 4 more records on 2, 0, 1, 2
    assert [p.partition() for _ in range(4)] == [0, 1, 2, 0]


def test_unkeyed_records_spread_evenly_round_robin():
    n, records = 7, 7_000
    p = Partitioner(n)
    counts = Counter(p.partition() for _ in range(records))
    assert counts == {i: records // n for i in range(n)}


def test_random_start_differs_between_instances():
    starts = {Partitioner(16).partition() for _ in range(200)}
    assert len(starts) > 1


@given(
    key=st.one_of(st.none(), st.text(max_size=40), st.binary(max_size=40)),
    n=st.integers(min_value=1, max_value=10_000),
    skips=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=20),
)
def test_partition_is_always_in_range(key, n, skips):
    p = Partitioner(n)
    for skip in skips:
        part = p.partition(key)
        assert 0 <= part < n
        p.skip(skip)
    if key is not None:
        assert 0 <= partition_for_key(key, n) < n
