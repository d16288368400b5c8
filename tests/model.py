"""An in-memory model of one partition, for the stateful tests.

It restates the documented rules in the simplest form, independently of ``logbroker.storage.log``:

- offsets are contiguous from the log start offset; a batch of N records takes the next N offsets;
- a batch goes into a new segment when the active one is not empty and the batch would take it past
  ``segment.bytes``, or its newest timestamp is more than ``segment.ms`` after the segment's first;
- retention removes closed segments oldest first: below the log start offset, then while the
  partition exceeds ``retention.bytes`` by at least the segment's size, then while the segment's
  newest timestamp is more than ``retention.ms`` before ``now`` (never in the future); it stops at the
  first segment it keeps and never touches the active segment.

Batch sizes in bytes come from the writer (``len`` of the encoded batch), which the record tests
check separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelRecord:
    offset: int
    timestamp: int
    key: str | None
    headers: dict
    value: object


@dataclass
class ModelSegment:
    base: int
    size: int = 0
    first_ts: int = -1
    max_ts: int = -1
    records: list[ModelRecord] = field(default_factory=list)


class LogModel:
    def __init__(self, segment_bytes: int, segment_ms: int, retention_bytes: int = -1,
                 retention_ms: int = -1) -> None:
        self.segment_bytes = segment_bytes
        self.segment_ms = segment_ms
        self.retention_bytes = retention_bytes
        self.retention_ms = retention_ms
        self.segments = [ModelSegment(0)]
        self.log_start = 0

    @property
    def log_end(self) -> int:
        return self.segments[-1].base + len(self.segments[-1].records)

    def records(self) -> list[ModelRecord]:
        return [r for s in self.segments for r in s.records]

    def append(self, batch: list[tuple[int, str | None, dict, object]], nbytes: int) -> int:
        """Append one batch of (timestamp, key, headers, value); returns its base offset."""
        active = self.segments[-1]
        newest = max(ts for ts, *_ in batch)
        if active.size and (active.size + nbytes > self.segment_bytes
                            or newest - active.first_ts > self.segment_ms):
            active = ModelSegment(self.log_end)
            self.segments.append(active)
        base = self.log_end
        for i, (ts, key, headers, value) in enumerate(batch):
            active.records.append(ModelRecord(base + i, ts, key, headers or {}, value))
        if active.first_ts < 0:
            active.first_ts = batch[0][0]
        active.max_ts = max(active.max_ts, newest)
        active.size += nbytes
        return base

    def read(self, offset: int, max_records: int) -> list[ModelRecord]:
        return [r for r in self.records() if r.offset >= offset][:max_records]

    def offset_for_timestamp(self, ts: int) -> int | None:
        return next((r.offset for r in self.records() if r.timestamp >= ts), None)

    def apply_retention(self, now: int) -> int:
        """Delete what retention deletes; returns how many segments went."""
        closed = self.segments[:-1]
        n = 0
        while n < len(closed) and closed[n].base + len(closed[n].records) <= self.log_start:
            n += 1
        if self.retention_bytes >= 0:
            excess = sum(s.size for s in self.segments[n:]) - self.retention_bytes
            while n < len(closed) and excess >= closed[n].size:
                excess -= closed[n].size
                n += 1
        if self.retention_ms >= 0:
            while n < len(closed) and 0 <= closed[n].max_ts <= now and now - closed[n].max_ts > self.retention_ms:
                n += 1
        if n:
            self.log_start = max(self.log_start, self.segments[n].base)
            del self.segments[:n]
        return n
