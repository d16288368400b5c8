"""The bytes of one record line and of a batch (FORMAT.md, "One record line").

This module is the only one that knows the record line grammar. It encodes a batch of records into
the bytes of one ``write`` and decodes batches back, verifying the checksums:

- every line is framed by :mod:`logbroker.storage.framing`: the fixed 18-byte prefix
  ``{"crc":"xxxxxxxx",`` followed by the body; the crc is CRC-32 of the body;
- the first line of a batch of N >= 2 records carries ``"batch":{"count":N,"bytes":L,"crc":"…"}``
  covering the L bytes of the N-1 lines after it.

Decoding verifies two checksums per batch, whatever its size, so reads stay close to the speed of a
plain ``split`` + ``orjson.loads`` while never returning an unchecked byte.
"""

from __future__ import annotations

import math
import sys
from array import array
from itertools import groupby, islice, repeat
from operator import add, itemgetter, methodcaller
from typing import Any, Iterator, NamedTuple, Sequence

import orjson

from .consumer_record import Records
from .framing import LINE, PREFIX_HEAD, PREFIX_LEN, PREFIX_TAIL, check_framed, crc32
from ..errors import InvalidRecordError, RecordTooLargeError
from .record_bytes import MARK, canonical_json_values, decode_marked, encode_kafka, encode_kafka_key

__all__ = [
    "PendingRecord",
    "EncodedBatch",
    "has_non_finite",
    "line_size",
    "encode_records",
    "encode_values",
    "decode_batch",
    "BatchStatus",
    "PREFIX_LEN",
    "rebatch",
    "batch_raw_lines",
    "batch_max_timestamp",
    "parse_first_line",
    "TailGroup",
    "tail_template", "tails_max_timestamp",
    "encode_tail",
    "encode_tails",
    "TAIL_EXTRA",
]

_crc32 = crc32
_loads = orjson.loads


def dumps_kept(obj: Any) -> bytes:
    """``orjson.dumps`` for bytes that are kept: copied into a bytes object of their own size.

    orjson returns its output in a buffer allocated larger than the result. Buffered until their
    batch is written, a thousand of them grow glibc's heap by megabytes, and freeing the batch
    gives it back to the OS, so the next batch page-faults it in again: measured at 2-3 µs per
    record, against 80 ns for this copy (the producer's benchmark, 1,000-record batches).
    """
    return _KEEP % _orjson_dumps(obj)


_orjson_dumps = orjson.dumps
_KEEP = b"%b"


_MAX_TIMESTAMP = 1 << 63
_NULL_VALUE = b',"venc":"null"'


