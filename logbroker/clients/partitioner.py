"""Kafka's default partitioner: which partition a record goes to.

Contract
--------
``murmur2(data)``
    The 32-bit MurmurHash2 variant of Kafka's ``org.apache.kafka.common.utils.Utils.murmur2``
    (seed ``0x9747b28c``), bit for bit, returned as a *signed* 32-bit int like Java's ``int``.

``partition_for_key(key, num_partitions)``
    ``(murmur2(key_bytes) & 0x7fffffff) % num_partitions`` -- Kafka's ``toPositive`` mask, not
    ``abs()``. A ``str`` key is hashed as its UTF-8 bytes, so ``"abc"`` and ``b"abc"`` land on the
    same partition, and the same key lands on the same partition as in a Java Kafka client with the
    same partition count. The empty key (``""`` / ``b""``) is a key like any other; only ``None``
    means "no key"; any other key type raises ``logbroker.errors.InvalidRecordError``. Hashes of
    recently seen keys are kept in a small bounded cache because the producer calls this for every
    keyed record.

``Partitioner(num_partitions, *, start=None)``
    ``partition(key=None, partition=None) -> int`` picks the partition of one record, in order:

    1. an explicit ``partition`` wins; it must be an ``int`` in ``0 <= partition < num_partitions``,
       otherwise ``logbroker.errors.UnknownPartitionError`` (a ``ValueError``) is raised;
    2. a record with a key (``key is not None``) goes to ``partition_for_key(key, num_partitions)``;
    3. a record without a key goes to the next partition in turn (round-robin, one record each).

    ``skip(count)`` moves the turn on past ``count`` unkeyed records the caller spread itself. The
    first partition in turn is ``start``, or a random one when ``start`` is None, so that several
    producer processes do not all begin on partition 0. Everything is per ``Partitioner``
    instance; an instance is not meant to be shared between threads without a lock (a race only
    skews the spread, it never yields an out-of-range partition).
"""

from __future__ import annotations

import random
import struct

from logbroker.errors import InvalidRecordError, UnknownPartitionError

__all__ = ["murmur2", "partition_for_key", "Partitioner"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF

# struct formats "<nI" for reading n little-endian 32-bit blocks at once, built on demand.
_BLOCK_FORMATS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` of ``data``, as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    nblocks = length >> 2
    if nblocks:
        fmt = _BLOCK_FORMATS.get(nblocks)
        if fmt is None:
            fmt = _BLOCK_FORMATS[nblocks] = struct.Struct("<%dI" % nblocks)
        for k in fmt.unpack_from(data):
            k = (k * _M) & _MASK32
            k ^= k >> 24
            k = (k * _M) & _MASK32
            h = ((h * _M) & _MASK32) ^ k
    tail = length & 3
    if tail:
        i = length - tail
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h ^= data[i]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


# Positive (masked) hashes of recently used keys. Cleared wholesale when full: cheap, bounded, and
# the producer's working set of keys is usually far smaller than the limit.
_HASH_CACHE: dict[str | bytes, int] = {}
_HASH_CACHE_MAX = 8192


def _hash_and_cache(key: str | bytes | bytearray | memoryview) -> int:
    """The masked murmur2 of a key that is not in the cache; caches immutable keys."""
    if isinstance(key, str):
        h = murmur2(key.encode("utf-8")) & 0x7FFFFFFF
    elif isinstance(key, bytes):
        h = murmur2(key) & 0x7FFFFFFF
    elif isinstance(key, (bytearray, memoryview)):
        return murmur2(bytes(key)) & 0x7FFFFFFF  # mutable: never cached
    else:
        raise InvalidRecordError(
            f"a record key must be a string, bytes or None, not {type(key).__name__}", key=key
        )
    if len(_HASH_CACHE) >= _HASH_CACHE_MAX:
        _HASH_CACHE.clear()
    _HASH_CACHE[key] = h
    return h


def partition_for_key(key: str | bytes, num_partitions: int) -> int:
    """The partition of a keyed record: ``(murmur2(utf8(key)) & 0x7fffffff) % num_partitions``."""
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    try:
        h = _HASH_CACHE[key]
    except (KeyError, TypeError):  # not cached yet, or unhashable (bytearray)
        h = _hash_and_cache(key)
    return h % num_partitions


class Partitioner:
    """Chooses the partition of each record for one producer; see the module docstring."""

    __slots__ = ("num_partitions", "_next")

    def __init__(self, num_partitions: int, *, start: int | None = None) -> None:
        if type(num_partitions) is not int or num_partitions <= 0:
            raise ValueError(f"num_partitions must be an int >= 1, got {num_partitions!r}")
        if start is None:
            start = random.randrange(num_partitions)
        elif type(start) is not int or not 0 <= start < num_partitions:
            raise ValueError(f"start must be in [0, {num_partitions}), got {start!r}")
        self.num_partitions = num_partitions
        self._next = start  # the partition of the next unkeyed record

    def partition(self, key: str | bytes | None = None, partition: int | None = None) -> int:
        """The partition for a record with this key and optional explicit partition."""
        n = self.num_partitions
        if partition is not None:
            if type(partition) is not int or not 0 <= partition < n:
                raise UnknownPartitionError(
                    f"partition {partition!r} does not exist: the topic has {n} partition(s)"
                    f" (0..{n - 1})",
                    partition=partition,
                    num_partitions=n,
                )
            return partition
        if key is not None:
            return partition_for_key(key, n)
        p = self._next
        self._next = p + 1 if p + 1 < n else 0
        return p

    def skip(self, count: int) -> None:
        """Move the turn on past ``count`` unkeyed records the caller spread round-robin itself."""
        self._next = (self._next + count) % self.num_partitions

    def __repr__(self) -> str:
        return f"Partitioner(num_partitions={self.num_partitions}, next={self._next})"
