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

``Partitioner(num_partitions, *, sticky_bytes=16384, start=None)``
    ``partition(key=None, partition=None) -> int`` picks the partition of one record, in order:

    1. an explicit ``partition`` wins; it must be an ``int`` in ``0 <= partition < num_partitions``,
       otherwise ``logbroker.errors.UnknownPartitionError`` (a ``ValueError``) is raised;
    2. a record with a key (``key is not None``) goes to ``partition_for_key(key, num_partitions)``;
    3. a record without a key goes to the current *sticky* partition (Kafka >= 3.3, KIP-794).

    Sticky behaviour: unkeyed records all go to one partition until at least ``sticky_bytes`` bytes
    of unkeyed records were appended to it, then to the next partition (``(p + 1) % n``), so that
    records batch well while the load still spreads evenly over time. The partitioner cannot see
    what the producer writes, so **the producer must call** ``on_append(partition, nbytes)`` after
    appending each record whose partition came from step 3, with the number of bytes it appended
    (the encoded record line). Calls for any other partition than the current sticky one are
    ignored. Kafka counts only the unkeyed records; a producer that reports every record it
    appends still spreads evenly, the sticky partition just moves on a little sooner. A producer
    that never calls ``on_append`` sends every unkeyed record to one partition.

    ``sticky_bytes=0`` turns stickiness off: unkeyed records then go round-robin, one record per
    partition in turn, and ``on_append`` is not needed.

    The first sticky (or round-robin) partition is ``start``, or a random one when ``start`` is
    None, so that several producer processes do not all begin on partition 0. Everything is per
    ``Partitioner`` instance; an instance is not meant to be shared between threads without a lock
    (a race only skews the spread, it never yields an out-of-range partition).
"""

from __future__ import annotations

import random
import struct

from logbroker.errors import InvalidRecordError, UnknownPartitionError

__all__ = ["murmur2", "partition_for_key", "Partitioner", "DEFAULT_STICKY_BYTES"]

DEFAULT_STICKY_BYTES = 16384  # Kafka's batch.size default

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

    __slots__ = ("num_partitions", "sticky_bytes", "_current", "_sent")

    def __init__(
        self,
        num_partitions: int,
        *,
        sticky_bytes: int = DEFAULT_STICKY_BYTES,
        start: int | None = None,
    ) -> None:
        if type(num_partitions) is not int or num_partitions <= 0:
            raise ValueError(f"num_partitions must be an int >= 1, got {num_partitions!r}")
        if type(sticky_bytes) is not int or sticky_bytes < 0:
            raise ValueError(f"sticky_bytes must be an int >= 0, got {sticky_bytes!r}")
        if start is None:
            start = random.randrange(num_partitions)
        elif type(start) is not int or not 0 <= start < num_partitions:
            raise ValueError(f"start must be in [0, {num_partitions}), got {start!r}")
        self.num_partitions = num_partitions
        self.sticky_bytes = sticky_bytes
        self._current = start  # sticky partition, or the next round-robin partition
        self._sent = 0  # unkeyed bytes appended to the sticky partition since it was chosen

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
        p = self._current
        if not self.sticky_bytes:  # round-robin, one record per partition
            self._current = p + 1 if p + 1 < n else 0
        return p

    def on_append(self, partition: int, nbytes: int) -> None:
        """Tell the partitioner that ``nbytes`` of an unkeyed record were appended to ``partition``.

        Moves the sticky partition on once ``sticky_bytes`` were appended to it. A no-op in
        round-robin mode and for any partition that is not the current sticky one.
        """
        if partition != self._current or not self.sticky_bytes:
            return
        sent = self._sent + nbytes
        if sent >= self.sticky_bytes:
            p = partition + 1
            self._current = p if p < self.num_partitions else 0
            sent = 0
        self._sent = sent

    @property
    def sticky_partition(self) -> int:
        """The partition the next unkeyed record goes to."""
        return self._current

    def __repr__(self) -> str:
        return (
            f"Partitioner(num_partitions={self.num_partitions}, "
            f"sticky_bytes={self.sticky_bytes}, current={self._current})"
        )
