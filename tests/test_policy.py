"""Roll and retention rules as pure functions (logbroker.storage.policy): no files, no clock."""

from __future__ import annotations

from logbroker.storage.config import TopicConfig
from logbroker.storage.policy import SegmentInfo, segments_to_delete, should_roll

DAY = 24 * 3600 * 1000
NOW = 1_764_230_400_000


def segs(*specs):
    """SegmentInfo from (size, max_timestamp) pairs; each segment holds 10 offsets."""
    return [SegmentInfo(10 * i, 10 * i + 10, size, ts) for i, (size, ts) in enumerate(specs)]


def bases(doomed):
    return [s.base_offset for s in doomed]


def test_an_empty_segment_never_rolls():
    cfg = TopicConfig(segment_bytes=100, segment_ms=1)
    assert not should_roll(cfg, 0, 10_000, -1, NOW)


def test_roll_when_the_append_would_pass_segment_bytes():
    cfg = TopicConfig(segment_bytes=100)
    assert not should_roll(cfg, 60, 40, NOW, NOW)
    assert should_roll(cfg, 60, 41, NOW, NOW)


def test_roll_when_incoming_records_are_segment_ms_newer_than_the_first_record():
    cfg = TopicConfig(segment_ms=1000)
    assert not should_roll(cfg, 10, 10, NOW, NOW + 1000)
    assert should_roll(cfg, 10, 10, NOW, NOW + 1001)
    assert not should_roll(cfg, 10, 10, NOW, NOW - 5 * DAY)  # older incoming records never roll


def test_time_retention_deletes_closed_segments_older_than_retention_ms():
    cfg = TopicConfig(retention_ms=DAY)
    infos = segs((100, NOW - 3 * DAY), (100, NOW - 2 * DAY), (100, NOW - DAY + 1), (100, NOW - 5 * DAY))
    doomed, reason = segments_to_delete(infos, cfg, NOW, 0)
    assert bases(doomed) == [0, 10] and reason == "retention.ms"


def test_time_retention_stops_at_the_first_segment_it_keeps():
    cfg = TopicConfig(retention_ms=DAY)
    infos = segs((100, NOW), (100, NOW - 9 * DAY), (100, NOW))
    assert segments_to_delete(infos, cfg, NOW, 0)[0] == []


def test_bytes_retention_deletes_while_the_partition_stays_over_the_limit():
    cfg = TopicConfig(retention_bytes=250, retention_ms=-1)
    infos = segs((100, NOW), (100, NOW), (100, NOW), (100, NOW))
    doomed, reason = segments_to_delete(infos, cfg, NOW, 0)
    assert bases(doomed) == [0] and reason == "retention.bytes"  # 400 - 100 = 300 > 250, 300 - 100 < 250
    assert bases(segments_to_delete(infos, TopicConfig(retention_bytes=200, retention_ms=-1), NOW, 0)[0]) == [0, 10]


def test_segments_below_the_log_start_offset_are_deleted_first():
    cfg = TopicConfig(retention_ms=-1)
    doomed, reason = segments_to_delete(segs((1, NOW), (1, NOW), (1, NOW)), cfg, NOW, 20)
    assert bases(doomed) == [0, 10] and reason == "log start offset"
    assert segments_to_delete(segs((1, NOW), (1, NOW), (1, NOW)), cfg, NOW, 19)[0][0].base_offset == 0
    assert bases(segments_to_delete(segs((1, NOW), (1, NOW), (1, NOW)), cfg, NOW, 19)[0]) == [0]


def test_the_active_segment_is_never_deleted():
    cfg = TopicConfig(retention_ms=0, retention_bytes=0)
    infos = segs((100, NOW - 9 * DAY), (100, NOW - 9 * DAY))
    assert bases(segments_to_delete(infos, cfg, NOW, 10**9)[0]) == [0]
    assert segments_to_delete(segs((100, NOW - 9 * DAY)), cfg, NOW, 10**9)[0] == []


def test_a_clock_gone_back_deletes_nothing():
    cfg = TopicConfig(retention_ms=DAY)
    infos = segs((100, NOW), (100, NOW + DAY), (100, NOW))
    assert segments_to_delete(infos, cfg, NOW - 3600_000, 0)[0] == []
    assert segments_to_delete(infos, cfg, 0, 0)[0] == []


def test_minus_one_disables_each_rule():
    cfg = TopicConfig(retention_ms=-1, retention_bytes=-1)
    assert segments_to_delete(segs((10**9, 0), (10**9, 0), (1, 0)), cfg, NOW, 0)[0] == []


def test_the_rules_combine_in_order_and_report_each_reason():
    cfg = TopicConfig(retention_ms=DAY, retention_bytes=300)
    infos = segs((100, NOW), (100, NOW), (100, NOW - 2 * DAY), (100, NOW - 2 * DAY), (100, NOW))
    doomed, reason = segments_to_delete(infos, cfg, NOW, 10)
    # below log start: [0]; over bytes by 100 more: [10]; then expired: [20, 30]
    assert bases(doomed) == [0, 10, 20, 30]
    assert reason == "log start offset, retention.bytes, retention.ms"


def test_when_nothing_is_deleted_the_reason_says_why():
    cfg = TopicConfig(segment_bytes=100, retention_ms=DAY)
    doomed, reason = segments_to_delete(segs((800, NOW - 9 * DAY)), cfg, NOW, 0)
    assert doomed == [] and reason.startswith("all of it is in the active segment (800 bytes, 8.0x segment.bytes=100)")
    doomed, reason = segments_to_delete(segs((100, NOW - 3_600_000), (10, NOW)), cfg, NOW, 0)
    assert doomed == [] and "is 1 h old, within retention.ms=86400000 (1 d)" in reason
    forever = TopicConfig(retention_ms=-1, retention_bytes=-1)
    assert segments_to_delete(segs((100, NOW - 9 * DAY), (10, NOW)), forever, NOW, 0)[1] == \
        "retention.ms and retention.bytes are -1 (keep forever)"
    assert segments_to_delete(segs((0, -1)), cfg, NOW, 0)[1] == "the partition is empty"
