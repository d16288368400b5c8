"""Publishing JSON lines from a stream (what ``logbroker publish`` and kafka-console-producer do).

Every line is one record. A line that is not valid JSON, holds a number JSON readers cannot keep
exactly, or is larger than ``max.message.bytes`` is reported with its line number and skipped; the
valid lines are still published. An empty line is skipped silently, as Kafka's console producer
does. Memory stays bounded whatever the input: a line over the limit is dropped as it is read,
never held whole.

When a line is visible, and when it is durable: each line goes to the producer as soon as it is
read, and its sender thread appends it within ``linger.ms`` (5 ms; at once when no write is in
progress). Under ``fsync=always`` (the default) a line is visible to consumers only once it is
written *and* fsynced, so a visible line is a durable one; under ``interval`` it becomes visible
and durable at the next sync (at most ``flush.ms`` later); under ``never`` it is visible when
written and durable when the OS writes it back.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from operator import add
from typing import BinaryIO, Callable, Iterator

import orjson

from ..storage.config import DEFAULT_MAX_BLOCK_MS
from ..errors import LogBrokerError, TopicDeletedError, UnknownTopicError
from ..clients.producer import Producer, SentRun
from ..storage.record import encode_headers, encode_key
from ..storage.topic import Topic

__all__ = ["publish_lines", "PublishSummary", "iter_line_chunks", "split_key"]

_LONG_DIGITS = re.compile(rb"\d{19,}")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(slots=True)
class PublishSummary:
    """What a publish did, true on every exit path (finished, Ctrl+C, a write failure, any error).

    ``published`` counts only acknowledged records (under fsync=always: written and fsynced);
    ``per_partition`` and ``last_offsets`` say where they are, so a rerun can skip exactly the
    lines already published. ``failed`` counts lines refused (not JSON, too large, ...);
    ``not_acknowledged`` valid lines whose append failed (``error`` is the first such failure); ``skipped`` empty
    lines (as Kafka's console producer, they are not records and not errors).
    """

    published: int = 0
    failed: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    created: bool = False
    partitions: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)
    not_acknowledged: int = 0
    skipped: int = 0
    lines_read: int = 0
    interrupted: bool = False
    error: BaseException | None = None  # the first failed append (publish_lines raises it)


#: Bytes asked of the input per read: a file or a fast pipe fills them (the bulk path); a slow
#: pipe or a terminal returns what it has, often one line, which is sent at once (the live path).
CHUNK = 1 << 20


def iter_line_chunks(stream: BinaryIO, limit: int,
                     read: Callable[[int], bytes] | None = None) -> Iterator[tuple[int, list[bytes | None]]]:
    """Yield the complete lines of each read as ``(number of the first, lines)``; None in place of
    a line longer than ``limit`` bytes, which is dropped as it is read, never held whole.

    Reads with ``stream.read1`` (or ``read``, a function like it): one read of the underlying file
    returning what it has, up to CHUNK, without waiting for more: a large read from a file,
    whatever has arrived from a pipe or a terminal."""
    if read is None:
        read = stream.read1 if hasattr(stream, "read1") else stream.read
    number, partial, too_long = 1, b"", False
    cap = limit + 1  # a line of limit bytes may carry a CR
    while True:
        data = read(CHUNK)
        if not data:
            break
        lines: list = data.split(b"\n")
        if partial:
            lines[0] = partial + lines[0]
        partial = lines.pop()
        if lines:
            if b"\r" in data:
                lines = [line.rstrip(b"\r") for line in lines]
            if too_long:
                lines[0], too_long = None, False
            if len(data) > cap:  # else no line can be too long
                lines = [None if line is not None and len(line) > cap else line for line in lines]
            yield number, lines
            number += len(lines)
        if len(partial) > cap:  # longer than any acceptable line: drop what is held of it
            partial, too_long = b"", True
    if partial or too_long:
        yield number, [None if too_long else partial.rstrip(b"\r")]


class _IntTooLarge(ValueError):
    pass


def _check_ints(line: bytes) -> None:
    # orjson reads integers past 64 bits as floats, silently losing digits; refuse them instead.
    def parse_int(text: str) -> int:
        # Digits are counted first: Python refuses int() of more than 4300 digits with its own error.
        if len(text.lstrip("-")) > 19 or not _INT64[0] <= int(text) <= _INT64[1]:
            raise _IntTooLarge(f"integer {text[:30]}{'...' if len(text) > 30 else ''} does not fit in 64 bits")
        return int(text)
    try:
        json.loads(line, parse_int=parse_int)
    except _IntTooLarge:
        raise
    except (ValueError, RecursionError):
        pass  # not JSON to the json module either: orjson's verdict stands


#: orjson.dumps refuses values nested deeper than this, so they could never be stored; and
#: orjson.loads crashes the whole process (SIGSEGV) on a few hundred thousand levels, which fit in
#: one 1 MiB line. The depth is therefore checked before parsing.
MAX_DEPTH = 255
_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')


def _check_depth(line: bytes) -> None:
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return
    depth, in_string, skip = 0, False, -1
    for m in _STRUCTURAL.finditer(line):
        pos = m.start()
        if pos == skip:
            continue
        c = line[pos]
        if in_string:
            if c == 0x5C:  # backslash: the next byte is escaped
                skip = pos + 1
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels (at byte {pos + 1})")
        elif c in (0x5D, 0x7D):
            depth -= 1


def parse_value(line: bytes) -> object:
    """The JSON value of one input line; ValueError with a reason when it is not acceptable."""
    if not line.strip():
        raise ValueError("empty line")
    _check_depth(line)
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(_why_invalid(line, exc)) from None
    if line.translate(_DIGITS_AS_ZEROS).find(_NINETEEN_ZEROS) >= 0:  # = _LONG_DIGITS.search, 10x faster
        _check_ints(line)
    return value


def acceptable_values(lines: list[bytes | None], max_len: int) -> list[bytes] | None:
    """The values of ``lines`` (each stripped, stored as given) when :func:`parse_value` accepts every
    one of them and none is longer than ``max_len``: the same checks, each made once for the whole
    list or by C-level ``map``s, with no Python-level step per line. None when a line is empty,
    too long, too deep, not JSON or holds an integer past 64 bits: the caller then goes line by
    line, which names it (nothing of the list is sent before that)."""
    if not lines or None in lines:
        return None
    values = list(map(bytes.strip, lines))
    if b"" in values or max(map(len, values)) > max_len:
        return None
    joined = b"\n".join(values)
    if joined.translate(_DIGITS_AS_ZEROS).find(_NINETEEN_ZEROS) >= 0:
        return None
    if joined.count(b"[") + joined.count(b"{") > MAX_DEPTH and max(map(
            add, map(bytes.count, values, repeat(b"[")), map(bytes.count, values, repeat(b"{")))) > MAX_DEPTH:
        return None  # a line might be nested too deep for orjson.loads: checked line by line
    try:
        deque(map(orjson.loads, values), 0)
    except orjson.JSONDecodeError:
        return None
    return values


_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_ZEROS = b"0" * 19


def _why_invalid(line: bytes, exc: orjson.JSONDecodeError) -> str:
    """A one-line reason for a line orjson refused (only called on the error path)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start + 1}"
    if _LONG_DIGITS.search(line):
        _check_ints(line)  # an integer orjson read as infinity: say so
    # orjson's own "line 1 column N" is about the one-line document: give the column only.
    reason = f"invalid JSON at column {exc.colno}: {exc.msg}"
    if text[exc.pos:].lstrip("-").startswith(("NaN", "Infinity")):
        reason += " (NaN and Infinity are not JSON)"
    return reason


