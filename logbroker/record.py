"""Records and the bytes of one record line (FORMAT.md, "One record line").

This module is the only one that knows the line grammar. It encodes a batch of records into the
bytes of one ``write`` and decodes batches back, verifying the checksums:

- every line starts with the fixed 18-byte prefix ``{"crc":"xxxxxxxx",`` followed by the body;
  the crc is ``zlib.crc32(body)``;
- the first line of a batch of N >= 2 records carries ``"batch":{"count":N,"bytes":L,"crc":"…"}``
  covering the L bytes of the N-1 lines after it.

Decoding verifies two checksums per batch, whatever its size, so reads stay close to the speed of a
plain ``split`` + ``orjson.loads`` while never returning an unchecked byte.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Iterable, Iterator

import orjson

from .errors import InvalidRecordError

__all__ = [
    "Record",
    "PendingRecord",
    "encode_batch",
    "decode_batch",
    "BatchStatus",
    "PREFIX_LEN",
    "check_value",
]

PREFIX_LEN = 18
_PREFIX_HEAD = b'{"crc":"'
_PREFIX_TAIL = b'",'
_crc32 = zlib.crc32
_dumps = orjson.dumps
_loads = orjson.loads


class Record:
    """One record as read from a partition (Kafka's ConsumerRecord).

    ``value`` is the decoded JSON value, or the raw JSON bytes of the value when read with
    ``raw=True``. ``headers`` is a dict of str to str (empty when the record has none).
    """

    __slots__ = ("topic", "partition", "offset", "timestamp", "key", "headers", "value")

    def __init__(self, topic, partition, offset, timestamp, key, headers, value):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.headers = headers
        self.value = value

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"timestamp={self.timestamp}, key={self.key!r}, headers={self.headers!r}, value={self.value!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def to_dict(self) -> dict:
        """The record as Kafka's envelope: topic, partition, offset, timestamp, key, headers, value."""
        return {n: getattr(self, n) for n in self.__slots__}


class PendingRecord:
    """A record waiting to be appended: the value already encoded, so errors surface at send()."""

    __slots__ = ("timestamp", "key_json", "headers_json", "value_json", "size")

    def __init__(self, timestamp: int, key: str | None, headers: dict | None, value: Any,
                 value_json: bytes | None = None) -> None:
        self.timestamp = int(timestamp)
        if key is not None and not isinstance(key, str):
            raise InvalidRecordError(f"a record key must be a string or None, not {type(key).__name__}")
        self.key_json = b"null" if key is None else _encode(key, "key")
        if headers:
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in headers.items()
            ):
                raise InvalidRecordError("record headers must be a dict of str to str")
            self.headers_json = b',"headers":' + _encode(headers, "headers")
        else:
            self.headers_json = b""
        self.value_json = check_value(value) if value_json is None else value_json
        self.size = len(self.key_json) + len(self.headers_json) + len(self.value_json) + 80


def _encode(obj: Any, what: str) -> bytes:
    try:
        return _dumps(obj)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRecordError(f"record {what} is not storable as JSON: {exc}") from exc


def check_value(value: Any) -> bytes:
    """Encode a record value to JSON, refusing what JSON cannot carry faithfully.

    orjson turns NaN and Infinity into ``null`` silently; that would change the data, so encoded
    values containing ``null`` are walked once to make sure no float was non-finite.
    """
    encoded = _encode(value, "value")
    if b"null" in encoded and _has_non_finite(value):
        raise InvalidRecordError("record value contains NaN or Infinity, which JSON cannot represent")
    return encoded


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def _line(body: bytes) -> bytes:
    return b'{"crc":"%08x",%b\n' % (_crc32(body), body)


def encode_batch(base_offset: int, records: list[PendingRecord]) -> tuple[bytes, int]:
    """The bytes of one batch holding ``records`` at offsets ``base_offset`` onwards.

    Returns (data, max_timestamp). The whole batch is meant for a single ``write``.
    """
    first = records[0]
    max_ts = first.timestamp
    if len(records) == 1:
        body = b'"offset":%d,"timestamp":%d,"key":%b%b,"value":%b}' % (
            base_offset, first.timestamp, first.key_json, first.headers_json, first.value_json)
        return _line(body), max_ts
    rest = []
    offset = base_offset
    for r in records[1:]:
        offset += 1
        ts = r.timestamp
        if ts > max_ts:
            max_ts = ts
        body = b'"offset":%d,"timestamp":%d,"key":%b%b,"value":%b}' % (
            offset, ts, r.key_json, r.headers_json, r.value_json)
        rest.append(b'{"crc":"%08x",%b\n' % (_crc32(body), body))
    tail = b"".join(rest)
    body = b'"offset":%d,"timestamp":%d,"key":%b%b,"batch":{"count":%d,"bytes":%d,"crc":"%08x"},"value":%b}' % (
        base_offset, first.timestamp, first.key_json, first.headers_json,
        len(records), len(tail), _crc32(tail), first.value_json)
    return _line(body) + tail, max_ts


