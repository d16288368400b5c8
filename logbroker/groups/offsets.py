"""Committed offsets of one consumer group on one topic (FORMAT.md, "Committed offsets and consumer groups").

Files owned, under ``<topic>/groups/<group>/``:

- ``offsets``: one checksummed JSON line holding every committed offset of the group on this topic,
  replaced atomically (:func:`logbroker.storage.fsutil.atomic_write`) on each commit;
- ``offsets.prev``: the generation before it, the fallback when ``offsets`` is damaged;
- ``group.lock``: the group lock. Every writer of ``offsets`` (and of the group's ``generation``, see
  :mod:`logbroker.groups.membership`) holds it, so read-modify-write cycles never interleave.

Rules:

- A committed offset is the **next offset to read** (Kafka's rule: last processed + 1).
- A commit is durable when :meth:`OffsetStore.commit` returns (two fsyncs and a directory fsync).
- Commits never move a partition backwards; only an explicit reset (``allow_backwards=True``) does.
  A backwards commit is skipped for that partition and logged, not silently applied.
- Readers take no lock: ``os.replace`` makes them see the old file or the new one, never a mix.
- Damage is never read as "no commit": a damaged ``offsets`` falls back to ``offsets.prev`` with a
  warning; when that is damaged too (or missing), :class:`~logbroker.errors.CorruptionError`.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import orjson

from ..storage import fsutil
from ..storage.config import validate_group_name
from ..storage.framing import check_framed, frame
from ..errors import CorruptionError, GroupError, LockTimeoutError

__all__ = ["CommittedOffset", "OffsetStore", "GroupPaths", "topic_groups", "OFFSETS_FORMAT", "encode_line", "decode_line"]

OFFSETS_FORMAT = 1
GROUPS_DIR = "groups"

log = logging.getLogger("logbroker")


def topic_groups(topic_path: str) -> list[str]:
    """The consumer groups with state in the topic directory ``topic_path``, sorted."""
    try:
        names = os.listdir(os.path.join(topic_path, GROUPS_DIR))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("__"))


def encode_line(body: dict) -> bytes:
    """``{"crc":"HEX8",<body>}`` + LF: a framed line (:mod:`logbroker.storage.framing`), the same
    framing as a record line, so one rule checks every small file logbroker writes."""
    return frame(orjson.dumps(body)[1:])  # without the opening brace: the prefix supplies it


def decode_line(data: bytes) -> dict | None:
    """The body of a line written by :func:`encode_line`; None when it is damaged in any way."""
    line = data.rstrip(b" \n")
    try:
        check_framed(line)
    except ValueError:
        return None
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    body.pop("crc", None)
    return body


class GroupLockBusy(GroupError, LockTimeoutError):
    """The group lock stayed taken past a caller's deadline (its holder may be stopped)."""


