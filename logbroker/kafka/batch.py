"""Kafka's record batch, magic v2: decoding what producers send, encoding what Fetch returns.

Layout (61-byte header, then the records, compressed as one blob when the codec is not 0):
baseOffset i64, batchLength i32 (bytes after this field), partitionLeaderEpoch i32, magic i8 (2),
crc u32 (CRC-32C of everything from attributes to the end), attributes i16 (bits 0-2 codec, 3
timestamp type, 4 transactional, 5 control), lastOffsetDelta i32, baseTimestamp i64, maxTimestamp
i64, producerId i64, producerEpoch i16, baseSequence i32, recordsCount i32. A record: length varint,
attributes i8, timestampDelta varlong, offsetDelta varint, key (varint length, -1 null), value
(likewise), header count varint, headers (name: varint length + UTF-8; value: varint length, -1
null). Varints are zig-zag encoded.

Errors are :class:`BatchError` carrying Kafka's error code (2 CORRUPT_MESSAGE, 42 INVALID_REQUEST,
43 UNSUPPORTED_FOR_MESSAGE_FORMAT, 76 UNSUPPORTED_COMPRESSION_TYPE).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import sub
from typing import Sequence

from .crc32c import crc32c
from .wire import DecodeError, read_varint, write_varint

__all__ = ["BatchError", "ProducedBatch", "decode_batches", "encode_batch", "encode_plain_batch", "CODEC_PACKAGES"]

_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61

#: codec number -> (name, the PyPI package that decodes it here)
CODEC_PACKAGES = {2: ("snappy", "cramjam"), 3: ("lz4", "cramjam"), 4: ("zstd", "cramjam")}


class BatchError(ValueError):
    """A produced batch the broker refuses, with Kafka's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class ProducedBatch:
    """One batch as a producer sent it: its records as (timestamp, key, headers, value) tuples; a
    record without headers has the empty tuple, so that its tuple holds no container (the cyclic
    collector stops tracking it) and costs no list of its own."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: list[tuple[int, bytes | None, Sequence[tuple[str, bytes | None]], bytes | None]] = field(
        default_factory=list)


def _zigzag(buf: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_varint(buf, pos)
    except DecodeError as exc:
        raise BatchError(2, f"record {exc}") from None


def _blob(buf: bytes, pos: int, end: int) -> tuple[bytes | None, int]:
    n, pos = _zigzag(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > end:
        raise BatchError(2, f"record field of {n} bytes runs past the end of its record at byte {pos}")
    return buf[pos:pos + n], pos + n


try:
    import cramjam as _cramjam  # snappy, lz4 and zstd in one package (Rust, MIT)
except ImportError:  # not installed: those codecs are refused with 76
    _cramjam = None

_XERIAL = b"\x82SNAPPY\x00"  # the framing Java's and kafka-python's snappy batches use


def _snappy(data: bytes) -> bytes:
    if not data.startswith(_XERIAL):
        return bytes(_cramjam.snappy.decompress_raw(data))
    out, pos = bytearray(), 16  # magic, then int32 version and int32 compatible version
    while pos < len(data):
        (n,) = struct.unpack_from(">i", data, pos)
        if n < 0 or pos + 4 + n > len(data):
            raise ValueError(f"xerial snappy block of {n} bytes at byte {pos} runs past the end")
        out += _cramjam.snappy.decompress_raw(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return bytes(out)


def _decompress(codec: int, data: bytes) -> bytes:
    if codec == 1:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BatchError(2, f"gzip batch does not decompress: {exc}") from None
    name, package = CODEC_PACKAGES.get(codec, (f"codec {codec}", None))
    if package is None:
        raise BatchError(2, f"unknown compression codec {codec}")
    if _cramjam is None:
        raise BatchError(76, f"{name} compression is not supported by this server; install the {package} "
                             f"package to add it")
    try:
        if codec == 2:
            return _snappy(data)
        if codec == 3:
            return bytes(_cramjam.lz4.decompress(data))
        return bytes(_cramjam.zstd.decompress(data))
    except (ValueError, struct.error, _cramjam.DecompressionError) as exc:
        raise BatchError(2, f"{name} batch does not decompress: {exc}") from None


def decode_batches(data: bytes, max_bytes: int | None = None) -> list[ProducedBatch]:
    """The batches in a Produce request's Records field, each checked (magic, CRC, framing)."""
    batches = []
    pos, total = 0, len(data)
    if total == 0:
        raise BatchError(42, "empty record set")
    while pos < total:
        if total - pos < HEADER_SIZE:
            raise BatchError(2, f"truncated batch header at byte {pos}")
        (base_offset, length, _epoch, magic, crc, attributes, last_delta, base_ts, _max_ts, pid, pepoch, bseq,
         count) = _HEADER.unpack_from(data, pos)
        if magic != 2:
            raise BatchError(43, f"record batch magic {magic} is not supported (only magic 2, Kafka 0.11+)")
        end = pos + 12 + length
        if length < HEADER_SIZE - 12 or end > total:
            raise BatchError(2, f"batch at byte {pos} claims {length} bytes, {total - pos - 12} present")
        if crc32c(memoryview(data)[pos + 21:end]) != crc:
            raise BatchError(2, f"batch at byte {pos} fails its CRC-32C")
        if attributes & 0x30:
            raise BatchError(42, "transactional and control batches are not supported (transactions are refused)")
        if attributes & 0x08:
            raise BatchError(42, "batches with LogAppendTime timestamps are not accepted from producers")
        if count < 0 or count != last_delta + 1:
            raise BatchError(2, f"batch at byte {pos} holds {count} records but its last offset delta is {last_delta}")
        body = data[pos + HEADER_SIZE:end]
        codec = attributes & 0x07
        if codec:
            body = _decompress(codec, body)
            if max_bytes is not None and len(body) > max_bytes:
                raise BatchError(10, f"batch decompresses to {len(body)} bytes, more than {max_bytes}")
        batch = ProducedBatch(pid, pepoch, bseq)
        batch.records = _records(body, count, base_ts)
        batches.append(batch)
        pos = end
    return batches