class BatchStatus:
    """Why :func:`decode_batch` could not return a batch."""

    INCOMPLETE = "incomplete"  # the bytes end before the batch does: not yet written, or torn
    INVALID = "invalid"  # a checksum, prefix or JSON error: torn tail or corruption


class BadBatch(Exception):
    """Internal signal from :func:`decode_batch`; callers turn it into a report or an error."""

    def __init__(self, status: str, reason: str, needed: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.needed = needed  # for INCOMPLETE: bytes needed from the batch start, when known


def decode_batch(buf: bytes, pos: int, limit: int) -> tuple[dict, int, int]:
    """Verify the batch starting at ``buf[pos]`` and ending at or before ``limit``.

    Returns ``(first, rest_start, end)``: the parsed first line, where the following lines start,
    and the position after the batch. Raises :class:`BadBatch` otherwise.
    """
    nl = buf.find(b"\n", pos, limit)
    if nl < 0:
        raise BadBatch(BatchStatus.INCOMPLETE, "incomplete line")
    if buf[pos:pos + 8] != _PREFIX_HEAD or buf[pos + 16:pos + 18] != _PREFIX_TAIL:
        raise BadBatch(BatchStatus.INVALID, "line does not start with a crc prefix")
    # Compare the hex text itself: int(..., 16) would also accept "A" for "a" or " " for "0",
    # letting a flipped bit in the crc field pass unnoticed.
    if b"%08x" % _crc32(buf[pos + PREFIX_LEN:nl]) != buf[pos + 8:pos + 16]:
        raise BadBatch(BatchStatus.INVALID, "line checksum mismatch")
    try:
        first = _loads(buf[pos:nl])
        batch = first.get("batch")
    except (orjson.JSONDecodeError, AttributeError):
        raise BadBatch(BatchStatus.INVALID, "line is not a JSON object") from None
    if batch is None:
        return first, nl + 1, nl + 1
    try:
        end = nl + 1 + batch["bytes"]
        bcrc = int(batch["crc"], 16)
    except (KeyError, TypeError, ValueError):
        raise BadBatch(BatchStatus.INVALID, "malformed batch header") from None
    if end > limit:
        raise BadBatch(BatchStatus.INCOMPLETE, "incomplete batch", needed=end - pos)
    if _crc32(buf[nl + 1:end]) != bcrc or buf[end - 1] != 10:
        raise BadBatch(BatchStatus.INVALID, "batch checksum mismatch")
    return first, nl + 1, end


def batch_records(buf: bytes, start: int, first: dict, rest_start: int, end: int, topic: str,
                  partition: int, min_offset: int, raw: bool = False) -> list[Record]:
    """The records of one verified batch (``decode_batch``), skipping offsets below ``min_offset``.

    ``raw`` leaves each value as its JSON bytes. The lines after the first are parsed with one
    ``orjson.loads`` call: LF only ends lines, so the lines joined by commas are a JSON array.
    """
    if raw:
        return list(_raw_records(buf, start, first, rest_start, end, topic, partition, min_offset))
    if end > rest_start:
        try:
            dicts = _loads(b"[" + buf[rest_start:end - 1].replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            raise BadBatch(BatchStatus.INVALID, "batch lines are not JSON objects") from None
        if len(dicts) + 1 != first["batch"]["count"]:
            raise BadBatch(BatchStatus.INVALID, "batch holds a different number of lines than its header says")
        dicts.insert(0, first)
    else:
        dicts = [first]
    if dicts[0]["offset"] < min_offset:
        dicts = [d for d in dicts if d["offset"] >= min_offset]
    return [Record(topic, partition, d["offset"], d["timestamp"], d["key"], d.get("headers") or {},
                   d["value"]) for d in dicts]




_VALUE_MARK = b',"value":'


def _raw_records(buf, start, first, rest_start, end, topic, partition, min_offset) -> Iterator[Record]:
    # The first line was parsed already; its value bytes are cut from the line itself.
    lines = [bytes(buf[start:rest_start - 1])]
    if end > rest_start:
        lines.extend(buf[rest_start:end - 1].split(b"\n"))
    for i, line in enumerate(lines):
        d = first if i == 0 else None
        if b'"headers":' in line:
            d = d or _loads(line)
            value = _dumps(d["value"])
        else:
            if d is None:
                d = _loads(line[:line.index(_VALUE_MARK)] + b"}")
            value = line[line.index(_VALUE_MARK) + len(_VALUE_MARK):-1]
        if d["offset"] >= min_offset:
            yield Record(topic, partition, d["offset"], d["timestamp"], d["key"],
                         d.get("headers") or {}, value)


def parse_line(line: bytes) -> dict:
    """Parse and verify one line on its own (inspect and tests); raises ValueError when invalid."""
    if len(line) < PREFIX_LEN + 2 or line[:8] != _PREFIX_HEAD or line[16:18] != _PREFIX_TAIL:
        raise ValueError("line does not start with a crc prefix")
    if b"%08x" % _crc32(line[PREFIX_LEN:].rstrip(b"\n")) != line[8:16]:
        raise ValueError("line checksum mismatch")
    return _loads(line)


def records_from_lines(lines: Iterable[bytes]) -> list[dict]:
    return [parse_line(line) for line in lines]
