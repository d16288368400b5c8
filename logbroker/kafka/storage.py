"""The server's view of a data directory: topics, partition logs and readers, shared by every
connection of one ``logbroker serve`` process.

Contract: the server is one more process over the same files and locks (FORMAT.md), so what it
writes is what ``logbroker consume`` reads and the other way round. Everything runs on the event
loop's thread, appends included: the library's open-file LRU (:mod:`logbroker.storage.handles`) is not
thread-safe, and an append in a worker thread could see its log closed by a fetch's eviction. An
append under ``fsync=always`` therefore holds the loop for its fdatasync (one per produced batch
and partition). Under ``fsync=interval`` a flush is scheduled ``flush.ms`` after an append, so
records become visible without waiting for the next one. Topic objects are cached by name and
dropped when the topic's directory changes identity (deleted and re-created by another process).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ..storage.config import validate_topic_name
from ..errors import LogBrokerError, TopicExistsError, UnknownTopicError
from ..storage.log import AppendResult
from ..storage.record import PendingRecord
from ..storage.datadir import resolve_data_dir
from ..storage.topic import Topic, list_topics

__all__ = ["Storage"]

log = logging.getLogger("logbroker.serve")

WATCH_INTERVAL_S = 0.05  # how soon a long poll sees an append made by another process


class Storage:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self._topics: dict[str, tuple[Topic, int]] = {}  # name -> (topic, inode of its directory)
        self._flush_due: set[tuple[str, int]] = set()
        #: set whenever this process appends, or the watcher sees another process's append to a
        #: watched partition; long-polling fetches wait on it.
        self.appended = asyncio.Event()
        self._watched: dict[tuple[str, int], list] = {}  # (topic, partition) -> [waiters, reader, last hw]
        self._watcher: asyncio.Task | None = None

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for key in list(self._watched):
            self._drop_watch(key)
        for topic, _ in self._topics.values():
            topic.close()
        self._topics.clear()

    # -- watching for other processes' appends -------------------------------------------------

    def watch(self, keys: list[tuple[str, int]]) -> None:
        """Long-polling fetches wait on these partitions: one task checks each one's high watermark
        every ``WATCH_INTERVAL_S`` for appends made by other processes (``logbroker publish``), however
        many connections wait on it, and sets :attr:`appended` when one moved."""
        for key in keys:
            entry = self._watched.get(key)
            if entry is None:
                entry = self._watched[key] = [0, None, None]
                entry[2] = self._high_watermark(key, entry)
            entry[0] += 1
        if self._watched and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())

    def unwatch(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            entry = self._watched.get(key)
            if entry is not None:
                entry[0] -= 1
                if entry[0] <= 0:
                    self._drop_watch(key)

    def _drop_watch(self, key: tuple[str, int]) -> None:
        entry = self._watched.pop(key)
        if entry[1] is not None:
            entry[1].close()

    def _high_watermark(self, key: tuple[str, int], entry: list) -> int | None:
        try:
            if entry[1] is None:
                entry[1] = self.topic(key[0]).reader(key[1])
            return entry[1].high_watermark()
        except LogBrokerError:
            if entry[1] is not None:
                entry[1].close()
                entry[1] = None
            return None

    async def _watch_loop(self) -> None:
        try:
            while self._watched:
                await asyncio.sleep(WATCH_INTERVAL_S)
                moved = False
                for key, entry in list(self._watched.items()):
                    hw = self._high_watermark(key, entry)
                    if hw != entry[2]:
                        entry[2], moved = hw, True
                if moved:
                    self._notify()
        finally:
            self._watcher = None

    def _notify(self) -> None:
        self.appended.set()
        self.appended = asyncio.Event()

    def list_topics(self) -> list[str]:
        return list_topics(self.data_dir)

    def topic(self, name: str) -> Topic:
        """The topic ``name``; raises UnknownTopicError (or InvalidNameError)."""
        cached = self._topics.get(name)
        if cached is None:
            validate_topic_name(name)  # before any path is made of it (a client's name may hold NUL)
        try:
            ino = os.stat(os.path.join(self.data_dir, name)).st_ino
        except (FileNotFoundError, NotADirectoryError):
            ino = None
        if cached is not None:
            if cached[1] == ino:
                return cached[0]
            cached[0].close()
            del self._topics[name]
        topic = Topic(self.data_dir, name)
        self._topics[name] = (topic, ino)
        return topic

    def forget(self, name: str) -> None:
        cached = self._topics.pop(name, None)
        if cached is not None:
            cached[0].close()

    def create_topic(self, name: str, partitions: int, config: dict[str, Any] | None = None) -> Topic:
        try:
            return Topic.create(self.data_dir, name, partitions, config)
        finally:
            self.forget(name)

    def ensure_topic(self, name: str, partitions: int) -> Topic:
        """The topic, created with ``partitions`` when missing (auto-create)."""
        try:
            return self.topic(name)
        except UnknownTopicError:
            try:
                self.create_topic(name, partitions)
            except TopicExistsError:
                pass  # another process created it meanwhile
            return self.topic(name)

    def delete_topic(self, name: str) -> None:
        topic = self.topic(name)
        self.forget(name)
        topic.delete()

    def append(self, topic: Topic, partition: int, records: list[PendingRecord]) -> list[AppendResult]:
        """Append under the topic's fsync policy: returns once the records are acknowledged."""
        results = topic.log(partition).append(records)
        if topic.config.fsync == "interval":
            key = (topic.name, partition)
            if key not in self._flush_due:
                self._flush_due.add(key)
                asyncio.get_running_loop().call_later(topic.config.flush_ms / 1000.0, self._flush, topic, partition)
        self._notify()
        return results

    def _flush(self, topic: Topic, partition: int) -> None:
        """Make an ``fsync=interval`` partition's appends durable and visible (scheduled by append)."""
        self._flush_due.discard((topic.name, partition))
        try:
            topic.log(partition).flush()
        except LogBrokerError as exc:
            log.warning("flush of %s-%d failed: %s", topic.name, partition, exc)
            return
        self._notify()