def check_timestamp(timestamp: Any) -> int:
    """A record timestamp: an integer count of milliseconds since the epoch, 0 to 2^63-1."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or timestamp != timestamp:
        raise InvalidRecordError(f"a record timestamp must be milliseconds since the epoch (an integer), "
                                 f"not {timestamp!r}")
    if isinstance(timestamp, float) and not timestamp.is_integer():
        raise InvalidRecordError(f"a record timestamp must be a whole number of milliseconds, not {timestamp!r}")
    if not 0 <= timestamp < _MAX_TIMESTAMP:
        raise InvalidRecordError(f"record timestamp {timestamp!r} is out of range (0 to 2^63-1 ms)")
    return int(timestamp)


class PendingRecord(tuple):
    """A record waiting to be appended, already encoded (so errors surface at ``send()``).

    A tuple ``(timestamp, key_json, headers_json, value_json, size)``: the append path unpacks it
    without attribute lookups. ``size`` over-estimates the encoded line, for batch splitting.
    """

    __slots__ = ()

    def __new__(cls, timestamp: int, key: str | None, headers: dict | None, value: Any,
                value_json: bytes | None = None) -> "PendingRecord":
        if type(timestamp) is not int or not 0 <= timestamp < _MAX_TIMESTAMP:
            timestamp = check_timestamp(timestamp)
        key_json = encode_key(key)
        headers_json = encode_headers(headers)
        if value is None and value_json is None:
            # A null value (Kafka's: value=None), what compaction reads as a tombstone (FORMAT.md,
            # "Tombstones"); the JSON null is sent with value_json=b"null".
            headers_json += _NULL_VALUE
            value_json = b"null"
        elif value_json is None:
            try:
                value_json = dumps_kept(value)
            except (TypeError, orjson.JSONEncodeError) as exc:
                raise InvalidRecordError(f"record value is not storable as JSON: {exc}") from exc
            # find, not `in`: bytes.__contains__ first tries its operand as an int, raising and
            # clearing a TypeError each time (thousands of instructions per record).
            if value_json.find(b"null") >= 0 and has_non_finite(value):
                raise InvalidRecordError("record value contains NaN or Infinity, which JSON cannot represent")
        return tuple.__new__(cls, (timestamp, key_json, headers_json, value_json,
                                   len(key_json) + len(headers_json) + len(value_json) + 120))

    @classmethod
    def from_kafka(cls, timestamp: int, key: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None,
                   value: bytes | None) -> "PendingRecord":
        """A record from a Kafka client: bytes key and value, ordered (name, bytes) headers, kept
        byte for byte (FORMAT.md, "Bytes keys, values and headers"; :mod:`logbroker.storage.record_bytes`)."""
        if type(timestamp) is not int or not 0 <= timestamp < _MAX_TIMESTAMP:
            timestamp = check_timestamp(timestamp)
        key_json, extras_json, value_json = encode_kafka(key, headers, value)
        return tuple.__new__(cls, (timestamp, key_json, extras_json, value_json,
                                   len(key_json) + len(extras_json) + len(value_json) + 120))

    @classmethod
    def from_kafka_records(cls, records: Sequence[tuple[int, bytes | None, Sequence, bytes | None]]) -> list["PendingRecord"]:
        """:meth:`from_kafka` of each ``(timestamp, key, headers, value)`` of a Kafka batch, in order.

        The common batch (no headers, no null value, UTF-8 or null keys, every value canonical JSON)
        is tested once as a whole (:func:`~logbroker.storage.record_bytes.canonical_json_values`) and its
        records are made by C-level ``map``s; any other batch record by record.
        """
        if not records:
            return []
        timestamps, keys, headers, values = zip(*records)
        values = list(values)
        if (any(headers) or None in values or set(map(type, timestamps)) != {int} or min(timestamps) < 0
                or max(timestamps) >= _MAX_TIMESTAMP or not canonical_json_values(values)):
            return [cls.from_kafka(*r) for r in records]
        if keys.count(None) == len(keys):
            key_jsons = repeat(b"null")
            sizes = map((len(b"null") + 120).__add__, map(len, values))
        else:
            encoded = list(map(encode_kafka_key, keys))
            if any(extras for _, extras in encoded):
                return [cls.from_kafka(*r) for r in records]
            key_jsons = [k for k, _ in encoded]
            sizes = map((120).__add__, map(add, map(len, key_jsons), map(len, values)))
        return list(map(tuple.__new__, repeat(cls), zip(timestamps, key_jsons, repeat(b""), values, sizes)))

    timestamp = property(itemgetter(0))
    key_json = property(itemgetter(1))
    headers_json = property(itemgetter(2))
    value_json = property(itemgetter(3))
    size = property(itemgetter(4))


def line_size(record: PendingRecord, offset: int = 0) -> int:
    """The exact length in bytes of ``record``'s line (LF included) written alone at ``offset``:
    what ``max.message.bytes`` is compared with (a larger offset adds its extra digits)."""
    ts, key_json, headers_json, value_json, _ = record
    return len(_LINE % (0, _BODY % (offset, ts, key_json, headers_json, value_json)))


def encode_key(key: str | None) -> bytes:
    """The JSON of a record key (a str, or None: ``null``); refuses anything else."""
    if key is None:
        return b"null"
    if type(key) is str:
        return _encode(key, "key")
    raise InvalidRecordError(f"a record key must be a string or None, not {type(key).__name__}")


def encode_headers(headers: dict | None) -> bytes:
    """The ``,"headers":{...}`` part of a line (empty without headers); refuses what is not str to str."""
    if not headers:
        return b""
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in headers.items()
    ):
        raise InvalidRecordError("record headers must be a dict of str to str")
    return b',"headers":' + _encode(headers, "headers")


def _encode(obj: Any, what: str) -> bytes:
    try:
        return dumps_kept(obj)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRecordError(f"record {what} is not storable as JSON: {exc}") from exc


def has_non_finite(value: Any) -> bool:
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


class EncodedBatch(NamedTuple):
    """One batch encoded for the log, ready for one ``writev``."""

    #: its bytes in one or two parts (two spare copying a batch's lines behind its first line)
    parts: tuple[bytes, ...]
    #: the length of ``parts`` together
    nbytes: int
    #: how many records (lines) it holds
    count: int
    #: the timestamp of its first record
    first_timestamp: int
    #: the largest timestamp of its records
    max_timestamp: int

_NO_LIMIT = 1 << 62


def encode_records(base_offset: int, records: Sequence[PendingRecord],
                   max_bytes: int = _NO_LIMIT) -> list[EncodedBatch]:
    """``records`` as batches at offsets ``base_offset`` onwards, each at most ``max_bytes`` long.

    Raises :class:`RecordTooLargeError` (nothing encoded) when one record's line alone is longer.
    The lines are built column-wise by C-level ``map``s, with no Python-level step per record. When
    the records share their key and headers and come in runs of one timestamp (records sent within
    the same millisecond), each run's timestamp, key and headers are formatted once into a template,
    leaving the offset and the value to each line.
    """
    n = len(records)
    timestamps, keys, headers, values, _ = zip(*records)
    key0, headers0 = keys[0], headers[0]
    runs = None
    if keys.count(key0) == n and headers.count(headers0) == n:
        # Runs of records sent within the same millisecond: one template each, when they are long.
        runs = [(ts, len(list(run))) for ts, run in groupby(timestamps)]
        if len(runs) * 8 > n:
            runs = None
    if runs is None:
        bodies = list(map(_BODY.__mod__, zip(range(base_offset, base_offset + n), timestamps, keys, headers, values)))
    else:
        bodies, offset, values_json = [], base_offset, iter(values)
        for ts, count in runs:
            bodies += _bodies(_template(ts, key0, headers0), offset, values_json, count)
            offset += count
    return _into_batches(base_offset, bodies, timestamps, keys, headers, max_bytes)


def encode_values(base_offset: int, values: Sequence[Any], timestamp: int, key_json: bytes, headers_json: bytes,
                  max_bytes: int = _NO_LIMIT) -> list[EncodedBatch]:
    """Values not encoded yet, sharing one timestamp, key and headers (``Producer.send_batch``).

    Each value is serialized straight into its line: no intermediate object is kept per record.
    Raises :class:`InvalidRecordError` naming the first value JSON cannot hold (NaN and Infinity
    included) and :class:`RecordTooLargeError` as :func:`encode_records` does; nothing is encoded then.
    """
    n = len(values)
    template = _template(timestamp, key_json, headers_json)
    try:
        bodies = _bodies(template, base_offset, map(_orjson_dumps, values), n)
    except (TypeError, orjson.JSONEncodeError):
        for i, value in enumerate(values):
            try:
                _orjson_dumps(value)
            except (TypeError, orjson.JSONEncodeError) as exc:
                raise InvalidRecordError(f"record value at index {i} is not storable as JSON: {exc}") from exc
        raise
    batches = _into_batches(base_offset, bodies, (timestamp,) * n, (key_json,) * n, (headers_json,) * n, max_bytes)
    # orjson writes NaN and Infinity as null: only a line with more nulls than its template can hold
    # one (a crc, an offset or the batch field never spells null).
    expected = template.count(b"null")
    if sum(part.count(b"null") for batch in batches for part in batch.parts) > n * expected:
        for i, body in enumerate(bodies):
            if body.count(b"null") > expected and has_non_finite(values[i]):
                raise InvalidRecordError(f"record value at index {i} contains NaN or Infinity, "
                                         f"which JSON cannot represent")
    return batches


def _bodies(template: bytes, base_offset: int, values_json: Iterator[bytes], n: int) -> list[bytes]:
    """The bodies of ``n`` lines from ``template`` (see :func:`_template`), at consecutive offsets.

    An offset is written as its digits above the last three, set once per thousand offsets into
    the template, and its last three from a table: no int is formatted per record (measured:
    ~430 instructions per record less than ``%d``).
    """
    bodies: list[bytes] = []
    offset, end = base_offset, base_offset + n
    while offset < end:
        high, low = divmod(offset, 1000)
        run = min(1000 - low, end - offset)  # offsets sharing their digits above the last three
        if high:
            tmpl, digits = template.replace(b"%d", b"%d" % high + b"%b", 1), _LAST3[low:low + run]
        else:
            tmpl, digits = template.replace(b"%d", b"%b", 1), _UNDER_1000[low:low + run]
        bodies += map(tmpl.__mod__, zip(digits, values_json))
        offset += run
    return bodies


_LAST3 = [b"%03d" % i for i in range(1000)]
_UNDER_1000 = [b"%d" % i for i in range(1000)]


def _template(timestamp: int, key_json: bytes, headers_json: bytes) -> bytes:
    """``_BODY`` with the timestamp, key and headers filled in; the offset and value left to format."""
    return _BODY_TEMPLATE % (timestamp, key_json.replace(b"%", b"%%"), headers_json.replace(b"%", b"%%"))


def _into_batches(base_offset: int, bodies: list[bytes], timestamps: Sequence[int], keys: Sequence[bytes],
                  headers: Sequence[bytes], max_bytes: int) -> list[EncodedBatch]:
    """Lines from ``bodies``, cut into batches of at most ``max_bytes``; the first line of each
    batch of two or more gets its ``batch`` field (FORMAT.md).

    The lines after a batch's first are never made one by one: their crcs are written as hex for
    the whole batch at once, and one ``join`` lays out prefixes, crcs and bodies, copying each body
    once (measured: 1,450 fewer instructions per record than a format per line and a join).
    """
    crcs = list(map(_crc32, bodies))
    n = len(bodies)
    total = sum(map(len, bodies)) + _LINE_EXTRA * n
    if n > 1 and total + _BATCH_FIELD_MAX <= max_bytes:
        bounds = [(0, n)]  # the usual case
    else:
        bounds = _bounds([len(b) + _LINE_EXTRA for b in bodies], max_bytes)
    hexes = _hex8(crcs) if n > 1 else []
    batches = []
    for a, b in bounds:
        if b - a == 1:
            line = _LINE % (crcs[a], bodies[a])
            batches.append(EncodedBatch((line,), len(line), 1, timestamps[a], timestamps[a]))
            continue
        tail = _join_lines(hexes[a + 1:b], bodies[a + 1:b])
        body = bodies[a]
        cut = len(_HEAD % (base_offset + a, timestamps[a], keys[a], headers[a]))
        first = body[:cut] + _BATCH_FIELD % (b - a, len(tail), _crc32(tail)) + body[cut:]
        first_line = _LINE % (_crc32(first), first)
        batches.append(EncodedBatch((first_line, tail), len(first_line) + len(tail), b - a, timestamps[a],
                                    max(islice(timestamps, a, b))))
    return batches


def _hex8(crcs: list[int]) -> list[bytes]:
    """Each crc as its 8 lowercase hex digits, made for all of them at once (no format per crc)."""
    if _U32 is None:
        return [b"%08x" % crc for crc in crcs]
    packed = array(_U32, crcs)
    if sys.byteorder == "little":
        packed.byteswap()  # big-endian, so hex() writes the most significant digit first
    return packed.tobytes().hex(" ", 4).encode("ascii").split()


_U32 = next((code for code in "IL" if array(code).itemsize == 4), None)  # an array type of 4-byte items


def _join_lines(hexes: list[bytes], bodies: list[bytes]) -> bytes:
    """The lines ``{"crc":"<hex>",<body>`` LF, joined in one copy of every body."""
    n = len(bodies)
    pieces = [PREFIX_TAIL] * (4 * n + 1)  # per line: prefix, hex digits, '",', body; then LF
    pieces[0:4 * n:4] = repeat(_LF_PREFIX_HEAD, n)
    pieces[0] = PREFIX_HEAD
    pieces[1::4] = hexes
    pieces[3::4] = bodies
    pieces[-1] = b"\n"
    return b"".join(pieces)


def _bounds(sizes: list[int], max_bytes: int) -> list[tuple[int, int]]:
    """[start, end) runs of lines whose batch stays within ``max_bytes``."""
    bounds = []
    start = total = 0
    for i, size in enumerate(sizes):
        if size > max_bytes:
            raise RecordTooLargeError(f"record {i} of the batch is {size} bytes as a line, larger than "
                                      f"max.message.bytes={max_bytes}")
        if i > start and total + size + _BATCH_FIELD_MAX > max_bytes:
            bounds.append((start, i))
            start, total = i, 0
        total += size
    bounds.append((start, len(sizes)))
    return bounds


_HEAD = b'"offset":%d,"timestamp":%d,"key":%b%b'
_BODY = _HEAD + b',"value":%b}'
# _BODY with the timestamp, key and headers filled in by _template; the offset and value left.
_BODY_TEMPLATE = b'"offset":%%d,"timestamp":%d,"key":%b%b,"value":%%b}'
_BATCH_FIELD = b',"batch":{"count":%d,"bytes":%d,"crc":"%08x"}'
_BATCH_FIELD_MAX = len(_BATCH_FIELD % (_NO_LIMIT, _NO_LIMIT, 0))  # what the field adds at most
_LINE = LINE
_LINE_EXTRA = PREFIX_LEN + 1  # what a line adds to its body: the crc prefix and the LF
_LF_PREFIX_HEAD = b"\n" + PREFIX_HEAD


# -- tails: a record encoded ahead of its offset (the producer) -----------------------------------
#
# A record's body is ``"offset":N`` followed by its *tail* ``,"timestamp":T,"key":K[H],"value":V}``.
# Everything in the tail is known when the record is sent, so the producer encodes it in the
# caller's thread; only the offset, the crcs and the batch field wait for the append.

_TAIL = b',"timestamp":%d,"key":%b%b,"value":%b}'
_TAIL_VALUE_EXTRA = len(b',"value":') + 1  # what follows the head in a tail besides the value: the mark, "}"
_OFFSET_BODY = b'"offset":%d%b'
_OFFSET_KEY = b'"offset":'
#: What a line adds to its tail at most: the crc prefix, ``"offset":`` and 20 digits, the LF.
TAIL_EXTRA = PREFIX_LEN + len(b'"offset":') + 20 + 1


def tail_template(timestamp: int) -> bytes:
    """The tail of a record with no key and no headers sent at ``timestamp``, with ``%b`` left for
    the value's JSON: one ``%`` per record then makes its tail (and copies orjson's output into a
    bytes object of its own size, see :func:`dumps_kept`)."""
    return b',"timestamp":%d,"key":null,"value":%%b}' % timestamp


_TAIL_TS = len(b',"timestamp":')


def tails_max_timestamp(tails: Sequence[bytes]) -> int:
    """The newest timestamp among ``tails`` (each starts with its ``,"timestamp":``), read from
    the bytes: exact where a running maximum kept by several threads without a lock may not be."""
    return max([int(t[_TAIL_TS:t.index(b",", _TAIL_TS)]) for t in tails])


def encode_tail(record: PendingRecord) -> tuple[bytes, int]:
    """The tail of ``record``, and the length of its head (where a ``batch`` field would go)."""
    ts, key_json, headers_json, value_json, _ = record
    tail = _TAIL % (ts, key_json, headers_json, value_json)
    return tail, len(tail) - len(value_json) - _TAIL_VALUE_EXTRA


class TailGroup(NamedTuple):
    """The tails of one producer batch, in order, with what encoding them needs besides.

    ``cuts`` maps the index of a tail whose head holds headers to its head length; any other
    tail's head ends at its first ``,"value":`` (a key is a JSON string, which cannot hold it).
    """

    tails: Sequence[bytes]
    cuts: dict[int, int] | None
    first_timestamp: int
    max_timestamp: int


def encode_tails(base_offset: int, group: TailGroup, max_bytes: int = _NO_LIMIT) -> list[EncodedBatch]:
    """``group``'s tails as a batch at offsets ``base_offset`` onwards (more than one when it
    would pass ``max_bytes``; the producer sizes its batches so that this is rare).

    Per record only the offset is formatted into the body (see :func:`_bodies`) and its crc
    computed; the crcs of the lines after the first are written as hex for the whole batch at
    once (see :func:`_into_batches`). Raises :class:`RecordTooLargeError` when a line alone is
    longer than ``max_bytes``.
    """
    tails = group.tails
    n = len(tails)
    if n > 1 and _tails_size(base_offset, tails) + _BATCH_FIELD_MAX <= max_bytes:
        return [_tails_batch(base_offset, group)]  # the usual case
    bodies = _bodies(_OFFSET_BODY, base_offset, iter(tails), n)
    total = sum(map(len, bodies)) + _LINE_EXTRA * n
    if n == 1 or total + _BATCH_FIELD_MAX <= max_bytes:
        bounds = [(0, n)]
        stamps = [(group.first_timestamp, group.max_timestamp)]
    else:
        bounds = _bounds([len(b) + _LINE_EXTRA for b in bodies], max_bytes)
        stamps = [_tail_timestamps(tails[a:b]) for a, b in bounds]
    crcs = list(map(_crc32, bodies))
    hexes = _hex8(crcs) if n > 1 else []
    batches = []
    for (a, b), (first_ts, max_ts) in zip(bounds, stamps):
        if b - a == 1:
            line = _LINE % (crcs[a], bodies[a])
            batches.append(EncodedBatch((line,), len(line), 1, first_ts, max_ts))
            continue
        tail = _join_lines(hexes[a + 1:b], bodies[a + 1:b])
        cut = (group.cuts or {}).get(a)
        if cut is None:
            cut = tails[a].find(_VALUE_MARK)
        cut += len(bodies[a]) - len(tails[a])  # the offset's part of the body
        body = bodies[a]
        first = body[:cut] + _BATCH_FIELD % (b - a, len(tail), _crc32(tail)) + body[cut:]
        first_line = _LINE % (_crc32(first), first)
        batches.append(EncodedBatch((first_line, tail), len(first_line) + len(tail), b - a, first_ts, max_ts))
    return batches


def _tails_size(base_offset: int, tails: Sequence[bytes]) -> int:
    """The bytes of ``tails`` as lines at offsets ``base_offset`` onwards, before any batch field."""
    n = len(tails)
    digits = len(b"%d" % (base_offset + n - 1)) * n
    if base_offset < 10 ** (digits // n - 1):  # the offsets do not all have as many digits
        digits = sum(len(b"%d" % offset) for offset in range(base_offset, base_offset + n))
    return sum(map(len, tails)) + n * (_LINE_EXTRA + len(_OFFSET_KEY)) + digits


def _tails_batch(base_offset: int, group: TailGroup) -> EncodedBatch:
    """:func:`encode_tails` of two or more records that make one batch, without a body per record.

    A line after the first is joined from pieces: its prefix, the hex of its crc, ``",`` with
    ``"offset":`` and the offset's digits above the last three (one piece shared by a thousand
    offsets), the last three digits (from a table), and the tail. Its crc continues the crc of
    those shared digits (``crc32(tail, start)``) instead of running over a body formatted for it:
    no format, allocation or copy of ~300 bytes per record (measured: ~400 instructions less per
    record than :func:`_bodies`).
    """
    tails = group.tails
    n = len(tails)
    rest = tails[1:]
    mids: list[bytes] = []
    lows: list[bytes] = []
    starts: list[int] = []
    offset, end = base_offset + 1, base_offset + n
    while offset < end:
        high, low = divmod(offset, 1000)
        run = min(1000 - low, end - offset)  # offsets sharing their digits above the last three
        if high:
            head, digits = _OFFSET_KEY + b"%d" % high, _LAST3[low:low + run]
        else:
            head, digits = _OFFSET_KEY, _UNDER_1000[low:low + run]
        mids += repeat(PREFIX_TAIL + head, run)
        lows += digits
        starts += map(_crc32, digits, repeat(_crc32(head), run))
        offset += run
    m = n - 1
    pieces = [b"\n"] * (5 * m + 1)  # per line: prefix, hex digits, '",' and offset head, last digits, tail; then LF
    pieces[0:5 * m:5] = repeat(_LF_PREFIX_HEAD, m)
    pieces[0] = PREFIX_HEAD
    pieces[1::5] = _hex8(list(map(_crc32, rest, starts)))
    pieces[2::5] = mids
    pieces[3::5] = lows
    pieces[4::5] = rest
    lines = b"".join(pieces)
    first_tail = tails[0]
    cut = (group.cuts or {}).get(0)
    if cut is None:
        cut = first_tail.find(_VALUE_MARK)
    first = b"%b%d%b%b%b" % (_OFFSET_KEY, base_offset, first_tail[:cut], _BATCH_FIELD % (n, len(lines), _crc32(lines)),
                            first_tail[cut:])
    first_line = _LINE % (_crc32(first), first)
    return EncodedBatch((first_line, lines), len(first_line) + len(lines), n, group.first_timestamp,
                        group.max_timestamp)


def _tail_timestamps(tails: Sequence[bytes]) -> tuple[int, int]:
    """The first and the largest timestamp of ``tails`` (each starts ``,"timestamp":T,``)."""
    stamps = [int(t[13:t.index(b",", 13)]) for t in tails]
    return stamps[0], max(stamps)


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
    if buf[pos:pos + 8] != PREFIX_HEAD or buf[pos + 16:pos + 18] != PREFIX_TAIL:
        raise BadBatch(BatchStatus.INVALID, "line does not start with a crc prefix")
    # Compare the hex text itself: int(..., 16) would also accept "A" for "a" or " " for "0",
    # letting a flipped bit in the crc field pass unnoticed.
    view = memoryview(buf)  # checksums read the bytes in place, without copying them
    if b"%08x" % _crc32(view[pos + PREFIX_LEN:nl]) != buf[pos + 8:pos + 16]:
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
    if _crc32(view[nl + 1:end]) != bcrc or buf[end - 1] != 10:
        raise BadBatch(BatchStatus.INVALID, "batch checksum mismatch")
    return first, nl + 1, end


def batch_records(buf: bytes, start: int, first: dict, rest_start: int, end: int, topic: str,
                  partition: int, min_offset: int, raw: bool = False,
                  max_records: int | None = None) -> Records:
    """The records of one verified batch (``decode_batch``) from ``min_offset``, at most ``max_records``."""
    return Records(topic, partition, *batch_lines(buf, start, first, rest_start, end, min_offset, raw, max_records))


def batch_lines(buf: bytes, start: int, first: dict, rest_start: int, end: int, min_offset: int,
                raw: bool = False, max_records: int | None = None) -> tuple[list[dict], list[bytes] | None]:
    """:func:`_batch_lines`, with the fields of Kafka's bytes (``kenc``, ``venc``) decoded for native
    readers (:func:`~logbroker.storage.record_bytes.decode_marked`); one ``find`` per batch when there are none."""
    lines, values = _batch_lines(buf, start, first, rest_start, end, min_offset, raw, max_records)
    if lines and buf.find(MARK, start, end) >= 0:
        decode_marked(lines, values)
    return lines, values


def _batch_lines(buf: bytes, start: int, first: dict, rest_start: int, end: int, min_offset: int,
                 raw: bool = False, max_records: int | None = None) -> tuple[list[dict], list[bytes] | None]:
    """The parsed lines of one verified batch (``decode_batch``) from ``min_offset``, at most
    ``max_records`` of them, and with ``raw`` the JSON bytes of their values (else None).

    Only the lines asked for are parsed (a seek into a big batch parses one line, not a thousand);
    the batch checksum already covered all of them. ``raw`` leaves each value as its JSON bytes.
    The lines are parsed with one ``orjson.loads`` call: LF only ends lines, so the lines joined by
    commas are a JSON array.
    """
    count = first["batch"]["count"] if end > rest_start else 1
    skip = min_offset - first["offset"]
    if skip < 0:
        skip = 0
    take = count - skip
    if max_records is not None and max_records < take:
        take = max_records
    if take <= 0:
        return [], [] if raw else None
    if raw:
        return _raw_lines(buf[start:end - 1].split(b"\n"), count, skip, take)
    if count == 1:
        return [first], None
    if skip == 0 and take == count:
        # Two copies: the lines wrapped straight from the buffer, then their LFs turned into commas.
        array = b"".join((b"[", memoryview(buf)[rest_start:end - 1], b"]")).replace(b"\n", b",")
        expected = count - 1
    else:
        lines = buf[rest_start:end - 1].split(b"\n")
        if len(lines) != count - 1:
            raise BadBatch(BatchStatus.INVALID, "batch holds a different number of lines than its header says")
        array = _ARRAY % b",".join(lines[max(skip - 1, 0):skip - 1 + take])
        expected = take - 1 if skip == 0 else take
    try:
        dicts = _loads(array) if expected else []
    except orjson.JSONDecodeError:
        raise BadBatch(BatchStatus.INVALID, "batch lines are not JSON objects") from None
    if len(dicts) != expected:
        raise BadBatch(BatchStatus.INVALID, "batch holds a different number of lines than its header says")
    if skip == 0:
        dicts.insert(0, first)
    return dicts, None


_VALUE_MARK = b',"value":'
_ARRAY = b"[%b]"  # one copy to wrap lines joined by commas (two concatenations copy twice)


_split_value = methodcaller("partition", _VALUE_MARK)
_without_closing_brace = itemgetter(slice(None, -1))


def _raw_lines(lines: list[bytes], count: int, skip: int, take: int) -> tuple[list[dict], list[bytes]]:
    """Line heads and the JSON bytes of their values, cut from each line without parsing the value.

    Everything before ``,"value":`` (the line's head) is parsed in one ``orjson.loads`` for the
    batch. That mark cannot occur inside the head's strings (JSON escapes their quotes) and the
    batch object has a fixed shape; only a header could hold it, and then the cut heads are not
    valid JSON (an object is left open), so the batch falls back to parsing each line whole.
    """
    if len(lines) != count:
        raise BadBatch(BatchStatus.INVALID, "batch holds a different number of lines than its header says")
    lines = lines[skip:skip + take]
    try:
        heads, _, values = zip(*map(_split_value, lines))
        dicts = _loads(b"[%b}]" % b"},".join(heads))
        if not all(values):
            raise ValueError("a line without a value")
        values = list(map(_without_closing_brace, values))  # the value: what the line holds before its final }
    except (orjson.JSONDecodeError, ValueError):
        dicts = [_loads(line) for line in lines]
        values = [_orjson_dumps(d["value"]) for d in dicts]
    return dicts, values


def parse_line(line: bytes) -> dict:
    """Parse and verify one line on its own (inspect and tests); raises ValueError when invalid."""
    check_framed(line)
    return _loads(line)


def parse_first_line(buf: bytes) -> dict | None:
    """The first line of ``buf``, parsed and verified (:func:`parse_line`); None when ``buf``
    ends before the line does. Raises ValueError when the line is invalid."""
    end = buf.find(b"\n")
    if end < 0:
        return None
    return parse_line(buf[:end])


def batch_max_timestamp(buf: bytes, first: dict, rest_start: int, end: int) -> int:
    """The largest timestamp of one verified batch (``decode_batch``), without parsing its values:
    a timestamp comes before the key, the headers and the value in every line (FORMAT.md)."""
    ts = first["timestamp"]
    i = rest_start
    while i < end:
        j = buf.index(_TIMESTAMP_MARK, i) + len(_TIMESTAMP_MARK)
        k = buf.index(b",", j)
        t = int(buf[j:k])
        if t > ts:
            ts = t
        i = buf.index(b"\n", k) + 1
    return ts


_TIMESTAMP_MARK = b'"timestamp":'


# -- rewriting batches (the cleaner) -----------------------------------------------------------

_BATCH_MARK = b',"batch":{"count":'


def batch_raw_lines(buf: bytes, start: int, end: int) -> list[bytes]:
    """The lines of one verified batch (``decode_batch``), each without its LF, bytes untouched."""
    return buf[start:end - 1].split(b"\n")


def _value_field_start(body: bytes) -> int:
    """Where the line body's own ``,"value":`` field starts.

    The mark can also occur before it, inside a headers object whose second name is ``value``,
    and after it, inside the value. The line's own mark is the first occurrence that closes the
    head as a JSON object: a cut inside the headers object leaves that object open, and every
    occurrence inside the value comes later.
    """
    cut = body.find(_VALUE_MARK)
    if body.find(_VALUE_MARK, cut + 1) < 0:
        return cut  # the common case: the mark occurs once
    while cut >= 0:
        try:
            _loads(b"{%b}" % body[:cut])  # the body follows the prefix's comma: no opening brace
            return cut
        except orjson.JSONDecodeError:
            cut = body.find(_VALUE_MARK, cut + 1)
    raise ValueError("a record line without a value field")


def rebatch(lines: Sequence[bytes], was_first: bool) -> bytes:
    """One batch made of ``lines``: whole lines of records with consecutive offsets, in order, taken
    from one batch (FORMAT.md, "Compacted logs").

    Only the first line changes, and only when the framing does: ``was_first`` says it carried the
    old batch's ``batch`` field, which is dropped; a new one is added when two or more lines
    remain; its line crc is then recomputed. Every other line is kept byte for byte (its crc
    covers nothing that moved). The ``batch`` field, when present, is the first occurrence of its
    mark in a line: it precedes the value, and no string before it can hold an unescaped quote.
    """
    first = lines[0]
    body = first[PREFIX_LEN:]
    if was_first:
        cut = body.find(_BATCH_MARK)
        close = body.index(b"}", cut + len(_BATCH_MARK))
        body = body[:cut] + body[close + 1:]
    if len(lines) > 1:
        tail = b"".join(line + b"\n" for line in lines[1:])
        cut = _value_field_start(body)
        body = body[:cut] + _BATCH_FIELD % (len(lines), len(tail), _crc32(tail)) + body[cut:]
        return _LINE % (_crc32(body), body) + tail
    if was_first:
        return _LINE % (_crc32(body), body)
    return first + b"\n"