_ONE_BYTE = [(b >> 1) ^ -(b & 1) for b in range(128)]  # zig-zag varints that fit in one byte
#: zig-zag varints of two bytes, indexed by ``first byte - 128 + (second byte << 7)``
_TWO_BYTES = [(n >> 1) ^ -(n & 1) for n in (lo | (hi << 7) for hi in range(128) for lo in range(128))]


def _records(body: bytes, count: int, base_ts: int) -> list:
    """The records of a batch body. Varints of one or two bytes (nearly all of them: lengths below
    8 KiB, deltas, null markers) are decoded inline from tables; only longer ones call
    :func:`_zigzag`. The offset delta is skipped, not decoded (records are in batch order)."""
    out = []
    append = out.append
    one, two, zigzag = _ONE_BYTE, _TWO_BYTES, _zigzag
    pos, n = 0, len(body)
    i = 0
    try:
        for i in range(count):
            b = body[pos]
            if b < 128:
                length, pos = one[b], pos + 1
            elif body[pos + 1] < 128:
                length, pos = two[b - 128 + (body[pos + 1] << 7)], pos + 2
            else:
                length, pos = zigzag(body, pos)
            end = pos + length
            if length < 0 or end > n:
                raise BatchError(2, f"record {i} of {length} bytes runs past the end of its batch")
            b = body[pos + 1]  # after the record's attributes, unused
            if b < 128:
                ts_delta, pos = one[b], pos + 2
            elif body[pos + 2] < 128:
                ts_delta, pos = two[b - 128 + (body[pos + 2] << 7)], pos + 3
            else:
                ts_delta, pos = zigzag(body, pos + 1)
            if body[pos] < 128:
                pos += 1
            elif body[pos + 1] < 128:
                pos += 2
            else:
                _offset_delta, pos = zigzag(body, pos)
            b = body[pos]  # the key: nearly always null (1) or short
            if b == 1:
                key, pos = None, pos + 1
            else:
                if b < 128:
                    size, pos = one[b], pos + 1
                else:
                    size, pos = zigzag(body, pos)
                if size < 0:
                    key = None
                else:
                    key, pos = body[pos:pos + size], pos + size
            b = body[pos]
            if b < 128:
                size, pos = one[b], pos + 1
            elif body[pos + 1] < 128:
                size, pos = two[b - 128 + (body[pos + 1] << 7)], pos + 2
            else:
                size, pos = zigzag(body, pos)
            if size < 0:
                value = None
            else:
                value, pos = body[pos:pos + size], pos + size
            if body[pos] == 0:
                headers, pos = (), pos + 1
            else:
                headers, pos = _headers(body, pos, end, i)
            if pos != end:
                raise BatchError(2, f"record {i} is {length} bytes long but its fields take {length - (end - pos)}")
            ts = base_ts + ts_delta
            if not 0 <= ts < 1 << 63:
                raise BatchError(2, f"record {i} has timestamp {ts}, outside 0 to 2^63-1 ms")
            append((ts, key, headers, value))
    except IndexError:
        raise BatchError(2, f"record {i} runs past the end of its batch") from None
    if pos != n:
        raise BatchError(2, f"batch holds {n - pos} bytes after its {count} records")
    return out