def publish_lines(data_dir: str, topic: str, stream: BinaryIO, *, key_field: str | None = None,
                  key: str | None = None, partition: int | None = None, fsync: str | None = None,
                  num_partitions: int = 3, on_error: Callable[[str], None] | None = None,
                  on_progress: Callable[[int], None] | None = None, key_separator: str | None = None,
                  headers: dict[str, str] | None = None, max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS,
                  summary: PublishSummary | None = None) -> PublishSummary:
    """Publish each line of ``stream`` as one record; fills and returns ``summary``.

    ``key_separator`` (Kafka's ``parse.key``): each line is ``KEY<separator>JSON``; ``headers`` go
    on every record; ``max_block_ms``: Kafka's max.block.ms for the producer.

    A line is handed to the producer as soon as it is read, whose sender appends it within
    ``linger.ms`` (at once when the disk is idle): published lines become visible to consumers
    while the input is still open. The first failed append stops the reading (the disk is full,
    the partition is fenced, ...); Ctrl+C stops it too, at a line boundary
    (``summary.interrupted``). On every path the lines already read are written before returning,
    and ``summary`` counts what was acknowledged: the published lines are the first ones of the
    input, so a rerun resumes after them. The first failed append (or a deleted topic), and any
    other error, is raised after that: pass ``summary`` to still have it then. ``on_progress(n)``
    gets the number of acknowledged records.
    """
    summary = summary if summary is not None else PublishSummary()
    try:
        Topic(data_dir, topic)
    except UnknownTopicError:
        summary.created = True
    producer = Producer(data_dir, fsync=fsync, num_partitions=num_partitions, batch_size=256 * 1024,
                        max_block_ms=max_block_ms)
    pending: list[SentRun] = []  # runs of records not yet settled
    with _CtrlC() as ctrl_c:
        try:
            t = producer.topic(topic)
            summary.partitions = t.partitions
            if partition is not None:
                t.check_partition(partition)
            limit = t.config.max_message_bytes
            send_json, send_many = producer.send_json, producer.send_json_many
            # Bulk unless each record needs its own key: one timestamp and one hold of the
            # producer's lock per read, no future per record.
            bulk = key_field is None and key_separator is None
            extra = len(encode_key(key)) + len(encode_headers(headers)) + 120  # the producer's size estimate
            for first, lines in iter_line_chunks(stream, limit, ctrl_c.reader(stream)):
                summary.lines_read = first + len(lines) - 1
                # The whole read checked at once; a read with a line to report goes line by line.
                good = (bulk and acceptable_values(lines, limit - extra)) or []
                for number, line in enumerate(() if good else lines, first):
                    if line is not None and (not line or line.isspace()):
                        summary.skipped += 1
                        continue
                    try:
                        k, line, value = parse_line(line, limit, key, key_separator)
                        line = line.strip()  # the line itself is the value's JSON, stored as given
                        if bulk and len(line) + extra <= limit:
                            good.append(line)
                            continue
                        if key_field is not None and isinstance(value, dict) and value.get(key_field) is not None:
                            k = str(value[key_field])
                        if good:  # the lines read before this one go first: input order is kept
                            pending += send_many(topic, good, key=key, partition=partition, headers=headers)
                            good = []
                        f = send_json(topic, line, key=k, partition=partition, headers=headers)
                        pending.append(SentRun(f.batch, f.index, 1))
                    except TopicDeletedError as exc:
                        summary.failed += 1
                        summary.error = exc  # every later line would fail the same way: stop
                        break
                    except (ValueError, LogBrokerError) as exc:
                        summary.failed += 1
                        if on_error:
                            on_error(f"line {number}: {exc}")
                if good:
                    try:
                        pending += send_many(topic, good, key=key, partition=partition, headers=headers)
                    except TopicDeletedError as exc:
                        summary.failed += len(good)
                        summary.error = summary.error or exc
                _settle(pending, summary, on_error)
                if on_progress:
                    on_progress(summary.published)
                if summary.error is not None:
                    break  # an append failed: stop reading, what was read is still settled below
                if ctrl_c.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            try:
                producer.close()  # the lines read are written: Ctrl+C now waits for this round
            except LogBrokerError:
                pass  # the futures carry it
            _settle(pending, summary, on_error)
            summary.interrupted = summary.interrupted or ctrl_c.requested
            if on_progress:
                on_progress(summary.published)
    if summary.error is not None:
        raise summary.error
    return summary


