"""The server's view of a data directory: topics, partition logs and readers, shared by every
connection of one ``logbroker serve`` process.

Contract: the server is one more process over the same files and locks (FORMAT.md), so what it
writes is what ``logbroker consume`` reads and the other way round. Everything runs on the event
loop's thread, appends included: the library's open-file LRU (:mod:`logbroker.handles`) is not
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

from ..broker import Broker
from ..errors import LogBrokerError, TopicExistsError, UnknownTopicError
from ..log import AppendResult
from ..record import PendingRecord
from ..topic import Topic

__all__ = ["Storage"]

log = logging.getLogger("logbroker.serve")


class Storage:
    def __init__(self, data_dir: str) -> None:
        self.broker = Broker(data_dir)
        self.data_dir = self.broker.data_dir
        self._topics: dict[str, tuple[Topic, int]] = {}  # name -> (topic, inode of its directory)
        self._flush_due: set[tuple[str, int]] = set()
        #: set whenever this process appends; long-polling fetches wait on it (other processes'
        #: appends are seen by polling the high watermark).
        self.appended = asyncio.Event()

    def close(self) -> None:
        for topic, _ in self._topics.values():
            topic.close()
        self._topics.clear()

    def list_topics(self) -> list[str]:
        return self.broker.list_topics()

    def topic(self, name: str) -> Topic:
        """The topic ``name``; raises UnknownTopicError (or InvalidNameError)."""
        cached = self._topics.get(name)
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
            return self.broker.create_topic(name, partitions, config)
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
        self.appended.set()
        self.appended = asyncio.Event()
        return results

    def _flush(self, topic: Topic, partition: int) -> None:
        """Make an ``fsync=interval`` partition's appends durable and visible (scheduled by append)."""
        self._flush_due.discard((topic.name, partition))
        try:
            topic.log(partition).flush()
        except LogBrokerError as exc:
            log.warning("flush of %s-%d failed: %s", topic.name, partition, exc)
            return
        self.appended.set()
        self.appended = asyncio.Event()
