"""Publishing JSON lines from a stream (what ``logbroker publish`` and kafka-console-producer do).

Every line is one record. A line that is not valid JSON, is empty, holds a number JSON readers
cannot keep exactly, or is larger than ``max.message.bytes`` is reported with its line number and
skipped; the valid lines are still published. Memory stays bounded whatever the input: a line over
the limit is skipped in chunks without ever being held whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import orjson

from .config import DEFAULT_MAX_BLOCK_MS
from .errors import LogBrokerError, TopicDeletedError, UnknownTopicError
from .producer import Producer
from .topic import Topic

__all__ = ["publish_lines", "PublishSummary", "iter_lines", "split_key"]

_LONG_DIGITS = re.compile(rb"\d{19,}")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(slots=True)
class PublishSummary:
    published: int = 0
    failed: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    created: bool = False
    partitions: int = 0


def iter_lines(stream: BinaryIO, limit: int):
    """Yield ``(line_number, line_or_None)``; None for a line longer than ``limit`` bytes."""
    number = 0
    while True:
        line = stream.readline(limit + 2)
        if not line:
            return
        number += 1
        if not line.endswith(b"\n") and len(line) >= limit + 2:
            # Too long: skip the rest of it in bounded chunks.
            while True:
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


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
    if _LONG_DIGITS.search(line):
        _check_ints(line)
    return value


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
                  headers: dict[str, str] | None = None,
                  max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS) -> PublishSummary:
    """``key_separator`` (Kafka's ``parse.key``): each line is ``KEY<separator>JSON``; ``headers`` go
    on every record. ``max_block_ms``: how long an append waits for a partition lock (Kafka's name)."""
    summary = PublishSummary()
    try:
        Topic(data_dir, topic)
    except UnknownTopicError:
        summary.created = True
    producer = Producer(data_dir, fsync=fsync, num_partitions=num_partitions, batch_size=256 * 1024,
                        max_block_ms=max_block_ms)
    try:
        t = producer._topic(topic)
        summary.partitions = t.partitions
        if partition is not None:
            t.check_partition(partition)
        limit = t.config.max_message_bytes
        futures = []
        for number, line in iter_lines(stream, limit):
            try:
                if line is None:
                    raise ValueError(f"line is larger than max.message.bytes={limit}")
                k = key
                if key_separator is not None:
                    k, line = split_key(line, key_separator)
                value = parse_value(line)
                if key_field is not None and isinstance(value, dict) and value.get(key_field) is not None:
                    k = str(value[key_field])
                # The line itself is the value's JSON: orjson just accepted it, so store it as given.
                futures.append(producer.send_json(topic, line.strip(), key=k, partition=partition, headers=headers))
            except TopicDeletedError as exc:
                # Every later line would fail the same way: stop reading, report what failed.
                summary.failed += 1
                if on_error:
                    on_error(f"line {number}: {exc}; stopping")
                break
            except (ValueError, LogBrokerError) as exc:
                summary.failed += 1
                if on_error:
                    on_error(f"line {number}: {exc}")
                continue
            if len(futures) >= 10000:
                _settle(futures, summary)
            if on_progress:
                on_progress(summary.published + len(futures))
        try:
            producer.flush()
        except TopicDeletedError as exc:
            if on_error:
                on_error(str(exc))  # the futures tell which records it failed
        _settle(futures, summary)
    finally:
        producer.close()
    return summary


def _settle(futures: list, summary: PublishSummary) -> None:
    for f in futures:
        if f.done():
            try:
                md = f.get()
            except TopicDeletedError:
                summary.failed += 1
                continue
            summary.published += 1
            summary.per_partition[md.partition] = summary.per_partition.get(md.partition, 0) + 1
    futures[:] = [f for f in futures if not f.done()]


def split_key(line: bytes, separator: str) -> tuple[str, bytes]:
    """``KEY<separator>VALUE`` -> (key, value bytes): kafka-console-producer's ``parse.key``."""
    key, sep, rest = line.partition(separator.encode())
    if not sep:
        raise ValueError(f"no key separator {separator!r} in the line (parse.key=true)")
    try:
        return key.decode("utf-8"), rest
    except UnicodeDecodeError as bad:
        raise ValueError(f"the key is not UTF-8 (byte {bad.start + 1})") from None
