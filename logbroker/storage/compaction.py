"""Log compaction rules as pure functions of their inputs (``now`` is always passed in).

Kafka's rules (``LogCleanerManager``, ``Cleaner``), restated for logbroker (FORMAT.md, "Compacted logs"):

- only topics whose ``cleanup.policy`` includes ``compact`` are cleaned; the active segment never is;
- the **cleanable range** is the longest prefix of closed segments whose newest timestamp is at least
  ``min.compaction.lag.ms`` old (a segment stamped in the future is not);
- its **dirty ratio** is the size of its segments at or past the first dirty offset (the end of the
  last pass) over its whole size; a pass runs when the ratio is at least
  ``min.cleanable.dirty.ratio``, or when a dirty segment's newest timestamp is more than
  ``max.compaction.lag.ms`` old (Kafka measures that lag from the first dirty record; a closed
  segment's newest timestamp is what logbroker keeps, so the bound is looser, never tighter);
- a record is **kept** when it has a key, lies at or above the log start offset and holds the highest
  offset of its key in the cleanable range; a kept **tombstone** is still removed once it was in the
  clean part (below the first dirty offset: it survived a pass) and its timestamp is more than
  ``delete.retention.ms`` before ``now``;
- segments are rewritten in consecutive **groups** whose sizes sum to at most ``segment.bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TopicConfig
from .policy import SegmentInfo

__all__ = ["CleaningPlan", "plan_cleaning", "group_segments", "keep_record"]


@dataclass(frozen=True, slots=True)
class CleaningPlan:
    """What a pass would clean, and why (or why not)."""

    segments: tuple[SegmentInfo, ...]  # the cleanable range, oldest first
    end_offset: int  # one past the cleanable range: the first dirty offset after the pass
    dirty_ratio: float
    run: bool
    reason: str


def plan_cleaning(segments: list[SegmentInfo], config: TopicConfig, now_ms: int, first_dirty: int,
                  force: bool = False) -> CleaningPlan:
    """The cleanable range of a partition (``segments`` in offset order, the active one last).

    ``first_dirty`` is the offset recorded by the last pass (the log start offset when none ran).
    ``force`` runs the pass whatever the dirty ratio (``logbroker compact``'s explicit request still
    respects the compaction lag and never touches the active segment).
    """
    if not config.compact:
        return CleaningPlan((), first_dirty, 0.0, False, "cleanup.policy does not include compact")
    cleanable = []
    for seg in segments[:-1]:
        if seg.max_timestamp > now_ms or now_ms - seg.max_timestamp < config.min_compaction_lag_ms:
            break
        cleanable.append(seg)
    if not cleanable:
        return CleaningPlan((), first_dirty, 0.0, False, "no closed segment is past min.compaction.lag.ms")
    total = sum(s.size for s in cleanable)
    dirty = [s for s in cleanable if s.next_offset > first_dirty]
    ratio = (sum(s.size for s in dirty) / total) if total else 0.0
    end = cleanable[-1].next_offset
    if not dirty:
        return CleaningPlan(tuple(cleanable), end, ratio, force, "forced" if force else "nothing dirty")
    overdue = any(0 <= s.max_timestamp <= now_ms and now_ms - s.max_timestamp > config.max_compaction_lag_ms
                  for s in dirty)
    if force:
        return CleaningPlan(tuple(cleanable), end, ratio, True, "forced")
    if overdue:
        return CleaningPlan(tuple(cleanable), end, ratio, True, "max.compaction.lag.ms")
    if ratio >= config.min_cleanable_dirty_ratio:
        return CleaningPlan(tuple(cleanable), end, ratio, True, "min.cleanable.dirty.ratio")
    return CleaningPlan(tuple(cleanable), end, ratio, False,
                        f"dirty ratio {ratio:.2f} is below min.cleanable.dirty.ratio {config.min_cleanable_dirty_ratio}")


def group_segments(segments: tuple[SegmentInfo, ...] | list[SegmentInfo], max_bytes: int) -> list[list[SegmentInfo]]:
    """Consecutive groups whose sizes sum to at most ``max_bytes`` (a larger segment is alone)."""
    groups: list[list[SegmentInfo]] = []
    size = 0
    for seg in segments:
        if groups and size + seg.size <= max_bytes:
            groups[-1].append(seg)
            size += seg.size
        else:
            groups.append([seg])
            size = seg.size
    return groups


def keep_record(offset: int, has_key: bool, tombstone: bool, timestamp: int, latest_offset: int | None,
                log_start: int, first_dirty: int, now_ms: int, config: TopicConfig) -> bool:
    """Whether the cleaner keeps one record (``latest_offset``: its key's highest offset in the range)."""
    if not has_key or offset < log_start or latest_offset != offset:
        return False
    if tombstone and offset < first_dirty and now_ms - timestamp > config.delete_retention_ms:
        return False
    return True
