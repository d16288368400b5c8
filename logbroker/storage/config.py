"""Topic configuration: Kafka's keys, logbroker's defaults, validation, and the naming rule.

Defaults differ from Kafka's where a laptop differs from a broker:

- ``segment.bytes`` is 16 MiB (Kafka: 1 GiB). Recovery after a crash rescans at most the active
  segment, and retention frees space in whole segments, so smaller segments keep both quick and fine
  grained; 16 MiB is still ~65,000 records of 250 bytes, so file counts stay small.
- everything else keeps Kafka's value: ``segment.ms`` 7 days, ``retention.ms`` 7 days,
  ``retention.bytes`` unlimited, ``max.message.bytes`` 1 MiB, ``index.interval.bytes`` 4096.
- compaction keeps Kafka's keys and defaults: ``cleanup.policy`` ``delete`` (``compact`` or
  ``compact,delete``), ``min.cleanable.dirty.ratio`` 0.5, ``min.compaction.lag.ms`` 0,
  ``max.compaction.lag.ms`` never, ``delete.retention.ms`` 24 hours.
- ``fsync`` (logbroker's own key) is ``always``: an acknowledged record survives power loss.
  ``interval`` syncs every ``flush.ms`` (Kafka's key); ``never`` leaves it to the OS.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace

from ..errors import InvalidConfigError, InvalidNameError

__all__ = ["TopicConfig", "CLEANUP_POLICIES", "validate_topic_name", "validate_group_name", "DEFAULT_PARTITIONS", "parse_config_pairs",
           "DEFAULT_MAX_BLOCK_MS", "check_max_block_ms"]

#: Partitions of a topic created implicitly by ``publish`` (Kafka's ``num.partitions`` is 1; three
#: lets a newcomer see a consumer group split work without creating the topic by hand first).
DEFAULT_PARTITIONS = 3
MAX_NAME = 249
#: Kafka's producer ``max.block.ms``: how long a writer (producer, retention, recovery) waits for a
#: partition lock another process holds before giving up with LockTimeoutError.
DEFAULT_MAX_BLOCK_MS = 60_000
_NAME = re.compile(r"[a-zA-Z0-9._-]+\Z")

_KEYS = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "max.message.bytes": "max_message_bytes",
    "index.interval.bytes": "index_interval_bytes",
    "fsync": "fsync",
    "flush.ms": "flush_ms",
    "cleanup.policy": "cleanup_policy",
    "min.cleanable.dirty.ratio": "min_cleanable_dirty_ratio",
    "min.compaction.lag.ms": "min_compaction_lag_ms",
    "max.compaction.lag.ms": "max_compaction_lag_ms",
    "delete.retention.ms": "delete_retention_ms",
}

#: Kafka's ``cleanup.policy`` values (a list; these are its three meaningful spellings).
CLEANUP_POLICIES = ("delete", "compact", "compact,delete")
#: Kafka's default ``max.compaction.lag.ms``: Long.MAX_VALUE, i.e. never forces a pass.
MAX_LAG_NEVER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TopicConfig:
    segment_bytes: int = 16 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    max_message_bytes: int = 1024 * 1024
    index_interval_bytes: int = 4096
    fsync: str = "always"
    flush_ms: int = 1000
    cleanup_policy: str = "delete"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = MAX_LAG_NEVER
    delete_retention_ms: int = 24 * 3600 * 1000

    def __post_init__(self) -> None:
        def positive(name: str, value: int, minimum: int = 1, maximum: int | None = None) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
                    maximum is not None and value > maximum):
                bound = f" and at most {maximum}" if maximum is not None else ""
                raise InvalidConfigError(f"{name} must be an integer >= {minimum}{bound}, got {value!r}")

        positive("segment.bytes", self.segment_bytes, 1, 2**31 - 1)
        positive("segment.ms", self.segment_ms, 1)
        positive("retention.ms", self.retention_ms, -1)
        positive("retention.bytes", self.retention_bytes, -1)
        positive("max.message.bytes", self.max_message_bytes, 64, 2**30)
        positive("index.interval.bytes", self.index_interval_bytes, 1)
        positive("flush.ms", self.flush_ms, 1)
        if self.fsync not in ("always", "interval", "never"):
            raise InvalidConfigError(f"fsync must be always, interval or never, got {self.fsync!r}")
        if self.cleanup_policy not in CLEANUP_POLICIES:
            raise InvalidConfigError(f"cleanup.policy must be delete, compact or compact,delete, "
                                     f"got {self.cleanup_policy!r}", key="cleanup.policy")
        ratio = self.min_cleanable_dirty_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise InvalidConfigError(f"min.cleanable.dirty.ratio must be a number from 0 to 1, got {ratio!r}",
                                     key="min.cleanable.dirty.ratio")
        positive("min.compaction.lag.ms", self.min_compaction_lag_ms, 0)
        positive("max.compaction.lag.ms", self.max_compaction_lag_ms, 1)
        positive("delete.retention.ms", self.delete_retention_ms, 0)

    @property
    def compact(self) -> bool:
        """``cleanup.policy`` includes ``compact``: keyed records only, and the cleaner runs."""
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        """``cleanup.policy`` includes ``delete``: retention.ms and retention.bytes apply."""
        return "delete" in self.cleanup_policy.split(",")

    def to_kafka(self) -> dict[str, object]:
        """The config under Kafka's key names (as stored in topic.json)."""
        values = asdict(self)
        return {key: values[attr] for key, attr in _KEYS.items()}

    @classmethod
    def from_kafka(cls, mapping: dict[str, object]) -> "TopicConfig":
        return cls().with_overrides(mapping)

    def with_overrides(self, mapping: dict[str, object]) -> "TopicConfig":
        changes = {}
        for key, raw in mapping.items():
            attr = _KEYS.get(key)
            if attr is None:
                known = ", ".join(sorted(_KEYS))
                raise InvalidConfigError(f"unknown topic config {key!r} (known: {known})", key=key)
            changes[attr] = _coerce(key, attr, raw)
        return replace(self, **changes)