class GroupPaths:
    """Where the files of ``group`` on the topic in ``topic_dir`` live."""

    __slots__ = ("topic_dir", "group", "root", "offsets", "prev", "lock", "generation", "members", "partitions",
                 "identity")

    def __init__(self, topic_dir: str, group: str, identity=None) -> None:
        validate_group_name(group)
        # The topic's identity (topic.TopicIdentity), checked under the group lock: a group change of
        # a deleted topic fails with TopicDeletedError instead of landing in one created since.
        self.identity = identity
        self.topic_dir = topic_dir
        self.group = group
        self.root = os.path.join(topic_dir, GROUPS_DIR, group)
        self.offsets = os.path.join(self.root, "offsets")
        self.prev = os.path.join(self.root, "offsets.prev")
        self.lock = os.path.join(self.root, "group.lock")
        self.generation = os.path.join(self.root, "generation")
        self.members = os.path.join(self.root, "members")
        self.partitions = os.path.join(self.root, "partitions")

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def ensure(self) -> None:
        """Create the group's directories (fsyncing each parent); safe against concurrent creators."""
        for path in (os.path.dirname(self.root), self.root, self.members, self.partitions):
            if not os.path.isdir(path):
                fsutil.check_not_symlink(path, "group directory")
                try:
                    fsutil.make_dir(path)
                except FileExistsError:
                    pass

    def partition_lock(self, partition: int) -> str:
        return os.path.join(self.partitions, f"{partition}.lock")

    @contextmanager
    def locked(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the group lock (a fresh descriptor, so it never nests with another holder's).

        With ``timeout_s``, give up after that long with :class:`GroupLockBusy`: a member must not
        freeze inside ``poll`` because another process was stopped (Ctrl+Z, SIGSTOP) holding it.
        """
        try:
            lock = fsutil.FileLock(self.lock, record_holder=True)
        except (FileNotFoundError, NotADirectoryError):
            if self.identity is not None:
                self.identity.check()
            raise
        try:
            lock.acquire_within(timeout_s, f"the lock of group {self.group!r}", error=GroupLockBusy, limit_name=None)
            if self.identity is not None:
                self.identity.check()
            yield
        finally:
            lock.close()


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """One partition's committed offset and who committed it.

    ``generation`` is the group generation the committing member belonged to; ``member`` its id
    (``"reset"`` for the reset tool); ``timestamp`` the wall-clock time of the commit in ms;
    ``metadata`` the string a Kafka client committed with the offset (OffsetCommit), "" when none.
    """

    offset: int
    generation: int = 0
    member: str = ""
    timestamp: int = 0
    metadata: str = ""


def _entry(c: CommittedOffset) -> dict:
    """One partition's entry in ``offsets``: ``metadata`` only when not empty (FORMAT.md)."""
    entry = {"offset": c.offset, "generation": c.generation, "member": c.member, "timestamp": c.timestamp}
    if c.metadata:
        entry["metadata"] = c.metadata
    return entry


class OffsetStore:
    """The committed offsets of ``paths.group`` for one topic. See the module docstring."""

    def __init__(self, paths: GroupPaths, topic: str) -> None:
        self.paths = paths
        self.topic = topic

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> dict[int, CommittedOffset]:
        """Every committed offset, by partition ({} when the group never committed)."""
        return self._load()[0]

    def committed(self, partition: int) -> int | None:
        c = self.read().get(partition)
        return None if c is None else c.offset

    def _load(self) -> tuple[dict[int, CommittedOffset], bytes | None, int]:
        """(offsets, bytes of a valid current file or None, sequence number)."""
        current = fsutil.read_file(self.paths.offsets)
        problem = None
        if current is not None:
            try:
                offsets, seq = self._decode(current, self.paths.offsets)
                return offsets, current, seq
            except CorruptionError as exc:
                problem = exc
        previous = fsutil.read_file(self.paths.prev)
        if current is None and previous is None:
            return {}, None, 0
        if previous is not None:
            try:
                offsets, seq = self._decode(previous, self.paths.prev)
            except CorruptionError as exc:
                raise CorruptionError(
                    f"committed offsets of group {self.paths.group!r} on topic {self.topic!r} are damaged: "
                    f"{problem or self.paths.offsets + ' is missing'}; and the previous generation too: {exc}. "
                    f"{self._way_out()}",
                    path=self.paths.offsets, topic=self.topic, group=self.paths.group) from None
            log.warning("%s; using the previous generation %s (commit sequence %d)",
                        problem or f"{self.paths.offsets} is missing", self.paths.prev, seq)
            return offsets, None, seq
        raise CorruptionError(
            f"{problem}; there is no previous generation {self.paths.prev} to fall back to. {self._way_out()}",
            path=self.paths.offsets, topic=self.topic, group=self.paths.group)

    def _decode(self, data: bytes, path: str) -> tuple[dict[int, CommittedOffset], int]:
        body = decode_line(data)
        why = None
        if body is None:
            why = "checksum mismatch, truncated or not a committed-offsets line"
        elif body.get("format") != OFFSETS_FORMAT:
            why = f"format {body.get('format')!r}; this logbroker reads format {OFFSETS_FORMAT}"
        elif body.get("topic") != self.topic or body.get("group") != self.paths.group:
            why = f"it belongs to group {body.get('group')!r} of topic {body.get('topic')!r}"
        if why is None:
            try:
                offsets = {int(p): CommittedOffset(int(v["offset"]), int(v.get("generation", 0)),
                                                   str(v.get("member", "")), int(v.get("timestamp", 0)),
                                                   str(v.get("metadata", "")))
                           for p, v in body["offsets"].items()}
                if any(p < 0 or c.offset < 0 for p, c in offsets.items()):
                    raise ValueError("negative partition or offset")
                return offsets, int(body.get("seq", 0))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                why = f"bad entry: {exc}"
        raise CorruptionError(f"committed offsets file {path} is damaged ({why})", path=path)

    # -- writing ------------------------------------------------------------------------------

    def commit(self, changes: dict[int, CommittedOffset], allow_backwards: bool = False) -> dict[int, CommittedOffset]:
        """Merge ``changes`` into the committed offsets, durably. The caller holds the group lock.

        Returns the offsets now committed. A change below the committed offset is skipped (and
        logged) unless ``allow_backwards``, which only the reset tool sets.
        """
        self._remove_stale_temp_files()
        try:
            offsets, current_bytes, seq = self._load()
        except CorruptionError:
            if not allow_backwards:
                raise
            # A reset replaces offsets nobody can read (both generations damaged): the way out.
            log.warning("committed offsets of group %r on topic %r are damaged; the reset overwrites them",
                        self.paths.group, self.topic)
            offsets, current_bytes, seq = {}, None, 0
        merged = dict(offsets)
        for partition, change in changes.items():
            old = merged.get(partition)
            if old is not None and change.offset < old.offset and not allow_backwards:
                log.warning("commit of offset %d for %s-%d by %s skipped: group %r already committed %d "
                            "and commits never go backwards (reset the group's offsets to move it back)",
                            change.offset, self.topic, partition, change.member or "?", self.paths.group,
                            old.offset)
                continue
            merged[partition] = change
        if current_bytes is not None and all(offsets.get(p) is not None and offsets[p].offset == merged[p].offset
                                             and offsets[p].metadata == merged[p].metadata for p in merged):
            return offsets  # nothing moved: no rewrite (an idle auto-commit costs no fsync)
        body = {"format": OFFSETS_FORMAT, "topic": self.topic, "group": self.paths.group, "seq": seq + 1,
                "offsets": {str(p): _entry(c) for p, c in sorted(merged.items())}}
        if current_bytes is not None:
            # Keep the generation we are about to replace; a damaged one is never copied over a good prev.
            fsutil.atomic_write(self.paths.prev, current_bytes)
        fsutil.atomic_write(self.paths.offsets, encode_line(body))
        return merged

    def repair(self) -> tuple[str | None, str | None]:
        """(what was repaired, what cannot be) for this group's offsets files. The caller holds the
        group lock. A damaged or missing ``offsets`` with a sound ``offsets.prev`` is restored from it;
        with no sound generation left, the problem is named with the commands that get out of it."""
        current = fsutil.read_file(self.paths.offsets)
        if current is not None:
            try:
                self._decode(current, self.paths.offsets)
                return None, None
            except CorruptionError:
                pass
        previous = fsutil.read_file(self.paths.prev)
        if current is None and previous is None:
            return None, None  # never committed
        what = "damaged" if current is not None else "missing"
        if previous is not None:
            try:
                self._decode(previous, self.paths.prev)
            except CorruptionError:
                previous = None
        if previous is not None:
            fsutil.atomic_write(self.paths.offsets, previous)
            return (f"restored the committed offsets of group {self.paths.group!r} from {self.paths.prev} "
                    f"({self.paths.offsets} was {what}; the last commit before it is lost)"), None
        return None, (f"committed offsets of group {self.paths.group!r} on topic {self.topic!r} are {what} and "
                      f"there is no sound previous generation. {self._way_out()}")

    def _way_out(self) -> str:
        return (f"`logbroker groups reset-offsets {self.paths.group} --topic {self.topic} --to-earliest --execute` "
                f"(or --to-latest, --to-offset N) rewrites them; `logbroker groups delete {self.paths.group}` "
                f"removes the group")

    def _remove_stale_temp_files(self) -> None:
        """Under the group lock no replace is in flight, so any ``*.tmp`` here is a dead writer's."""
        try:
            names = os.listdir(self.paths.root)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(fsutil.TMP_SUFFIX):
                fsutil.remove_file(os.path.join(self.paths.root, name))