class _CtrlC:
    """Ctrl+C at line boundaries: while blocked reading input it interrupts at once (nothing of the
    read is lost: it returned nothing yet); anywhere else it is noted, and the loop stops after the
    lines in hand were handed to the producer. A KeyboardInterrupt between ``send`` returning and
    its future being kept would publish a record the summary never counts. The handler is only
    installed from the main thread, over Python's default one, and restored on exit."""

    def __init__(self) -> None:
        self.requested = False
        self.reading = False
        self._previous = None

    def __enter__(self) -> "_CtrlC":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.reading:
            raise KeyboardInterrupt

    def reader(self, stream: BinaryIO) -> Callable[[int], bytes]:
        read = stream.read1 if hasattr(stream, "read1") else stream.read

        def guarded(n: int) -> bytes:
            if self.requested:
                raise KeyboardInterrupt
            self.reading = True
            try:
                return read(n)
            finally:
                self.reading = False
        return guarded


def _settle(pending: list[SentRun], summary: PublishSummary, on_error: Callable[[str], None] | None) -> None:
    """Count the resolved runs of ``pending`` (records acknowledged, or not) and keep the others."""
    per, last = summary.per_partition, summary.last_offsets
    keep = []
    for run in pending:
        batch, start, count, p = run.batch, run.index, run.count, run.partition
        if not batch.done:
            keep.append(run)
            continue
        acked, top = 0, -1
        if batch.error is None:
            acked, top = count, batch.offset_of(start + count - 1)
        else:  # a roll inside the failed append may have made some durable
            for i in range(start, start + count):
                offset = batch.offset_of(i)
                if offset is not None:
                    acked, top = acked + 1, offset
            summary.not_acknowledged += count - acked
            if summary.error is None:
                summary.error = batch.error
        if acked:
            summary.published += acked
            per[p] = per.get(p, 0) + acked
            if top > last.get(p, -1):
                last[p] = top
    pending[:] = keep


def parse_line(line: bytes | None, limit: int, key: str | None,
               key_separator: str | None) -> tuple[str | None, bytes, object]:
    """One input line as ``(key, value's JSON text, value)``: the key split off with
    ``key_separator`` (else ``key``), the value parsed; ``line`` None (longer than ``limit``, as
    :func:`iter_line_chunks` marks it) or bad JSON is a ValueError."""
    if line is None:
        raise ValueError(f"line is larger than max.message.bytes={limit}")
    if key_separator is not None:
        key, line = split_key(line, key_separator)
    return key, line, parse_value(line)


def split_key(line: bytes, separator: str) -> tuple[str, bytes]:
    """``KEY<separator>VALUE`` -> (key, value bytes): kafka-console-producer's ``parse.key``."""
    key, sep, rest = line.partition(separator.encode())
    if not sep:
        raise ValueError(f"no key separator {separator!r} in the line (parse.key=true)")
    try:
        return key.decode("utf-8"), rest
    except UnicodeDecodeError as bad:
        raise ValueError(f"the key is not UTF-8 (byte {bad.start + 1})") from None
