"""The one exception hierarchy of logbroker.

The library raises these; only the CLI turns them into one-line messages and exit codes.
Every error carries what it is about (topic, partition, offset, path, position) as attributes,
and its ``str()`` is one line a person can act on.

    LogBrokerError
    ├── InvalidNameError            a topic or group name breaks the naming rule
    ├── InvalidConfigError          an unknown config key or a bad value
    ├── DataDirError                the data directory is missing, not a directory, or unsafe
    ├── UnsafePathError             a symlink where a topic, partition or segment should be
    ├── TopicExistsError
    ├── UnknownTopicError
    │   └── TopicDeletedError       the topic this process opened was deleted (maybe re-created since)
    ├── UnknownPartitionError
    ├── UnknownGroupError
    ├── RecordTooLargeError         a record or batch over max.message.bytes
    ├── ProducerTimeoutError        buffer.memory stayed full for max.block.ms, or get(timeout) expired
    ├── InvalidRecordError          a value that is not JSON logbroker can store (NaN, bad key...)
    ├── OffsetOutOfRangeError       an offset below the log start offset or beyond the log end offset
    ├── CorruptionError             damaged bytes in the middle of a log, index or checkpoint
    ├── StorageError                an I/O failure while writing
    │   ├── DiskFullError           ENOSPC / EDQUOT / EFBIG: the append was undone
    │   └── FsyncError              fsync failed: the append was not acknowledged, the log is fenced
    ├── FencedError                 a partition refusing appends after an fsync failure
    ├── LockTimeoutError            a lock stayed held past max.block.ms (its holder may be stopped)
    ├── GroupError                  consumer-group coordination
    │   ├── CommitFailedError       a commit from a member that no longer owns the partition
    │   └── GroupNotEmptyError      an operation that needs a group with no live member
    └── ClusterError                a Kafka cluster refused a request or is not usable
        ├── ClusterUnreachableError no broker of --bootstrap-server answered in time
        └── MirrorError             a target partition that cannot hold an exact copy (mirror)
"""

from __future__ import annotations

__all__ = [
    "LogBrokerError",
    "InvalidNameError",
    "InvalidConfigError",
    "DataDirError",
    "UnsafePathError",
    "TopicExistsError",
    "UnknownTopicError",
    "TopicDeletedError",
    "UnknownPartitionError",
    "UnknownGroupError",
    "RecordTooLargeError",
    "ProducerTimeoutError",
    "InvalidRecordError",
    "OffsetOutOfRangeError",
    "CorruptionError",
    "StorageError",
    "DiskFullError",
    "FsyncError",
    "FencedError",
    "LockTimeoutError",
    "GroupError",
    "CommitFailedError",
    "GroupNotEmptyError",
    "ClusterError",
    "ClusterUnreachableError",
    "MirrorError",
]


class LogBrokerError(Exception):
    """Base of every error logbroker raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        for name, value in context.items():
            setattr(self, name, value)


class InvalidNameError(LogBrokerError, ValueError):
    exit_code = 2


class InvalidConfigError(LogBrokerError, ValueError):
    exit_code = 2


class DataDirError(LogBrokerError):
    exit_code = 2


class UnsafePathError(LogBrokerError):
    exit_code = 2


class TopicExistsError(LogBrokerError):
    pass


class UnknownTopicError(LogBrokerError):
    pass


class TopicDeletedError(UnknownTopicError):
    """The topic this handle opened is gone: deleted, and perhaps re-created under the same name.

    Carries ``topic``, ``partition`` (None when not about one) and ``topic_id`` (the id of the
    deleted topic, None for a topic created before topic ids). Nothing was written into or read
    from a topic created since under the same name.
    """


class UnknownPartitionError(LogBrokerError, ValueError):
    pass


class UnknownGroupError(LogBrokerError):
    pass


class RecordTooLargeError(LogBrokerError, ValueError):
    pass


class ProducerTimeoutError(LogBrokerError, TimeoutError):
    pass


class InvalidRecordError(LogBrokerError, ValueError):
    pass


class OffsetOutOfRangeError(LogBrokerError):
    pass


class CorruptionError(LogBrokerError):
    """Damaged bytes that are not a torn tail. ``exit_code`` 3 is what ``inspect --verify`` uses."""

    exit_code = 3


class StorageError(LogBrokerError, OSError):
    pass


class DiskFullError(StorageError):
    pass


class FsyncError(StorageError):
    pass


class FencedError(LogBrokerError):
    pass


class LockTimeoutError(LogBrokerError):
    """Gave up waiting for a partition or group lock after ``max.block.ms``; nothing was written."""


class GroupError(LogBrokerError):
    pass


class CommitFailedError(GroupError):
    pass


class GroupNotEmptyError(GroupError):
    pass


class ClusterError(LogBrokerError):
    """A Kafka cluster reached through ``--bootstrap-server`` refused a request or is not usable:
    the Kafka client library is not installed, ``--command-config`` is unreadable, or the cluster
    answered with an error (its name and message are in the text)."""

    exit_code = 2


class ClusterUnreachableError(ClusterError):
    """No broker of ``--bootstrap-server`` answered within the timeout; nothing was sent."""

    exit_code = 1


class MirrorError(ClusterError):
    """``logbroker mirror`` cannot keep the target an exact copy of the source: the target partition
    holds records mirror did not write, fewer partitions than the source, or the source lost records
    (retention, compaction) before they were copied. Carries ``topic`` and ``partition`` where one
    applies; nothing more was sent to that partition."""

    exit_code = 1
