"""The topics one :class:`~logbroker.clients.consumer.Consumer` reads, and what became of them.

A consumer opens each :class:`~logbroker.storage.topic.Topic` once, by name, and must notice two
changes made by other processes: partitions added (``topic.json`` rewritten; partitions only grow)
and the topic deleted, perhaps created again under the same name (FORMAT.md, "Topic identity"). It
then drops what it held of the old topic (its own business, in the consumer) and follows the new
one once :meth:`ConsumerTopics.recreated` reports it.
"""

from __future__ import annotations

import os
import time

from ..errors import UnknownTopicError
from ..groups.membership import CHECK_INTERVAL_S
from ..storage.topic import TOPIC_FILE, Topic

__all__ = ["ConsumerTopics"]


class ConsumerTopics:
    """The open topics of one consumer by name, and the deleted ones it looks for again.

    Contract: :meth:`get` opens a topic on first use (UnknownTopicError when there is none) and
    returns the same :class:`Topic` until :meth:`partition_count` replaces it with a fresh one
    (after ``topic.json`` changed) or :meth:`forget` drops it. :meth:`deleted` names the open topics
    that are no longer the topic under their name. A name given to :meth:`look_for` is looked up
    at most every ``CHECK_INTERVAL_S`` by :meth:`recreated`, which reports it once when a topic of
    that name exists again. Not thread-safe (the consumer's thread).
    """

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self._open: dict[str, Topic] = {}
        self._mtime: dict[str, int] = {}
        self._gone: dict[str, float] = {}  # deleted topics to follow when re-created: name -> next look

    def get(self, name: str) -> Topic:
        """The open topic ``name`` (opened now when it was not)."""
        t = self._open.get(name)
        if t is None:
            t = self._open[name] = Topic(self.data_dir, name)
            self._mtime[name] = _mtime(os.path.join(t.path, TOPIC_FILE))
        return t

    def partition_count(self, name: str) -> int:
        """The topic's partition count, re-read when topic.json changed (partitions only grow); the
        topic's deleted error when another topic has the name now."""
        t = self.get(name)
        mtime = _mtime(os.path.join(t.path, TOPIC_FILE))
        if mtime != self._mtime.get(name):
            fresh = Topic(self.data_dir, name)
            if fresh.identity.key != t.identity.key:
                fresh.close()
                raise t.identity.deleted_error()  # another topic under the name: the consumer follows it
            t.close()
            self._open[name] = t = fresh
            self._mtime[name] = mtime
        return t.partitions

    def is_current(self, name: str) -> bool:
        """Whether the open topic ``name`` is still the topic under that name."""
        return self._open[name].identity.current()

    def deleted(self) -> list[str]:
        """The open topics that were deleted (one ``stat`` each)."""
        return [name for name, t in self._open.items() if not t.identity.current()]

    def forget(self, name: str) -> Topic:
        """Stop holding the open topic ``name``; the caller closes it."""
        return self._open.pop(name)

    def look_for(self, name: str) -> None:
        """Report ``name`` through :meth:`recreated` once a topic of that name exists again."""
        self._gone[name] = 0.0

    def stop_looking(self, name: str) -> None:
        self._gone.pop(name, None)

    @property
    def looking(self) -> bool:
        return bool(self._gone)

    def recreated(self) -> list[tuple[str, Topic]]:
        """The names looked for that exist again, with their newly opened topics (each reported once)."""
        now = time.monotonic()
        found = []
        for name, when in list(self._gone.items()):
            if now < when:
                continue
            self._gone[name] = now + CHECK_INTERVAL_S
            try:
                t = self.get(name)
            except UnknownTopicError:
                continue  # not (yet) created again
            del self._gone[name]
            found.append((name, t))
        return found

    def close(self) -> None:
        for t in self._open.values():
            t.close()


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0
