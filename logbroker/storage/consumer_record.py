"""Records as readers hand them out: :class:`Record` (Kafka's ConsumerRecord) and :class:`Records`,
the records of one partition from one read or poll.

These types hold parsed lines; they know nothing of the bytes on disk (that is :mod:`logbroker.storage.record`).
"""

from __future__ import annotations

import binascii
from itertools import repeat
from types import MappingProxyType
from typing import Iterator, Sequence

from .record_bytes import kafka_headers, kafka_key, kafka_value

__all__ = ["Record", "RawRecord", "Records"]


class Record:
    """One record as read from a partition (Kafka's ConsumerRecord).

    ``topic``, ``partition``, ``offset``, ``timestamp``, ``key``, ``headers`` (a read-only mapping of
    str to str, empty when the record has none) and ``value`` (the decoded JSON value, or its raw
    JSON bytes when read with ``raw=True``). A value a Kafka client sent that is not canonical compact
    JSON is ``bytes``, and ``None`` when it was null (FORMAT.md, "Bytes keys, values and headers");
    read raw, it stays the JSON string the line holds and the line's ``venc`` field says how to read
    it. It wraps the parsed line as it came from orjson, so
    reading a batch allocates one small object per record; ``value``, what nearly every consumer
    reads, is a plain attribute, the other fields are looked up in the line on access.
    """

    __slots__ = ("topic", "partition", "_d", "value")

    def __init__(self, topic: str, partition: int, fields: dict) -> None:
        self.topic = topic
        self.partition = partition
        self._d = fields
        self.value = fields["value"]

    offset = property(lambda self: self._d["offset"], doc="The record's offset in its partition.")
    timestamp = property(lambda self: self._d["timestamp"], doc="Milliseconds since the epoch.")
    key = property(lambda self: self._d["key"], doc="The key (str), None, or bytes for a key a Kafka client "
                                                    "sent that is not UTF-8.")
    @property
    def headers(self):
        """Headers: a mapping of str to str (None for a null value). Headers a Kafka client sent with
        a repeated name or a value that is not UTF-8 map each name to its last value, as str or bytes;
        :attr:`header_list` has them all, in order."""
        headers = self._d.get("headers")
        if not headers:
            return _NO_HEADERS
        if isinstance(headers, dict):
            return headers
        return MappingProxyType({name: value if value is None or isinstance(value, str) else _header_bytes(value)
                                 for name, value in headers})

    @property
    def header_list(self) -> list[tuple[str, "str | bytes | None"]]:
        """Every header in order, repeats included: (name, value as str, bytes when not UTF-8, or None)."""
        headers = self._d.get("headers")
        if not headers:
            return []
        if isinstance(headers, dict):
            return list(headers.items())
        return [(name, value if value is None or isinstance(value, str) else _header_bytes(value))
                for name, value in headers]

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"timestamp={self.timestamp}, key={self.key!r}, headers={dict(self.headers)!r}, value={self.value!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict:
        """The record as Kafka's envelope: topic, partition, offset, timestamp, key, headers, value."""
        d = self._d
        return {"topic": self.topic, "partition": self.partition, "offset": d["offset"],
                "timestamp": d["timestamp"], "key": d["key"], "headers": dict(self.headers),
                "value": self.value}


class RawRecord(Record):
    """A :class:`Record` whose ``value`` is the JSON bytes of the value, unparsed (``raw=True``)."""

    __slots__ = ()

    def __init__(self, topic: str, partition: int, fields: dict, value_json: bytes) -> None:
        self.topic = topic
        self.partition = partition
        self._d = fields
        self.value = value_json

    def kafka_fields(self) -> tuple["bytes | None", list, "bytes | None"]:
        """``(key, headers, value)`` as a Kafka client fetching this record gets them: key and value
        bytes (None when null) and the headers as ordered (name, bytes or None) pairs."""
        d = self._d
        if "venc" in d or "kenc" in d or "headers" in d:
            return kafka_key(d), kafka_headers(d), kafka_value(d, self.value)
        key = d["key"]  # a plain line: a str or null key, a JSON value sent as its bytes
        return (None if key is None else key.encode("utf-8")), [], self.value


_NO_HEADERS = MappingProxyType({})


def _header_bytes(value: dict) -> bytes:
    return binascii.a2b_base64(value["base64"])


class Records(Sequence[Record]):
    """The records of one partition from one read or poll, in offset order: a read-only sequence.

    It holds the line parsed for each record (and, read with ``raw=True``, the JSON bytes of each
    value) and makes each :class:`Record` when it is reached, by iteration or indexing. A poll's
    records thus keep one object per record alive until the caller moves on, the parsed line,
    not two: the cyclic garbage collector traverses and promotes every such object that is alive
    when it runs, and measured, that was a large part of what a consumer spent beyond parsing.
    A Record kept by the caller stays valid; ``records[i]`` makes a new, equal Record each time.
    """

    __slots__ = ("topic", "partition", "_lines", "_values")

    def __init__(self, topic: str, partition: int, lines: list[dict] | None = None,
                 values: list[bytes] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self._lines = [] if lines is None else lines
        self._values = values  # the raw values, with raw=True; else None

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[Record]:
        if self._values is None:
            return map(Record, repeat(self.topic), repeat(self.partition), self._lines)
        return map(RawRecord, repeat(self.topic), repeat(self.partition), self._lines, self._values)

    def __getitem__(self, i):  # type: ignore[override]
        values = self._values
        if isinstance(i, slice):
            return Records(self.topic, self.partition, self._lines[i], None if values is None else values[i])
        if values is None:
            return Record(self.topic, self.partition, self._lines[i])
        return RawRecord(self.topic, self.partition, self._lines[i], values[i])

    def __add__(self, other: "Records") -> "Records":
        if not isinstance(other, Records) or (other.topic, other.partition) != (self.topic, self.partition) or (
                (self._values is None) != (other._values is None)):
            return NotImplemented
        return Records(self.topic, self.partition, self._lines + other._lines,
                       None if self._values is None else self._values + other._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Records, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))

    @property
    def next_offset(self) -> int:
        """The offset after the last record (Kafka's next position); the sequence must not be empty."""
        return self._lines[-1]["offset"] + 1
