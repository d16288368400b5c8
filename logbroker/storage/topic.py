"""A topic: its directory, its ``topic.json`` and its partitions (FORMAT.md, "Directory tree").

Files owned: ``<data-dir>/<topic>/topic.json`` and the partition directories under it.

A topic appears atomically: it is built under ``__creating-<topic>-<hex>``, fsynced, and renamed
into place, so a crash never leaves half a topic and two processes creating the same topic at once
end with exactly one (the loser gets TopicExistsError). Deletion renames it to
``__deleting-<topic>-<hex>`` first, so it disappears at once, then removes the files.

Identity (FORMAT.md, "Topic identity"): a topic has a random ``topic_id`` beside its name. A
:class:`Topic` pins the directory it opened (an ``O_DIRECTORY`` descriptor, so its inode cannot be
reused) and reads ``topic.json`` through it. :meth:`TopicIdentity.check` compares the inode now at
``<data-dir>/<topic>`` with the pinned one: one ``stat``. Writers check after taking the partition
lock, readers after opening their files, group operations after taking the group lock; a topic
directory renamed away never comes back, so a check that passes proves every file opened before it
belongs to the topic this process opened. Deletion and creation keep the check meaningful until the
lock is released: :func:`finish_deletions` takes and releases every partition and group lock of a
deleted topic before its files are removed, and creation runs it for its name first, so no topic can
appear under a name while a process that passed its check on the old one still holds a lock.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import time

import orjson

from . import fsutil
from .config import DEFAULT_MAX_BLOCK_MS, TopicConfig, validate_topic_name
from ..errors import (CorruptionError, InvalidConfigError, TopicDeletedError, TopicExistsError,
                     UnknownPartitionError, UnknownTopicError)
from .handles import OPEN_FILES
from .log import PartitionLog, partition_dir_name
from .reader import PartitionReader

log = logging.getLogger("logbroker")

__all__ = ["Topic", "TopicIdentity", "list_topics", "finish_deletions", "TOPIC_FILE", "FORMAT_VERSION", "MAX_PARTITIONS"]

TOPIC_FILE = "topic.json"
FORMAT_VERSION = 1
MAX_PARTITIONS = 1024


DELETING_PREFIX = "__deleting-"
_LOG_DESCRIPTORS = 5  # .lock, high-watermark, and the active segment's .log, .index and .timeindex


def _meta_bytes(name: str, partitions: int, config: TopicConfig, created_ms: int, topic_id: str | None) -> bytes:
    meta = {"format": FORMAT_VERSION, "topic": name, "partitions": partitions, "config": config.to_kafka(),
            "created_ms": created_ms}
    if topic_id is not None:
        meta["topic_id"] = topic_id
    return orjson.dumps(meta, option=orjson.OPT_INDENT_2)


def new_topic_id() -> str:
    """16 random bytes as Kafka prints a Uuid: URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


