"""Compaction rules as pure functions (logbroker.storage.compaction): no files, no clock."""

from __future__ import annotations

import pytest

from logbroker.storage.compaction import group_segments, keep_record, plan_cleaning
from logbroker.storage.config import TopicConfig
from logbroker.errors import InvalidConfigError
from logbroker.storage.policy import SegmentInfo, segments_to_delete

DAY = 24 * 3600 * 1000
NOW = 1_764_230_400_000
COMPACT = TopicConfig(cleanup_policy="compact")


def segs(*specs):
    """SegmentInfo from (size, max_timestamp) pairs; each segment holds 10 offsets; the last is active."""
    return [SegmentInfo(10 * i, 10 * i + 10, size, ts) for i, (size, ts) in enumerate(specs)]


def test_kafka_names_and_defaults_for_compaction_configs():
    cfg = TopicConfig().to_kafka()
    assert cfg["cleanup.policy"] == "delete"
    assert cfg["min.cleanable.dirty.ratio"] == 0.5
    assert cfg["min.compaction.lag.ms"] == 0
    assert cfg["max.compaction.lag.ms"] == 2**63 - 1
    assert cfg["delete.retention.ms"] == DAY
    assert TopicConfig.from_kafka({"cleanup.policy": "delete,compact"}).cleanup_policy == "compact,delete"


@pytest.mark.parametrize("pairs", [{"cleanup.policy": "squash"}, {"min.cleanable.dirty.ratio": "1.5"},
                                   {"min.cleanable.dirty.ratio": "half"}, {"delete.retention.ms": "-2"}])
def test_bad_compaction_configs_are_refused_naming_the_key(pairs):
    with pytest.raises(InvalidConfigError, match=next(iter(pairs))):
        TopicConfig.from_kafka(pairs)


def test_a_delete_topic_is_never_cleaned():
    plan = plan_cleaning(segs((100, NOW - DAY), (100, NOW)), TopicConfig(), NOW, 0, force=True)
    assert not plan.run and "compact" in plan.reason


def test_the_active_segment_is_never_in_the_cleanable_range():
    plan = plan_cleaning(segs((100, NOW - DAY), (100, NOW - DAY), (100, NOW - DAY)), COMPACT, NOW, 0)
    assert [s.base_offset for s in plan.segments] == [0, 10]
    assert plan.end_offset == 20


def test_min_compaction_lag_stops_the_range_at_the_first_young_segment():
    cfg = TopicConfig(cleanup_policy="compact", min_compaction_lag_ms=1000)
    plan = plan_cleaning(segs((100, NOW - 5000), (100, NOW - 999), (100, NOW - 5000), (1, NOW)), cfg, NOW, 0)
    assert [s.base_offset for s in plan.segments] == [0]
    future = plan_cleaning(segs((100, NOW + DAY), (1, NOW)), COMPACT, NOW, 0)
    assert not future.run and not future.segments


def test_dirty_ratio_decides_unless_max_compaction_lag_forces_it():
    # 300 bytes clean (below offset 30), 100 dirty: ratio 0.25
    s = segs((100, NOW - DAY), (100, NOW - DAY), (100, NOW - DAY), (100, NOW - DAY), (1, NOW))
    plan = plan_cleaning(s, COMPACT, NOW, 30)
    assert plan.dirty_ratio == pytest.approx(0.25) and not plan.run
    assert plan_cleaning(s, TopicConfig(cleanup_policy="compact", min_cleanable_dirty_ratio=0.25), NOW, 30).run
    overdue = plan_cleaning(s, TopicConfig(cleanup_policy="compact", max_compaction_lag_ms=DAY - 1), NOW, 30)
    assert overdue.run and overdue.reason == "max.compaction.lag.ms"
    assert plan_cleaning(s, COMPACT, NOW, 30, force=True).run


def test_groups_are_consecutive_and_within_segment_bytes():
    s = segs((40, 0), (40, 0), (30, 0), (200, 0), (10, 0))
    assert [[g.base_offset for g in grp] for grp in group_segments(s, 100)] == [[0, 10], [20], [30], [40]]


def test_only_the_latest_record_of_a_key_is_kept():
    args = dict(log_start=0, first_dirty=0, now_ms=NOW, config=COMPACT)
    assert keep_record(5, True, False, NOW, 5, **args)
    assert not keep_record(4, True, False, NOW, 5, **args)
    assert not keep_record(5, False, False, NOW, None, **args)  # no key
    assert not keep_record(5, True, False, NOW, 5, log_start=6, first_dirty=0, now_ms=NOW, config=COMPACT)


def test_a_tombstone_is_removed_only_after_a_pass_and_delete_retention_ms():
    cfg = TopicConfig(cleanup_policy="compact", delete_retention_ms=1000)
    # not yet through a pass (at or above the first dirty offset): kept however old
    assert keep_record(5, True, True, NOW - DAY, 5, 0, 5, NOW, cfg)
    # through a pass, young: kept; old: removed
    assert keep_record(5, True, True, NOW - 1000, 5, 0, 6, NOW, cfg)
    assert not keep_record(5, True, True, NOW - 1001, 5, 0, 6, NOW, cfg)


def test_retention_by_time_and_size_applies_only_with_the_delete_policy():
    s = segs((100, NOW - 10 * DAY), (100, NOW))
    for policy, deleted in (("compact", []), ("compact,delete", [0]), ("delete", [0])):
        cfg = TopicConfig(cleanup_policy=policy, retention_ms=DAY)
        assert [d.base_offset for d in segments_to_delete(s, cfg, NOW, 0)[0]] == deleted
