"""Helpers that damage files on purpose, and a way to kill a writer in the middle of its write.

Every helper works on a path and changes exactly what its name says; none of them knows the record
format except :func:`batch_spans`, which asks the segment module where each batch lies, and
:func:`batch_bytes`, which asks the record codec for the bytes of a batch to append.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from logbroker.storage.record import PendingRecord, encode_records
from logbroker.storage.segment import iter_batches, list_segments, log_name


def flip_bit(path: str, bit: int) -> None:
    """Invert bit ``bit`` of the file (bit 0 is the lowest bit of byte 0)."""
    with open(path, "r+b") as f:
        f.seek(bit // 8)
        byte = f.read(1)[0]
        f.seek(bit // 8)
        f.write(bytes([byte ^ (1 << (bit % 8))]))


def overwrite(path: str, position: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        f.write(data)


def truncate(path: str, size: int) -> None:
    os.truncate(path, size)


def append_bytes(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def zeros(n: int) -> bytes:
    return b"\0" * n


def garbage(n: int, seed: int = 0) -> bytes:
    """``n`` random bytes that contain no LF (so they never end a line by luck)."""
    rng = random.Random(seed)
    return bytes(b if b != 10 else 11 for b in rng.randbytes(n))


def segment_path(partition_dir: str, base: int | None = None) -> str:
    """The ``.log`` of segment ``base``, or of the active (last) segment."""
    bases = list_segments(partition_dir)
    return os.path.join(partition_dir, log_name(bases[-1] if base is None else base))


def batch_spans(path: str) -> list[tuple[int, int, int, int]]:
    """(start, end, first offset, record count) of every valid batch of a segment file, in order."""
    fd = os.open(path, os.O_RDONLY)
    try:
        spans = []
        for _buf, start, first, _rest, end, fpos in iter_batches(fd, 0, os.fstat(fd).st_size):
            batch = first.get("batch")
            spans.append((fpos + start, fpos + end, first["offset"], batch["count"] if batch else 1))
        return spans
    finally:
        os.close(fd)


def batch_bytes(base_offset: int, records: list[PendingRecord]) -> tuple[bytes, int]:
    """The bytes of one batch holding ``records`` from ``base_offset`` (whatever its size), and its
    max timestamp: what the log would append."""
    [(parts, _, _, _, max_ts)] = encode_records(base_offset, records)
    return b"".join(parts), max_ts


def valid_end(path: str) -> int:
    """Position after the last whole valid batch of the prefix of a segment file."""
    from logbroker.storage.record import BadBatch

    fd = os.open(path, os.O_RDONLY)
    end = 0
    try:
        for _buf, _start, _first, _rest, e, fpos in iter_batches(fd, 0, os.fstat(fd).st_size):
            end = fpos + e
    except BadBatch:
        pass
    finally:
        os.close(fd)
    return end


def snapshot(directory: str) -> dict[str, bytes]:
    """Every file of a directory tree and its bytes (to compare before/after, or to restore)."""
    out = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def restore(directory: str, files: dict[str, bytes]) -> None:
    """Make ``directory`` hold exactly ``files`` again (removing files created since)."""
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if os.path.relpath(path, directory) not in files:
                os.unlink(path)
    for rel, data in files.items():
        with open(os.path.join(directory, rel), "wb") as f:
            f.write(data)


_WRITER = textwrap.dedent("""
    import os, sys
    from logbroker.storage.record import PendingRecord
    from logbroker.storage.topic import Topic
    data_dir, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = Topic(data_dir, name).log(0)
    value = "x" * size
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    while True:
        log.append([PendingRecord(1764230400000, "big", None, value)])
""")


def kill_mid_write(data_dir: str, topic: str, record_bytes: int = 900_000, after: float = 0.3,
                   attempts: int = 20) -> bool:
    """Run a process appending huge records to partition 0 and SIGKILL it after ``after`` seconds.

    Returns True once a kill left bytes past the recorded log end (a torn or unrecorded write);
    gives up after ``attempts`` kills. The state is whatever the killed writer left.
    """
    from logbroker.storage.checkpoint import StateFile

    partition_dir = os.path.join(data_dir, topic, f"{topic}-0")
    for attempt in range(attempts):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, data_dir, topic, str(record_bytes)],
                                stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(after * (0.5 + random.random()))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = StateFile(partition_dir).read_or_none()
        path = segment_path(partition_dir)
        if state is not None and os.path.getsize(path) != state.log_end_position:
            return True
    return False