class TopicIdentity:
    """The topic directory a process opened, pinned by a descriptor; see the module docstring.

    ``check`` is the cheap test every writer and reader runs (one ``stat``): it raises
    TopicDeletedError when ``<data-dir>/<topic>`` is no longer the pinned directory. The descriptor
    is closed when the last holder drops the object, never before, so the inode number it pins
    cannot be given to a new topic directory while anything compares against it.
    """

    __slots__ = ("topic", "path", "topic_id", "fd", "key", "__weakref__")

    def __init__(self, topic: str, path: str) -> None:
        self.topic = topic
        self.path = path
        self.topic_id: str | None = None
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        st = os.fstat(self.fd)
        self.key = (st.st_dev, st.st_ino)

    def current(self) -> bool:
        """True while ``<data-dir>/<topic>`` is still the directory this process opened."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return (st.st_dev, st.st_ino) == self.key

    def check(self, partition: int | None = None) -> None:
        if not self.current():
            raise self.deleted_error(partition)

    def deleted_error(self, partition: int | None = None) -> TopicDeletedError:
        where = "" if partition is None else f"partition {self.topic}-{partition} is gone: "
        ident = f"topic id {self.topic_id}" if self.topic_id else "created before topic ids"
        again = " and created again" if os.path.isdir(self.path) else ""
        return TopicDeletedError(
            f"{where}topic {self.topic!r} ({ident}) was deleted{again} after this process opened it; "
            f"nothing is written into or read from a topic created since", topic=self.topic,
            partition=partition, topic_id=self.topic_id)

    def __del__(self, _close=os.close) -> None:  # os may be gone already at interpreter exit
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            _close(fd)


def list_topics(data_dir: str) -> list[str]:
    """The topics in ``data_dir``, sorted: its directories holding a topic file (none when the data
    directory is missing). Names starting with ``__`` (topics being deleted) are not topics."""
    try:
        names = os.listdir(data_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("__") and os.path.isfile(os.path.join(data_dir, n, TOPIC_FILE)))


def finish_deletions(data_dir: str, name: str | None = None, wait: bool = True) -> list[str]:
    """Finish every deletion of ``name`` (default: of any topic) left in ``data_dir``.

    For each ``__deleting-<topic>-<hex>``: take and release each partition lock and each group lock
    in it (an append or a group change that passed its identity check before the rename finishes
    first; every later one fails its check), then remove the files. Any process may do it, any
    number of times: a deletion killed half-way is finished by the next one. With ``wait=False`` a
    deletion whose locks are held is left for later (logged). Returns the names done.
    """
    done = []
    try:
        entries = sorted(os.listdir(data_dir))
    except FileNotFoundError:
        return done  # no data directory: nothing was ever deleted in it
    for entry in entries:
        if not entry.startswith(DELETING_PREFIX):
            continue
        topic = entry[len(DELETING_PREFIX):].rpartition("-")[0]
        if name is not None and topic != name:
            continue
        doomed = os.path.join(data_dir, entry)
        if os.path.islink(doomed) or not os.path.isdir(doomed):
            continue
        busy = None
        for lock_path in _lock_files(doomed, topic):
            try:
                lock = fsutil.FileLock(lock_path)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed meanwhile by another process finishing the same deletion
            try:
                if not lock.acquire(blocking=wait):
                    busy = lock_path
                    break
            finally:
                lock.close()
        if busy is not None:
            log.warning("deleted topic %r: %s is still held by a process that opened the topic; its files "
                        "are removed when it lets go (by the next creation of %r, or `logbroker recover`)",
                        topic, busy, topic)
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        done.append(entry)
    if done:
        fsutil.sync_dir(data_dir)
    return done


def _holds_records(directory: str) -> bool:
    try:
        return any(e.endswith(".log") and os.path.getsize(os.path.join(directory, e)) > 0
                   for e in os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return False


def _lock_files(topic_dir: str, topic: str) -> list[str]:
    """The partition locks and group locks under a topic directory (only the names that exist)."""
    paths = []
    prefix = f"{topic}-"
    groups = os.path.join(topic_dir, "groups")
    for entry in sorted(os.listdir(topic_dir)):
        if entry.startswith(prefix) and entry[len(prefix):].isdigit():
            paths.append(os.path.join(topic_dir, entry, ".lock"))
    try:
        paths.extend(os.path.join(groups, g, "group.lock") for g in sorted(os.listdir(groups)))
    except (FileNotFoundError, NotADirectoryError):
        pass
    return [p for p in paths if os.path.lexists(p) and not os.path.islink(p)]


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
            self.identity = TopicIdentity(name, self.path)
            # Read through the pinned directory: the id read is the id of the directory pinned.
            fd = os.open(TOPIC_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.identity.fd)
            with open(fd, "rb") as f:
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
            topic_id = meta.get("topic_id")
            if topic_id is not None and not isinstance(topic_id, str):
                raise ValueError(f"topic_id is {topic_id!r}, not a string")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidConfigError) as exc:
            raise CorruptionError(f"{meta_path} is damaged: {exc}", path=meta_path) from None
        # A topic created before topic ids has none; the pinned directory protects it all the same.
        self.topic_id: str | None = topic_id
        self.identity.topic_id = topic_id
        self._check_no_orphans(meta_path)
        self._logs: dict[int, PartitionLog] = {}
        self._fenced: dict[int, str] = {}  # why a partition closed for want of descriptors was fenced

    def _check_no_orphans(self, meta_path: str) -> None:
        """Refuse a topic whose directory holds partitions past its count (Kafka never shrinks one):
        reading it would silently leave their records out."""
        prefix = f"{self.name}-"
        extra = sorted(int(e[len(prefix):]) for e in os.listdir(self.identity.fd)
                       if e.startswith(prefix) and e[len(prefix):].isdigit()
                       and int(e[len(prefix):]) >= self.partitions)
        # Empty ones are harmless, and are what `alter` leaves for an instant (it creates the new
        # directories before it rewrites topic.json), so only partitions holding records count.
        extra = [p for p in extra if _holds_records(self.partition_path(p))]
        if extra:
            found = ", ".join(partition_dir_name(self.name, p) for p in extra)
            raise CorruptionError(
                f"{meta_path} says {self.partitions} partitions but partition directories {found} exist: "
                f"a partition count can never be lowered (their records would be lost); put back "
                f"\"partitions\": {extra[-1] + 1}", path=meta_path, topic=self.name, partitions=extra)

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
        # A deleted topic of this name may still have a writer inside its last append (it passed
        # its identity check before the rename): wait for it, so that while any process holds a lock
        # it checked, the name points at that topic or at nothing.
        finish_deletions(data_dir, name)
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
                                _meta_bytes(name, partitions, cfg, int(time.time() * 1000), new_topic_id()))
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
        """Remove the topic and everything in it, committed offsets included.

        The rename makes it disappear at once: from then on every process that opened it fails its
        identity check (TopicDeletedError). An append that passed its check just before finishes
        into the deleted topic (it happened before the deletion); :func:`finish_deletions` waits for
        it before removing the files.
        """
        self.close()
        self.identity.check()
        doomed = os.path.join(self.data_dir, f"{DELETING_PREFIX}{self.name}-{secrets.token_hex(4)}")
        fsutil.rename_durably(self.path, doomed)
        # The topic is gone now; its files go at once unless a writer is inside an append (then the
        # next creation of the name, or recovery, waits for it and removes them).
        finish_deletions(self.data_dir, self.name, wait=False)

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
        self.identity.check()
        fsutil.atomic_write(os.path.join(self.path, TOPIC_FILE),
                            _meta_bytes(self.name, count, cfg, self.created_ms, self.topic_id))
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

    def open_partitions(self) -> list[int]:
        """The partitions whose logs this handle has open now."""
        return list(self._logs)

    def log(self, partition: int) -> PartitionLog:
        """The writable log of a partition (cached: one per process and partition, within the
        process's budget of open files: the least recently used are closed, and made anew here)."""
        log = self._logs.get(partition)
        if log is None:
            self.check_partition(partition)
            self.identity.check(partition)
            log = PartitionLog(self.name, partition, self.partition_path(partition), self.config, self.identity,
                               max_block_ms=self.max_block_ms)
            fenced = self._fenced.get(partition)
            if fenced:
                log.fence(fenced)  # closing a fenced log for want of descriptors does not unfence it
            self._logs[partition] = log
        OPEN_FILES.touch(log, _LOG_DESCRIPTORS, lambda: self._evict(partition, log))
        return log

    def _evict(self, partition: int, log: PartitionLog) -> None:
        if log.fenced:
            self._fenced[partition] = log.fenced
        if self._logs.get(partition) is log:
            del self._logs[partition]
        log.close()

    def reader(self, partition: int) -> PartitionReader:
        self.check_partition(partition)
        self.identity.check(partition)
        fsutil.check_not_symlink(self.partition_path(partition), "partition directory")
        return PartitionReader(self.name, partition, self.partition_path(partition), self.identity,
                               repair=lambda: self.log(partition).recover())

    def close(self) -> None:
        for log in self._logs.values():
            OPEN_FILES.forget(log)
            log.close()
        self._logs.clear()
