"""Roll and retention rules as pure functions of their inputs (``now`` is always passed in).

Kafka's rules (``LogSegment.shouldRoll``, ``UnifiedLog.deleteOldSegments``), restated:

- roll before an append when the active segment is not empty and either the append would take it
  past ``segment.bytes`` or the incoming records are more than ``segment.ms`` newer than its first;
- retention walks the *closed* segments oldest first, deleting while a rule holds and stopping at the
  first segment it keeps: segments wholly below the log start offset; then, while the partition is
  over ``retention.bytes`` by at least the segment's size; then, while the segment's newest timestamp
  is more than ``retention.ms`` old. The active segment is never deleted. The last two rules apply
  only when ``cleanup.policy`` includes ``delete`` (Kafka's rule; compaction is in compaction.py).
- a segment whose newest timestamp lies in the future (the clock went back) is not expired.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TopicConfig

__all__ = ["SegmentInfo", "should_roll", "segments_to_delete", "why_kept"]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What the policies need to know about one segment."""

    base_offset: int
    next_offset: int  # the base offset of the next segment, or the log end offset for the last
    size: int
    max_timestamp: int  # -1 for an empty segment


def should_roll(config: TopicConfig, size: int, incoming_bytes: int, first_timestamp: int,
                incoming_max_timestamp: int) -> bool:
    """Kafka's rule: by size, or when the incoming batch's newest timestamp is more than
    ``segment.ms`` after the segment's first record (record time, not the wall clock)."""
    if size == 0:
        return False
    if size + incoming_bytes > config.segment_bytes:
        return True
    return first_timestamp >= 0 and incoming_max_timestamp - first_timestamp > config.segment_ms


def segments_to_delete(segments: list[SegmentInfo], config: TopicConfig, now_ms: int,
                       log_start_offset: int) -> tuple[list[SegmentInfo], str]:
    """The oldest closed segments retention removes, and the rule that removed them; when it removes
    none, the reason is why (:func:`why_kept`).

    ``segments`` is in offset order with the active segment last.
    """
    closed = segments[:-1]
    doomed: list[SegmentInfo] = []
    reasons: list[str] = []

    for seg in closed:
        if seg.next_offset <= log_start_offset:
            doomed.append(seg)
        else:
            break
    if doomed:
        reasons.append("log start offset")

    if not config.delete:
        return doomed, ", ".join(reasons)  # cleanup.policy=compact: only the log start offset deletes

    if config.retention_bytes >= 0:
        excess = sum(s.size for s in segments) - config.retention_bytes - sum(s.size for s in doomed)
        before = len(doomed)
        for seg in closed[len(doomed):]:
            if excess - seg.size >= 0:
                doomed.append(seg)
                excess -= seg.size
            else:
                break
        if len(doomed) > before:
            reasons.append("retention.bytes")

    if config.retention_ms >= 0:
        before = len(doomed)
        for seg in closed[len(doomed):]:
            if 0 <= seg.max_timestamp <= now_ms and now_ms - seg.max_timestamp > config.retention_ms:
                doomed.append(seg)
            else:
                break
        if len(doomed) > before:
            reasons.append("retention.ms")

    return doomed, ", ".join(reasons) if doomed else why_kept(segments, config, now_ms)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:.1f} {unit}".replace(".0 ", " ")
    return f"{ms} ms"


def why_kept(segments: list[SegmentInfo], config: TopicConfig, now_ms: int) -> str:
    """Why retention deletes nothing from this partition, in a few words for people."""
    if not segments or all(s.size == 0 for s in segments):
        return "the partition is empty"
    if config.retention_ms < 0 and config.retention_bytes < 0:
        return "retention.ms and retention.bytes are -1 (keep forever)"
    active = segments[-1]
    if len(segments) == 1:
        rolled = f"{active.size / config.segment_bytes:.1f}x" if active.size > config.segment_bytes else "under"
        return (f"all of it is in the active segment ({active.size} bytes, {rolled} segment.bytes="
                f"{config.segment_bytes}), which is never deleted; it rolls when the next batch would take it "
                f"past segment.bytes or after segment.ms")
    oldest = segments[0]
    kept = []
    if config.retention_ms >= 0:
        age = now_ms - oldest.max_timestamp
        kept.append(f"the oldest closed segment's newest record is {_duration(max(0, age))} old, within "
                    f"retention.ms={config.retention_ms} ({_duration(config.retention_ms)})")
    if config.retention_bytes >= 0:
        total = sum(s.size for s in segments)
        kept.append(f"the partition's {total} bytes minus its oldest segment's {oldest.size} would fall "
                    f"below retention.bytes={config.retention_bytes}")
    return "; ".join(kept)