def _coerce(key: str, attr: str, raw: object) -> object:
    kind = {f.name: f.type for f in fields(TopicConfig)}[attr]
    if kind == "str":
        text = str(raw).strip()
        # Kafka spells the policy list either way round ("delete,compact" is "compact,delete").
        return ",".join(sorted(text.replace(" ", "").split(","))) if key == "cleanup.policy" else text
    if kind == "float":
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        try:
            return float(str(raw).strip())
        except ValueError:
            raise InvalidConfigError(f"{key} must be a number, got {raw!r}", key=key) from None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise InvalidConfigError(f"{key} must be an integer, got {raw!r}", key=key) from None


def parse_config_pairs(pairs: list[str]) -> dict[str, str]:
    """``["retention.ms=1000", ...]`` as a dict; a pair without ``=`` is an error naming it."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidConfigError(f"config {pair!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def _validate_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{kind} name must not be empty")
    if name in (".", ".."):
        raise InvalidNameError(f"{kind} name {name!r} is not allowed")
    if len(name) > MAX_NAME:
        raise InvalidNameError(f"{kind} name is {len(name)} characters long; the limit is {MAX_NAME}")
    if not _NAME.match(name):
        bad = next(ch for ch in name if not _NAME.match(ch))
        raise InvalidNameError(
            f"{kind} name {name!r} contains {bad!r}; use only letters, digits, '.', '_' and '-'", name=name)
    if name.startswith("__"):
        raise InvalidNameError(f"{kind} name {name!r} starts with '__', which logbroker reserves", name=name)
    return name


def validate_topic_name(name: object) -> str:
    """Kafka's rule: [a-zA-Z0-9._-], 1 to 249 characters, not '.' or '..'; '__' prefix reserved."""
    return _validate_name("topic", name)


def validate_group_name(name: object) -> str:
    """Group names follow the topic rule, since they name directories too."""
    return _validate_name("group", name)


def check_max_block_ms(value: object) -> int:
    """``max.block.ms`` validated: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfigError(f"max.block.ms must be an integer >= 0, got {value!r}")
    return value
