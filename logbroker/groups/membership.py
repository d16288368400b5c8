"""Consumer groups without a server: membership, generations, assignment and partition ownership.

Files owned (FORMAT.md, "Committed offsets and consumer groups" defines their bytes and rules):
``<topic>/groups/<group>/members/<id>.lock`` (flock held for the member's life, heartbeat inside),
``generation`` (the live member list, replaced under ``group.lock``) and ``partitions/<p>.lock``
(ownership flock, owner id inside).

Liveness: a member is live iff its lock is held (kill -9 releases it at once) and its heartbeat, on
this boot, is younger than its ``session.timeout.ms`` (a SIGSTOPped member keeps its lock but its
heartbeat ages). Each member, on every poll: drops everything and rejoins when its own heartbeat is
stale; at most every :data:`CHECK_INTERVAL_S`, scans the members, writes generation N+1 when the live
set changed, and applies Kafka's RangeAssignor over the generation's members — revoking (after the
consumer's commit) what moved away, acquiring with a non-blocking flock what it gained, waiting for a
live previous owner and replacing the lock file of an expired one (which fences it: it keeps a lock
on an unlinked inode).

A commit is accepted, under the group lock, only when the member's heartbeat is fresh, it is in the
current generation and it holds the lock of the inode now at ``partitions/<p>.lock``; otherwise
:class:`~logbroker.errors.CommitFailedError`. So two live members never own one partition, and a
member stalled past its session timeout cannot commit over its successor.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Callable

from ..storage import fsutil
from ..errors import CommitFailedError, CorruptionError, GroupError, LogBrokerError, TopicDeletedError
from .offsets import GroupLockBusy, CommittedOffset, GroupPaths, OffsetStore, decode_line, encode_line

__all__ = ["GroupMember", "MemberStatus", "Heartbeat", "Generation", "range_assign", "scan_members", "refuse_if_live",
           "read_generation", "partition_owner", "DEFAULT_SESSION_TIMEOUT_MS", "CHECK_INTERVAL_S", "boot_id"]

#: Kafka's default is 45 s (10 s before 3.0), sized for networks and GC pauses. On one machine a
#: member that stops heartbeating is stopped or wedged; 10 s keeps takeover of a stalled member's
#: partitions reasonably quick while tolerating a busy laptop. (kill -9 is detected at once anyway.)
DEFAULT_SESSION_TIMEOUT_MS = 10_000
#: How often a member scans the members directory (so takeover after kill -9 is ~0.1-0.2 s).
CHECK_INTERVAL_S = 0.1
_CHECK_LOCK_WAIT_S = 0.05  # how long a poll waits for the group lock before trying again next poll
HEARTBEAT_SIZE = 512
JOINING_SUFFIX = ".joining"
MEMBER_SUFFIX = ".lock"
_STALE_JOINING_S = 60.0

log = logging.getLogger("logbroker")
_BOOT_ID: str | None = None


def boot_id() -> str:
    """This boot's id: monotonic clock values are only comparable within one boot."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as f:
                _BOOT_ID = f.read().decode("ascii").strip()
        except OSError:
            _BOOT_ID = "unknown"
    return _BOOT_ID


@dataclass(frozen=True, slots=True)
class Heartbeat:
    member: str
    pid: int
    host: str
    boot_id: str
    session_timeout_ms: int
    monotonic_ns: int  # time.monotonic_ns() at the heartbeat (system-wide clock on Linux)
    wall_ms: int  # for people reading the file; never used for liveness
    client_id: str = ""

    def encode(self) -> bytes:
        line = encode_line({"member": self.member, "pid": self.pid, "host": self.host, "boot_id": self.boot_id,
                            "session_timeout_ms": self.session_timeout_ms, "monotonic_ns": self.monotonic_ns,
                            "wall_ms": self.wall_ms, "client_id": self.client_id})
        if len(line) > HEARTBEAT_SIZE:
            raise GroupError(f"heartbeat of member {self.member} is {len(line)} bytes; the file holds {HEARTBEAT_SIZE}")
        return line[:-1].ljust(HEARTBEAT_SIZE - 1, b" ") + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> "Heartbeat | None":
        body = decode_line(data)
        if body is None:
            return None
        try:
            return cls(str(body["member"]), int(body["pid"]), str(body["host"]), str(body["boot_id"]),
                       int(body["session_timeout_ms"]), int(body["monotonic_ns"]), int(body["wall_ms"]),
                       str(body.get("client_id", "")))
        except (KeyError, TypeError, ValueError):
            return None

    def age_ms(self, now_ns: int) -> float:
        return (now_ns - self.monotonic_ns) / 1e6

    def fresh(self, now_ns: int) -> bool:
        return self.boot_id == boot_id() and self.age_ms(now_ns) <= self.session_timeout_ms