def _headers(body: bytes, pos: int, end: int, i: int) -> tuple[list, int]:
    nheaders, pos = _zigzag(body, pos)
    if nheaders < 0 or nheaders > end - pos:
        raise BatchError(2, f"record {i} claims {nheaders} headers")
    headers = []
    for _ in range(nheaders):
        name, pos = _blob(body, pos, end)
        hvalue, pos = _blob(body, pos, end)
        if name is None:
            raise BatchError(2, f"record {i} has a header with a null name")
        try:
            headers.append((name.decode("utf-8"), hvalue))
        except UnicodeDecodeError:
            raise BatchError(2, f"record {i} has a header name that is not UTF-8") from None
    return headers, pos


# -- encoding ------------------------------------------------------------------------------------

def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    write_varint(out, n)
    return bytes(out)


_SMALL = 4096
_SMALL_VARINTS = [_varint_bytes(n) for n in range(_SMALL)]  # lengths and deltas, made once


def encode_batch(base_offset: int, records: Sequence[tuple[int, int, bytes | None, list, bytes | None]]) -> bytes:
    """One uncompressed batch of ``(offset, timestamp, key, headers, value)`` records (offsets ascending).

    Each record is laid out as a list of byte strings joined once; varints below 4096 come from
    a table (lengths, offset deltas and most timestamp deltas), the rest are encoded.
    """
    base_ts = records[0][1]
    max_ts = max(r[1] for r in records)
    small = _SMALL_VARINTS

    def vi(n: int) -> bytes:
        return small[n] if 0 <= n < _SMALL else _varint_bytes(n)

    parts = []
    for offset, ts, key, headers, value in records:
        p = [b"\x00", vi(ts - base_ts), vi(offset - base_offset)]
        if key is None:
            p.append(b"\x01")  # zig-zag -1: null
        else:
            p += (vi(len(key)), key)
        if value is None:
            p.append(b"\x01")
        else:
            p += (vi(len(value)), value)
        if headers:
            p.append(vi(len(headers)))
            for name, hvalue in headers:
                raw = name.encode("utf-8")
                p += (vi(len(raw)), raw)
                if hvalue is None:
                    p.append(b"\x01")
                else:
                    p += (vi(len(hvalue)), hvalue)
        else:
            p.append(b"\x00")
        record = b"".join(p)
        parts += (vi(len(record)), record)
    return _framed(base_offset, records[-1][0] - base_offset, base_ts, max_ts, len(records), parts)


