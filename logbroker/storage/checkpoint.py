"""Small per-partition metadata files (FORMAT.md, "Partition state"; Kafka's checkpoint text).

- ``high-watermark``: 84 bytes, rewritten in place under the partition lock after every append and
  read lock-free by consumers. A crc guards against a read racing a rewrite; the reader retries.
- ``log-start-offset-checkpoint``: Kafka's checkpoint text, replaced atomically by retention
  *before* any segment below the new log start offset is unlinked (by retention or delete-records).
- ``cleaner-offset-checkpoint``: the same text; the first dirty offset of a compacted partition,
  replaced atomically at the end of each cleaning pass.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from . import fsutil
from ..errors import CorruptionError

__all__ = ["PartitionState", "StateFile", "read_log_start", "write_log_start", "STATE_NAME", "LOG_START_NAME",
           "CLEANER_NAME", "read_cleaner_offset", "write_cleaner_offset"]

STATE_NAME = "high-watermark"
LOG_START_NAME = "log-start-offset-checkpoint"
CLEANER_NAME = "cleaner-offset-checkpoint"
_STATE = struct.Struct("<4sIQQQQQQQqqI")
_BODY = _STATE.size - 4
_MAGIC = b"LBHW"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Where a partition ends. Offsets are absolute, positions are within the active segment.

    It is the writer's whole cache: any writer process reads it under the lock and knows where to
    append, when the last index entry was written, and the active segment's timestamps.

    Invariants: ``active_base <= high_watermark <= log_end_offset``,
    ``hw_position <= log_end_position``, ``last_batch_position <= log_end_position``.
    """

    active_base: int = 0
    log_end_offset: int = 0
    log_end_position: int = 0
    last_batch_position: int = 0
    high_watermark: int = 0
    hw_position: int = 0
    last_index_position: int = 0
    max_timestamp: int = -1
    first_timestamp: int = -1

    def encode(self) -> bytes:
        head = _STATE.pack(_MAGIC, _VERSION, self.active_base, self.log_end_offset, self.log_end_position,
                           self.last_batch_position, self.high_watermark, self.hw_position,
                           self.last_index_position, self.max_timestamp, self.first_timestamp, 0)[:_BODY]
        return head + struct.pack("<I", zlib.crc32(head))

    @classmethod
    def decode(cls, data: bytes) -> "PartitionState | None":
        """The state, or None when the bytes are short, of another format, or fail their crc."""
        if len(data) != _STATE.size or data[:4] != _MAGIC:
            return None
        magic, version, *fields, crc = _STATE.unpack(data)
        if version != _VERSION or zlib.crc32(data[:_BODY]) != crc:
            return None
        return cls(*fields)


class StateFile:
    """The open ``high-watermark`` file of one partition.

    Writers call :meth:`write` holding the partition lock. Readers call :meth:`read` without a lock.
    The file is opened lazily by readers so a partition that was never written reads as empty.
    """

    __slots__ = ("path", "fd")

    def __init__(self, partition_dir: str, create: bool = False) -> None:
        self.path = os.path.join(partition_dir, STATE_NAME)
        self.fd = -1
        # Only the writer (create=True) writes; readers open read-only, so a data directory they
        # may not write to (a read-only mount, another user's files) can still be read.
        flags = os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY)
        try:
            self.fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self.fd = -1

    def read(self) -> PartitionState | None:
        """The current state; None when the file is missing or empty (nothing written yet).

        Raises CorruptionError when the file keeps failing its crc (not a racing rewrite).
        """
        if self.fd < 0:
            return None
        for _ in range(50):
            data = os.pread(self.fd, _STATE.size, 0)
            if not data:
                return None
            state = PartitionState.decode(data)
            if state is not None:
                return state
        raise CorruptionError(f"partition state file {self.path} is damaged; a writer's recovery rebuilds it",
                              path=self.path)

    def read_or_none(self) -> PartitionState | None:
        """Like :meth:`read`, but damage reads as None (the writer then recovers from the log)."""
        try:
            return self.read()
        except CorruptionError:
            return None

    def write(self, state: PartitionState) -> None:
        fsutil.write_at(self.fd, state.encode(), 0, self.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_log_start(partition_dir: str, topic: str, partition: int) -> int:
    """The persisted log start offset (0 when retention never ran)."""
    return _read_offset(os.path.join(partition_dir, LOG_START_NAME), topic, partition, "log start offset")


def read_cleaner_offset(partition_dir: str, topic: str, partition: int) -> int | None:
    """The first dirty offset recorded by the last cleaning pass (None when none ran)."""
    path = os.path.join(partition_dir, CLEANER_NAME)
    if not os.path.exists(path):
        return None
    try:
        return _read_offset(path, topic, partition, "cleaner offset")
    except CorruptionError as exc:
        raise CorruptionError(f"{exc}; `logbroker recover {topic}` rewrites it", path=path) from None


def write_cleaner_offset(partition_dir: str, topic: str, partition: int, offset: int) -> None:
    path = os.path.join(partition_dir, CLEANER_NAME)
    fsutil.atomic_write(path, f"0\n1\n{topic} {partition} {offset}\n".encode("ascii"))


def _read_offset(path: str, topic: str, partition: int, what: str) -> int:
    """One offset from a Kafka checkpoint file naming one partition (0 when the file is missing)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
    except FileNotFoundError:
        return 0
    except UnicodeDecodeError:
        text = ""
    lines = text.split("\n")
    try:
        if lines[0] != "0" or int(lines[1]) != 1:
            raise ValueError
        name, part, offset = lines[2].split(" ")
        if name != topic or int(part) != partition or int(offset) < 0:
            raise ValueError
        return int(offset)
    except (ValueError, IndexError):
        raise CorruptionError(f"{path} is not a valid {what} checkpoint", path=path) from None


def write_log_start(partition_dir: str, topic: str, partition: int, offset: int) -> None:
    path = os.path.join(partition_dir, LOG_START_NAME)
    fsutil.atomic_write(path, f"0\n1\n{topic} {partition} {offset}\n".encode("ascii"))
