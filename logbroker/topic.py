"""A topic: its directory, its ``topic.json`` and its partitions (FORMAT.md, "Directory tree").

Files owned: ``<data-dir>/<topic>/topic.json`` and the partition directories under it.

A topic appears atomically: it is built under ``__creating-<topic>-<hex>``, fsynced, and renamed
into place, so a crash never leaves half a topic and two processes creating the same topic at once
end with exactly one (the loser gets TopicExistsError). Deletion renames it to
``__deleting-<topic>-<hex>`` first, so it disappears at once, then removes the files.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time

import orjson

from . import fsutil
from .config import DEFAULT_MAX_BLOCK_MS, TopicConfig, validate_topic_name
from .errors import (CorruptionError, InvalidConfigError, TopicExistsError, UnknownPartitionError,
                     UnknownTopicError)
from .log import PartitionLog, partition_dir_name
from .reader import PartitionReader

__all__ = ["Topic", "TOPIC_FILE", "FORMAT_VERSION", "MAX_PARTITIONS"]

TOPIC_FILE = "topic.json"
FORMAT_VERSION = 1
MAX_PARTITIONS = 1024


def _meta_bytes(name: str, partitions: int, config: TopicConfig, created_ms: int) -> bytes:
    return orjson.dumps({"format": FORMAT_VERSION, "topic": name, "partitions": partitions,
                         "config": config.to_kafka(), "created_ms": created_ms}, option=orjson.OPT_INDENT_2)


class Topic:
    """An existing topic. Partition logs are opened lazily and cached per process."""

    def __init__(self, data_dir: str, name: str, max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS) -> None:
        validate_topic_name(name)
        self.name = name
        #: max.block.ms of the partition logs this handle opens (see PartitionLog.max_block_ms)
        self.max_block_ms = max_block_ms
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, name)
        fsutil.check_not_symlink(self.path, "topic directory")
        meta_path = os.path.join(self.path, TOPIC_FILE)
        try:
            with open(meta_path, "rb") as f:
                raw = f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise UnknownTopicError(f"topic {name!r} does not exist in {data_dir}", topic=name) from None
        try:
            meta = orjson.loads(raw)
            if meta.get("format") != FORMAT_VERSION:
                raise CorruptionError(f"{meta_path} has format {meta.get('format')!r}; this logbroker "
                                      f"reads format {FORMAT_VERSION}", path=meta_path)
            self.partitions = int(meta["partitions"])
            if not 1 <= self.partitions <= MAX_PARTITIONS:
                raise ValueError(f"partitions is {self.partitions}, not 1 to {MAX_PARTITIONS}")
            self.config = TopicConfig.from_kafka(meta.get("config", {}))
            self.created_ms = int(meta.get("created_ms", 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidConfigError) as exc:
            raise CorruptionError(f"{meta_path} is damaged: {exc}", path=meta_path) from None
        self._logs: dict[int, PartitionLog] = {}

    # -- creation and deletion ----------------------------------------------------------------

    @classmethod
    def create(cls, data_dir: str, name: str, partitions: int = 1,
               config: dict[str, object] | TopicConfig | None = None) -> "Topic":
        validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidConfigError(f"partitions must be an integer from 1 to {MAX_PARTITIONS}, got {partitions!r}")
        cfg = config if isinstance(config, TopicConfig) else TopicConfig().with_overrides(config or {})
        final = os.path.join(data_dir, name)
        fsutil.check_not_symlink(final, "topic directory")
        if os.path.lexists(final):
            raise TopicExistsError(f"topic {name!r} already exists", topic=name)
        folded = name.casefold()
        for other in os.listdir(data_dir):
            # Names that differ only in case are one directory on macOS and Windows.
            if other.casefold() == folded and os.path.isfile(os.path.join(data_dir, other, TOPIC_FILE)):
                raise TopicExistsError(f"topic {name!r} collides with the existing topic {other!r} "
                                       f"(names that differ only in case are refused)", topic=name)
        staging = os.path.join(data_dir, f"__creating-{name}-{secrets.token_hex(4)}")
        os.mkdir(staging, 0o755)
        try:
            fsutil.atomic_write(os.path.join(staging, TOPIC_FILE),
                                _meta_bytes(name, partitions, cfg, int(time.time() * 1000)))
            for p in range(partitions):
                os.mkdir(os.path.join(staging, partition_dir_name(name, p)), 0o755)
            fsutil.sync_dir(staging)
            try:
                os.rename(staging, final)
            except OSError:
                raise TopicExistsError(f"topic {name!r} already exists", topic=name) from None
            fsutil.sync_dir(data_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(data_dir, name)

    def delete(self) -> None:
        """Remove the topic and everything in it, committed offsets included."""
        self.close()
        doomed = os.path.join(self.data_dir, f"__deleting-{self.name}-{secrets.token_hex(4)}")
        fsutil.rename_durably(self.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        fsutil.sync_dir(self.data_dir)

    def alter(self, config: dict[str, object] | None = None, partitions: int | None = None) -> "Topic":
        """Change config keys and/or grow the partition count (Kafka never shrinks it)."""
        cfg = self.config.with_overrides(config or {})
        count = self.partitions
        if partitions is not None:
            if partitions < self.partitions:
                raise InvalidConfigError(
                    f"topic {self.name!r} has {self.partitions} partitions; the count can only grow "
                    f"(asked for {partitions})")
            if partitions > MAX_PARTITIONS:
                raise InvalidConfigError(f"partitions must be at most {MAX_PARTITIONS}")
            for p in range(self.partitions, partitions):
                path = self.partition_path(p)
                if not os.path.isdir(path):
                    fsutil.make_dir(path)
            count = partitions
        fsutil.atomic_write(os.path.join(self.path, TOPIC_FILE), _meta_bytes(self.name, count, cfg, self.created_ms))
        self.close()
        self.partitions, self.config = count, cfg
        return self

    # -- partitions ---------------------------------------------------------------------------

    def partition_path(self, partition: int) -> str:
        return os.path.join(self.path, partition_dir_name(self.name, partition))

    def check_partition(self, partition: int) -> int:
        if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < self.partitions:
            raise UnknownPartitionError(
                f"partition {partition!r} does not exist: topic {self.name!r} has partitions "
                f"0 to {self.partitions - 1}", topic=self.name, partition=partition)
        return partition

    def log(self, partition: int) -> PartitionLog:
        """The writable log of a partition (cached: one per process and partition)."""
        log = self._logs.get(partition)
        if log is None:
            self.check_partition(partition)
            log = PartitionLog(self.name, partition, self.partition_path(partition), self.config, self.max_block_ms)
            self._logs[partition] = log
        return log

    def reader(self, partition: int) -> PartitionReader:
        self.check_partition(partition)
        fsutil.check_not_symlink(self.partition_path(partition), "partition directory")
        return PartitionReader(self.name, partition, self.partition_path(partition),
                               repair=lambda: self.log(partition).recover())

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()