def _framed(base_offset: int, last_delta: int, base_ts: int, max_ts: int, count: int, parts: list) -> bytes:
    """The batch: its header (CRC-32C over everything from the attributes on), then ``parts``."""
    parts.insert(0, struct.pack(">hiqqqhii", 0, last_delta, base_ts, max_ts, -1, -1, -1, count))
    after_crc = b"".join(parts)
    head = struct.pack(">qiibI", base_offset, len(after_crc) + 9, 0, 2, crc32c(after_crc))
    return head + after_crc


def _varints(numbers) -> list[bytes]:
    """The zig-zag varints of ``numbers``: from the table when all fit, else one by one."""
    numbers = numbers if type(numbers) is list else list(numbers)
    if min(numbers) >= 0 and max(numbers) < _SMALL:
        return list(map(_SMALL_VARINTS.__getitem__, numbers))
    return list(map(_varint_bytes, numbers))


_NULL_KEY_RECORD = b"\x00%b%b\x01%b%b\x00"  # attributes, ts delta, offset delta, null key, value, no headers
_KEY_RECORD = b"\x00%b%b%b%b%b%b\x00"  # the same with a key's length and bytes
_HEAD = struct.Struct(">qiibI")  # base offset, batch length, leader epoch, magic, CRC-32C: 21 bytes
_AFTER_CRC = struct.Struct(">hiqqqhii")  # attributes .. record count: 40 bytes


def encode_plain_batch(offsets: Sequence[int], timestamps: list[int], keys: list[bytes] | None,
                       values: list[bytes]) -> bytearray:
    """:func:`encode_batch` for records without headers, with non-null values and keys that are all
    bytes (``keys``) or all null (``keys`` None), given column by column (offsets ascending).

    The records are laid out by C-level ``map``s over the columns, with no Python-level step per
    record while every varint is below 4096 (lengths, offset and timestamp deltas). The common
    cases cost less: contiguous offsets (a log that is not compacted) take their deltas as a slice
    of the table, equal timestamps (records appended in one batch) repeat one delta, and a record
    whose value and key are short enough has a length below 4096 without looking. The batch is
    joined once into a buffer whose header is then filled in (the CRC-32C over that buffer).
    """
    count, base_offset, base_ts = len(offsets), offsets[0], timestamps[0]
    small = _SMALL_VARINTS
    last_delta = offsets[-1] - base_offset
    if last_delta == count - 1 and count <= _SMALL:  # ascending and contiguous: deltas 0 .. count - 1
        offset_deltas = small[:count]
    else:
        offset_deltas = _varints(map(sub, offsets, repeat(base_offset)))
    min_ts, max_ts = min(timestamps), max(timestamps)
    if min_ts == max_ts:
        ts_deltas = repeat(b"\x00", count)
    elif min_ts >= base_ts and max_ts - base_ts < _SMALL:
        ts_deltas = list(map(small.__getitem__, map(sub, timestamps, repeat(base_ts))))
    else:
        ts_deltas = list(map(_varint_bytes, map(sub, timestamps, repeat(base_ts))))
    lengths = list(map(len, values))
    longest = max(lengths)
    columns = [ts_deltas, offset_deltas]
    if keys is None:
        template = _NULL_KEY_RECORD
    else:
        template = _KEY_RECORD
        key_lengths = list(map(len, keys))
        longest += max(key_lengths)
        columns += (_varints(key_lengths), keys)
    columns += (_varints(lengths), values)
    records = list(map(template.__mod__, zip(*columns)))
    # A record is its key and value plus at most 42 bytes: attributes, headers count and four varints.
    if longest < _SMALL - 42:
        record_lengths = list(map(small.__getitem__, map(len, records)))
    else:
        record_lengths = _varints(map(len, records))
    parts = [_EMPTY_HEAD, _AFTER_CRC.pack(0, last_delta, base_ts, max_ts, -1, -1, -1, count)]
    parts += chain.from_iterable(zip(record_lengths, records))
    batch = bytearray().join(parts)
    _HEAD.pack_into(batch, 0, base_offset, len(batch) - 12, 0, 2, crc32c(memoryview(batch)[_HEAD.size:]))
    return batch


_EMPTY_HEAD = bytes(_HEAD.size)