def read_heartbeat(path: str) -> Heartbeat | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        for _ in range(20):  # a read racing the member's pwrite is retried
            hb = Heartbeat.decode(os.pread(fd, HEARTBEAT_SIZE, 0))
            if hb is not None:
                return hb
        return None
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class MemberStatus:
    member: str
    state: str  # "live", "expired" (lock held, heartbeat stale) or "dead" (file removed)
    heartbeat: Heartbeat | None

    @property
    def live(self) -> bool:
        return self.state == "live"


def scan_members(paths: GroupPaths, now_ns: int | None = None, skip: str | None = None) -> list[MemberStatus]:
    """Every member file's status, sorted by id; files of dead members are deleted on the way."""
    try:
        names = os.listdir(paths.members)
    except FileNotFoundError:
        return []
    now_ns = time.monotonic_ns() if now_ns is None else now_ns
    out = []
    for name in sorted(names):
        path = os.path.join(paths.members, name)
        if name.endswith(JOINING_SUFFIX):
            _remove_stale_joining(path)
            continue
        if not name.endswith(MEMBER_SUFFIX):
            continue
        member = name[:-len(MEMBER_SUFFIX)]
        if member == skip:
            continue
        probe = fsutil.try_lock_path(path)
        if probe is not None:
            # Nobody holds it: its member died (kill -9 releases flock at once). Never comes back.
            fsutil.remove_file(path)
            probe.close()
            out.append(MemberStatus(member, "dead", None))
            continue
        hb = read_heartbeat(path)
        out.append(MemberStatus(member, "live" if hb is not None and hb.fresh(now_ns) else "expired", hb))
    return out


#: In a group's directory, held (flock) by ``logbroker serve`` while Kafka clients are members.
KAFKA_LOCK = "kafka.lock"


def refuse_if_live(paths: GroupPaths, refusal: Callable[[list[str]], LogBrokerError]) -> None:
    """Raise ``refusal(ids)`` when the group has live members on this topic (``ids``: theirs, sorted).

    The one check behind every change refused while a member is live (deleting a group, resetting
    or committing offsets from outside the group, a Kafka client taking the group): hold the group
    lock (``paths.locked()``) across it and the change, so that no member registers in between
    (``logbroker serve`` holds the group's ``kafka.lock`` instead, which members look for after
    registering).
    """
    live = [m.member for m in scan_members(paths) if m.live]
    if live:
        raise refusal(live)


def kafka_clients_present(paths: GroupPaths) -> bool:
    """Whether a ``logbroker serve`` process has Kafka clients in this group (holds ``kafka.lock``)."""
    path = os.path.join(paths.root, KAFKA_LOCK)
    if not os.path.exists(path):
        return False
    probe = fsutil.try_lock_path(path)
    if probe is None:
        return True
    probe.close()
    return False


def _remove_stale_joining(path: str) -> None:
    try:
        if time.time() - os.stat(path).st_mtime < _STALE_JOINING_S:
            return
    except FileNotFoundError:
        return
    probe = fsutil.try_lock_path(path)
    if probe is not None:
        fsutil.remove_file(path)
        probe.close()


@dataclass(frozen=True, slots=True)
class Generation:
    generation: int
    members: tuple[str, ...]


