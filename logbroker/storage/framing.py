"""The checksummed line: the framing of every line logbroker writes (FORMAT.md, "One record line").

A framed line is the 18-byte prefix ``{"crc":"xxxxxxxx",``, then the body, then LF. The body is
the rest of one JSON object (everything after its opening brace, closing brace included), so the
whole line is that object with a ``crc`` field first; ``xxxxxxxx`` is CRC-32 of the body, as 8
lowercase hex digits. The body never holds an LF (JSON escapes it in strings).

Record lines (:mod:`logbroker.storage.record`, which adds the batch rules on top) and the small
files of a consumer group (:mod:`logbroker.groups.offsets`, :mod:`logbroker.groups.membership`)
are framed this way. This module is the only place that spells the prefix; the record codec
formats it inline on its hot paths from the constants below.
"""

from __future__ import annotations

import zlib
from typing import Iterator

__all__ = ["PREFIX_LEN", "PREFIX_HEAD", "PREFIX_TAIL", "LINE", "crc32", "frame", "check_framed", "line_starts"]

#: the length of ``{"crc":"xxxxxxxx",``
PREFIX_LEN = 18
#: the prefix before the crc digits, and after them
PREFIX_HEAD = b'{"crc":"'
PREFIX_TAIL = b'",'
#: a whole line from its crc and body: ``LINE % (crc32(body), body)``
LINE = b'{"crc":"%08x",%b\n'

try:
    # ISA-L's CRC-32: the same checksum as zlib.crc32 (a test holds them equal), 3-4x faster on
    # lines and batches of these sizes; every byte written or read goes through it.
    from isal.isal_zlib import crc32
except ImportError:  # a platform without its wheel
    crc32 = zlib.crc32

_LINE_START = b"\n" + PREFIX_HEAD


def frame(body: bytes) -> bytes:
    """The framed line of ``body`` (the JSON object's bytes after its opening brace), LF included."""
    return LINE % (crc32(body), body)


def check_framed(line: bytes) -> None:
    """Verify one framed line (with or without its LF); raises ValueError naming what is wrong."""
    if line[-1:] == b"\n":
        line = line[:-1]
    if len(line) < PREFIX_LEN + 2 or line[:8] != PREFIX_HEAD or line[16:18] != PREFIX_TAIL:
        raise ValueError("line does not start with a crc prefix")
    if b"\n" in line:
        raise ValueError("line holds an LF before its end")
    # Compare the hex text itself: int(..., 16) would also accept "A" for "a" or " " for "0",
    # letting a flipped bit in the crc field pass unnoticed.
    if b"%08x" % crc32(line[PREFIX_LEN:]) != line[8:16]:
        raise ValueError("line checksum mismatch")


def line_starts(data: bytes) -> Iterator[int]:
    """Positions in ``data`` right after an LF where a framed line may start (its prefix begins
    there): where to look for whole lines past damage. A caller reading a file in chunks overlaps
    them by :data:`PREFIX_LEN` bytes so that no start is missed."""
    i = data.find(_LINE_START)
    while i >= 0:
        yield i + 1
        i = data.find(_LINE_START, i + 1)
