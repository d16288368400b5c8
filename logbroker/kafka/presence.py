"""One kind of member per consumer group: Kafka clients (through this server) or logbroker's own
file-based consumers, never both (their assignments would not know of each other).

While a group has Kafka members, the server holds ``kafka.lock`` (an flock) in the group's
directory of each topic they subscribe to; logbroker consumers refuse to join such a group
(:func:`logbroker.groups.membership.kafka_clients_present`). A Kafka client's JoinGroup into a group with live
logbroker members on a subscribed topic is refused (INCONSISTENT_GROUP_PROTOCOL, and a log line
naming the group and topic). The server takes ``kafka.lock`` before it looks for members, and a
logbroker consumer registers before it looks at ``kafka.lock``, so two joiners of different kinds
cannot both stay. A server that dies releases its flocks with its process.
"""

from __future__ import annotations

import os
import struct

from ..storage import fsutil
from ..errors import GroupNotEmptyError, LogBrokerError
from ..groups.membership import KAFKA_LOCK, refuse_if_live
from ..groups.offsets import GroupPaths
from .storage import Storage

__all__ = ["GroupPresence", "subscribed_topics"]


def subscribed_topics(metadata: bytes) -> list[str]:
    """The topics of a consumer-protocol Subscription (int16 version, then an array of strings);
    [] when it does not parse (the broker never needs more of it)."""
    try:
        (count,) = struct.unpack_from(">i", metadata, 2)
        pos, topics = 6, []
        for _ in range(max(0, min(count, 10_000))):
            (n,) = struct.unpack_from(">h", metadata, pos)
            topics.append(metadata[pos + 2:pos + 2 + n].decode("utf-8"))
            pos += 2 + n
        return topics
    except (struct.error, UnicodeDecodeError):
        return []


class GroupPresence:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._held: dict[str, dict[str, fsutil.FileLock]] = {}  # group -> topic -> lock

    def _paths(self, group: str, topic: str) -> GroupPaths | None:
        try:
            return GroupPaths(self.storage.topic(topic).path, group)
        except LogBrokerError:
            return None  # no such topic (yet), or a name logbroker refuses: nothing to share

    def claim(self, group: str, protocols: list[tuple[str, bytes]]) -> str | None:
        """Mark ``group`` as Kafka clients' on the topics of a joining member; a message when it has
        live logbroker members on one of them (the join is refused), else None."""
        topics = set()
        for _, metadata in protocols:
            topics.update(subscribed_topics(metadata))
        held = self._held.setdefault(group, {})
        for topic in sorted(topics - held.keys()):
            paths = self._paths(group, topic)
            if paths is None:
                continue
            try:
                paths.ensure()
                # kafka.lock first, members second; a logbroker consumer registers first and looks for
                # kafka.lock second: whatever the interleaving, one of the two sees the other.
                lock = fsutil.FileLock(os.path.join(paths.root, KAFKA_LOCK))
                if not lock.acquire(blocking=False):
                    lock.close()
                    return f"group {group!r} on topic {topic!r} has Kafka clients of another logbroker serve process"
                try:
                    refuse_if_live(paths, lambda live: GroupNotEmptyError(
                        f"group {group!r} has logbroker consumers {live} on topic {topic!r}; a group has "
                        f"either Kafka clients or logbroker consumers, not both"))
                except GroupNotEmptyError as exc:
                    lock.close()
                    return exc.message
                held[topic] = lock
            except LogBrokerError as exc:
                return f"group {group!r} on topic {topic!r}: {exc}"
        return None

    def release(self, group: str) -> None:
        """The group has no Kafka member left: logbroker consumers may use it again."""
        for lock in self._held.pop(group, {}).values():
            lock.close()

    def close(self) -> None:
        for group in list(self._held):
            self.release(group)