def read_generation(paths: GroupPaths) -> Generation:
    """The group's generation; generation 0 with no members when none was written yet.

    A damaged file is derived state: it is reported and treated as generation 0 (the next change
    rewrites it); fencing does not depend on its number, only on its member list and the locks.
    """
    try:
        with open(paths.generation, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Generation(0, ())
    body = decode_line(data)
    try:
        return Generation(int(body["generation"]), tuple(str(m) for m in body["members"]))
    except (TypeError, KeyError, ValueError):
        log.warning("%s is damaged; the group rebuilds it at the next membership check", paths.generation)
        return Generation(0, ("<damaged>",))


def write_generation(paths: GroupPaths, generation: Generation) -> None:
    """Replace the generation file. The caller holds the group lock."""
    fsutil.atomic_write(paths.generation, encode_line({"generation": generation.generation,
                                                       "members": list(generation.members)}))


def range_assign(members: list[str] | tuple[str, ...], partitions: int) -> dict[str, list[int]]:
    """Kafka's RangeAssignor for one topic: members sorted by id take consecutive ranges of
    floor(P/N) partitions, the first P mod N of them one more."""
    ids = sorted(members)
    out: dict[str, list[int]] = {}
    if not ids:
        return out
    share, extra = divmod(partitions, len(ids))
    start = 0
    for i, member in enumerate(ids):
        count = share + (1 if i < extra else 0)
        out[member] = list(range(start, start + count))
        start += count
    return out


def partition_owner(paths: GroupPaths, partition: int) -> str | None:
    """The member id written in a partition's ownership lock, if that lock is held; else None."""
    path = paths.partition_lock(partition)
    if not os.path.exists(path):
        return None
    probe = fsutil.try_lock_path(path)
    if probe is not None:
        probe.close()
        return None
    try:
        with open(path, "rb") as f:
            return f.read(1024).decode("utf-8", "replace").strip() or None
    except FileNotFoundError:
        return None


class GroupMember:
    """One consumer's membership in one group for one topic. Not thread-safe.

    ``partitions_fn`` returns the topic's current partition count. ``on_revoke(partitions)`` is called
    before the locks of partitions that move away are released (the consumer commits there).
    """

    def __init__(self, paths: GroupPaths, topic: str, partitions_fn: Callable[[], int], member_id: str,
                 session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS, client_id: str = "",
                 on_revoke: Callable[[list[int]], None] | None = None) -> None:
        self.paths = paths
        self.topic = topic
        self.member_id = member_id
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.store = OffsetStore(paths, topic)
        self.generation = 0
        self._partitions_fn = partitions_fn
        self._on_revoke = on_revoke
        self._session_ns = session_timeout_ms * 1_000_000
        self._hb_interval_ns = max(20, min(1000, session_timeout_ms // 5)) * 1_000_000
        self._lock: fsutil.FileLock | None = None
        self._hb_ns = 0
        self._last_check = 0
        self._held: dict[int, fsutil.FileLock] = {}
        self._path = os.path.join(paths.members, member_id + MEMBER_SUFFIX)

    @staticmethod
    def new_member_id(client_id: str = "consumer") -> str:
        return f"{client_id}-{secrets.token_hex(8)}"

    # -- membership ---------------------------------------------------------------------------

    def join(self) -> None:
        self.paths.ensure()
        joining = os.path.join(self.paths.members, self.member_id + JOINING_SUFFIX)
        lock = fsutil.FileLock(joining)
        if not lock.acquire(blocking=False):
            lock.close()
            raise CommitFailedError(f"member id {self.member_id} is already in use")
        self._lock = lock
        self._heartbeat(time.monotonic_ns())
        fsutil.rename_durably(joining, self._path)  # the lock follows the inode
        # Registered first, checked second; `logbroker serve` takes kafka.lock first and looks for
        # members second (`kafka.lock` in FORMAT.md, "Committed offsets and consumer groups"):
        # whatever the interleaving, the two kinds of member never both stay in one group.
        if kafka_clients_present(self.paths):
            fsutil.remove_file(self._path)
            self._lock.close()
            self._lock = None
            raise GroupError(
                f"consumer group {self.paths.group!r} has Kafka clients connected through logbroker serve on "
                f"topic {self.topic!r}; a group has either Kafka clients or logbroker consumers, not both: use "
                f"another group id", group=self.paths.group, topic=self.topic)
        self._last_check = 0

    def _still_registered(self) -> bool:
        """Whether our member file is still the one we hold the lock on."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return False
        own = os.fstat(self._lock.fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def leave(self) -> None:
        """Release every partition and the member file; tell the others by bumping the generation."""
        for partition in list(self._held):
            self._release(partition)
        if self._lock is None:
            return
        fsutil.remove_file(self._path)
        self._lock.close()
        self._lock = None
        try:
            with self.paths.locked():
                self._update_generation(None)
        except (OSError, TopicDeletedError):
            pass  # the topic (and its group) went away: nobody is left to tell

    def abandon(self) -> None:
        """Let go of every lock without touching a file: for a member whose topic was deleted (the
        path may name a topic created since, whose group this member never joined)."""
        for lock in self._held.values():
            lock.close()
        self._held.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def owned(self) -> list[int]:
        return sorted(self._held)

    def _heartbeat(self, now_ns: int) -> None:
        hb = Heartbeat(self.member_id, os.getpid(), socket.gethostname()[:64], boot_id(), self.session_timeout_ms,
                       now_ns, int(time.time() * 1000), self.client_id)
        fsutil.write_at(self._lock.fd, hb.encode(), 0, self._path)
        self._hb_ns = now_ns

    def expired(self, now_ns: int | None = None) -> bool:
        """True when our own heartbeat is older than the session timeout: the others may have fenced us."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        return now_ns - self._hb_ns > self._session_ns

    def check(self, force: bool = False) -> tuple[list[int], list[int], list[int]]:
        """Heartbeat, and at most every CHECK_INTERVAL_S follow the group: ``(revoked, lost, acquired)``.

        Revoked partitions were handed over cleanly (``on_revoke`` ran before the release); lost ones
        were taken from us while we were stalled, or dropped because we were: never commit those.
        """
        if self._lock is None:
            raise CommitFailedError(f"member {self.member_id} has left group {self.paths.group!r}")
        now = time.monotonic_ns()
        lost: list[int] = []
        if self.expired(now):
            lost = sorted(self._held)
            log.warning("member %s of group %r on topic %r did not heartbeat for %.1f s (session.timeout.ms=%d); "
                        "dropping partitions %s and rejoining", self.member_id, self.paths.group, self.topic,
                        (now - self._hb_ns) / 1e9, self.session_timeout_ms, lost)
            for partition in lost:
                self._release(partition)
            if not self._still_registered():
                # The group was deleted (or our file removed) while we were stalled: join afresh,
                # or we would keep writing ourselves into generations nobody else can see.
                self._lock.close()
                self._lock = None
                self.join()
            self._heartbeat(now)
            force = True
        elif now - self._hb_ns >= self._hb_interval_ns:
            self._heartbeat(now)
        if not force and now - self._last_check < CHECK_INTERVAL_S * 1e9:
            return [], lost, []
        self._last_check = now
        for partition in list(self._held):
            if not self._owns(partition):
                log.warning("partition %s-%d was taken over from member %s", self.topic, partition, self.member_id)
                self._release(partition)
                lost.append(partition)
        generation = read_generation(self.paths)
        live = self._live_ids()
        if tuple(live) != generation.members:
            try:
                with self.paths.locked(timeout_s=_CHECK_LOCK_WAIT_S):
                    generation = self._update_generation(self.member_id)
            except GroupLockBusy as exc:
                # Keep consuming what we own; the group changes when the lock comes free.
                log.warning("%s", exc)
                return [], lost, []
        self.generation = generation.generation
        target = set(range_assign(generation.members, self._partitions_fn()).get(self.member_id, []))
        revoked = sorted(set(self._held) - target)
        if revoked:
            if self._on_revoke is not None:
                self._on_revoke(revoked)
            for partition in revoked:
                self._release(partition)
        acquired = []
        wanted = sorted(target - set(self._held))
        if wanted:
            try:
                with self.paths.locked(timeout_s=_CHECK_LOCK_WAIT_S):
                    current = read_generation(self.paths)
                    mine = set(range_assign(current.members, self._partitions_fn()).get(self.member_id, []))
                    for partition in wanted:
                        if partition in mine and self._acquire(partition):
                            acquired.append(partition)
            except GroupLockBusy as exc:
                log.warning("%s", exc)
        return revoked, lost, acquired

    def _live_ids(self) -> list[str]:
        others = scan_members(self.paths, skip=self.member_id)
        return sorted([m.member for m in others if m.live] + [self.member_id])

    def _update_generation(self, include: str | None) -> Generation:
        """Write generation N+1 when the live set changed. Group lock held."""
        generation = read_generation(self.paths)
        live = [m.member for m in scan_members(self.paths, skip=include) if m.live]
        if include is not None:
            live.append(include)
        live.sort()
        if tuple(live) == generation.members:
            return generation
        number = generation.generation
        if generation.members == ("<damaged>",):
            number = max([c.generation for c in self._safe_offsets().values()] + [0])
        new = Generation(number + 1, tuple(live))
        write_generation(self.paths, new)
        log.info("group %r on topic %r: generation %d, members %s", self.paths.group, self.topic,
                 new.generation, list(new.members))
        return new

    def _safe_offsets(self) -> dict[int, CommittedOffset]:
        try:
            return self.store.read()
        except CorruptionError:
            return {}

    # -- partition ownership ------------------------------------------------------------------

    def _acquire(self, partition: int) -> bool:
        """Take a partition's ownership lock (group lock held); False while a live owner keeps it."""
        path = self.paths.partition_lock(partition)
        lock = fsutil.FileLock(path)
        if not lock.acquire(blocking=False):
            owner = os.pread(lock.fd, 1024, 0).decode("utf-8", "replace").strip()
            lock.close()
            status = {m.member: m for m in scan_members(self.paths, skip=self.member_id)}.get(owner)
            if status is not None and status.state != "expired":
                return False  # a live owner hands it over on its next poll
            # The owner is stalled past its session timeout: replace the lock file. It keeps a lock on
            # the unlinked inode and so fails the ownership check of every commit it attempts.
            log.warning("member %s takes partition %s-%d from expired member %s", self.member_id,
                        self.topic, partition, owner or "?")
            fsutil.remove_file(path)
            lock = fsutil.FileLock(path)
            if not lock.acquire(blocking=False):
                lock.close()
                return False
        os.ftruncate(lock.fd, 0)
        fsutil.write_at(lock.fd, self.member_id.encode() + b"\n", 0, path)
        self._held[partition] = lock
        return True

    def _release(self, partition: int) -> None:
        lock = self._held.pop(partition, None)
        if lock is not None:
            lock.close()

    def _owns(self, partition: int) -> bool:
        lock = self._held.get(partition)
        if lock is None:
            return False
        try:
            st = os.stat(self.paths.partition_lock(partition))
        except FileNotFoundError:
            return False
        mine = os.fstat(lock.fd)
        return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)

    # -- commits ------------------------------------------------------------------------------

    def commit(self, offsets: dict[int, int]) -> None:
        """Commit ``{partition: next offset to read}`` durably, or raise CommitFailedError (fenced)."""
        if not offsets:
            return
        if self._lock is None:
            raise CommitFailedError(f"member {self.member_id} has left group {self.paths.group!r}",
                                    topic=self.topic, group=self.paths.group)
        if self.expired():
            self._last_check = 0
            raise CommitFailedError(
                f"commit rejected: member {self.member_id} of group {self.paths.group!r} did not heartbeat "
                f"within session.timeout.ms={self.session_timeout_ms}, so its partitions may have moved; "
                f"it rejoins on its next poll", topic=self.topic, group=self.paths.group)
        now_ms = int(time.time() * 1000)
        try:
            with self.paths.locked(timeout_s=self.session_timeout_ms / 2000):
                generation = read_generation(self.paths)
                if self.member_id not in generation.members:
                    self._last_check = 0
                    raise CommitFailedError(
                        f"commit rejected: member {self.member_id} is not in generation {generation.generation} "
                        f"of group {self.paths.group!r} (it was expired); it rejoins on its next poll",
                        topic=self.topic, group=self.paths.group)
                for partition in offsets:
                    if not self._owns(partition):
                        self._last_check = 0
                        raise CommitFailedError(
                            f"commit rejected: partition {self.topic}-{partition} is not owned by member "
                            f"{self.member_id} in generation {generation.generation} of group {self.paths.group!r}",
                            topic=self.topic, partition=partition, group=self.paths.group)
                self.store.commit({p: CommittedOffset(o, generation.generation, self.member_id, now_ms)
                                   for p, o in offsets.items()})
        except GroupLockBusy as exc:
            raise CommitFailedError(f"commit not done: {exc}", topic=self.topic, group=self.paths.group) from None
