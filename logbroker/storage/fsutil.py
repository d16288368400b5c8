"""Every durability rule of logbroker, in one place.

Nothing else in the package calls ``os.fsync``, ``os.fdatasync``, ``os.replace`` or ``flock``.

Rules (see RELIABILITY.md in the project for why each exists):

- **fsync errors are fatal.** After a failed fsync the kernel may have dropped the dirty pages and
  marked them clean, so a retry can "succeed" with the data gone. :func:`sync_file` raises
  :class:`~logbroker.errors.FsyncError` and callers never acknowledge, never retry.
- **New names need a directory fsync.** :func:`sync_dir` after creating, renaming or unlinking.
- **Small metadata is replaced atomically**: :func:`atomic_write` writes a unique temp file in the
  same directory, fsyncs it, ``os.replace``\\ s it over the target and fsyncs the directory. A crash
  leaves the old file or the new one, never a mix; leftover ``*.tmp`` files are garbage.
- **Locks are flock, opened O_CLOEXEC**, never ``lockf`` (a POSIX lock silently drops when any other
  descriptor of the file is closed). flock belongs to the open file, which ``fork()`` shares with the
  child: the child of a process holding a :class:`FileLock` reopens it at once (unheld), or parent
  and child would both hold it and their appends interleave. flock is released by the kernel the instant its holder dies,
  which is what makes kill -9 of a producer or consumer safe. A stopped holder (SIGSTOP, Ctrl+Z)
  keeps it, so waits are bounded: :meth:`FileLock.acquire_within` says after a second which process
  holds the lock (each holder records its pid in the file) and gives up after ``max.block.ms``.
- **Paths never follow symlinks** below the data directory: files are opened with ``O_NOFOLLOW``
  and :func:`check_not_symlink` refuses a symlinked directory.
- **Short writes are undone.** :func:`append_all` writes a batch with one ``write``/``writev`` call
  (so concurrent writers' bytes never interleave); if the kernel writes less (disk full) the file is
  truncated back to its previous size before the error is raised.

The fsync policy (``always``, ``interval``, ``never``) is decided here too: :class:`FsyncPolicy`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import stat
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Sequence

from ..errors import (DiskFullError, FsyncError, InvalidConfigError, LockTimeoutError, LogBrokerError, StorageError,
                     UnsafePathError)

__all__ = [
    "FsyncPolicy",
    "FileLock",
    "sync_file",
    "sync_dir",
    "atomic_write",
    "append_all",
    "write_at",
    "check_not_symlink",
    "read_file",
    "make_dir",
    "remove_file",
    "rename_durably",
    "replace_keeping",
    "TMP_SUFFIX",
]

TMP_SUFFIX = ".tmp"
#: How long a lock wait stays silent before it says what it waits for and who holds the lock.
LOCK_WAIT_WARN_S = 1.0
_HOLDER_SIZE = 20
_HOLDER = b"%-19d\n"  # the holder's pid, padded: rewritten in place by each new holder
_log = logging.getLogger("logbroker")
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

# Fault injection for the torture tests: when set, called as hook(op, path_or_fd) before each
# fsync / write performed here; it may raise OSError. Production code never sets it.
fault_hook = None


def _inject(op: str, target: object) -> None:
    if fault_hook is not None:
        fault_hook(op, target)


POLICIES = ("always", "interval", "never")


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When an append is made durable.

    ``always``: fdatasync every batch before acknowledging it. ``interval``: fdatasync when
    ``interval_ms`` have passed since the last sync of this process (and on flush/close).
    ``never``: leave it to the OS. ``due`` is a pure function of the clock values it is given.
    """

    mode: str = "always"
    interval_ms: int = 1000

    def __post_init__(self) -> None:
        if self.mode not in POLICIES:
            raise InvalidConfigError(f"fsync policy must be one of {', '.join(POLICIES)}, not {self.mode!r}")

    def due(self, last_sync: float, now: float) -> bool:
        if self.mode == "always":
            return True
        if self.mode == "never":
            return False
        return (now - last_sync) * 1000.0 >= self.interval_ms

    @property
    def visible_before_sync(self) -> bool:
        """Under ``never`` records are visible as soon as written; otherwise after their fsync."""
        return self.mode == "never"


def sync_file(fd: int, path: str = "?") -> None:
    """fdatasync ``fd``; any failure is an :class:`FsyncError` that must never be retried."""
    try:
        _inject("fsync", path)
        os.fdatasync(fd)
    except OSError as exc:
        raise FsyncError(
            f"fsync failed on {path}: {exc.strerror or exc}; the write is not acknowledged", path=path
        ) from exc


def sync_dir(path: str) -> None:
    """fsync a directory so that names created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _inject("fsync", path)
        os.fsync(fd)
    except OSError as exc:
        raise FsyncError(f"fsync failed on directory {path}: {exc.strerror or exc}", path=path) from exc
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temp, fsync, replace, fsync dir)."""
    directory = os.path.dirname(path) or "."
    tmp = f"{path}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        try:
            append_all(fd, data, tmp)
            sync_file(fd, tmp)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    sync_dir(directory)


def append_all(fd: int, data: bytes | Sequence[bytes], path: str = "?") -> None:
    """Write ``data`` (bytes, or a sequence of bytes: one ``writev``) with one call at the end of
    ``fd`` (opened O_APPEND).

    A short write or a failed write truncates the file back to its size before the call, so the
    file only ever holds whole batches; disk-full conditions raise :class:`DiskFullError`.
    """
    parts = (data,) if isinstance(data, bytes) else data
    size = sum(map(len, parts))
    before = os.fstat(fd).st_size
    try:
        _inject("write", path)
        written = os.writev(fd, parts)
    except OSError as exc:
        _truncate_back(fd, before)
        if exc.errno in _DISK_FULL:
            raise DiskFullError(f"disk full while writing {path}: {exc.strerror}", path=path) from exc
        raise StorageError(f"write failed on {path}: {exc.strerror or exc}", path=path) from exc
    if written != size:
        # Never loop on a short write: another writer could slip in between the pieces.
        _truncate_back(fd, before)
        raise DiskFullError(
            f"short write on {path} ({written} of {size} bytes): disk full? nothing was kept",
            path=path,
        )


def write_at(fd: int, data: bytes, position: int, path: str) -> None:
    """``pwrite`` a small piece rewritten in place (state, heartbeat, lock holder); a failure is a
    StorageError (DiskFullError when the disk is full) naming ``path``."""
    try:
        os.pwrite(fd, data, position)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFullError(f"disk full while writing {path}: {exc.strerror}", path=path) from exc
        raise StorageError(f"write failed on {path}: {exc.strerror or exc}", path=path) from exc


def _truncate_back(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass


def truncate(fd: int, size: int, path: str = "?") -> None:
    """Cut a file to ``size`` bytes and make the cut durable."""
    os.ftruncate(fd, size)
    sync_file(fd, path)


def check_not_symlink(path: str, what: str) -> None:
    """Refuse ``path`` when it is a symbolic link (the kernel would follow it out of the data dir)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"{what} {path} is a symbolic link; logbroker refuses to follow it", path=path)


def read_file(path: str) -> bytes | None:
    """The whole content of ``path`` without following a symlink; None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def make_dir(path: str) -> None:
    """Create a directory and fsync its parent so the new name survives a crash."""
    os.mkdir(path, 0o755)
    sync_dir(os.path.dirname(path) or ".")


def rename_durably(src: str, dst: str) -> None:
    """Rename (refusing to overwrite a non-empty directory) and fsync the parent directory."""
    os.rename(src, dst)
    sync_dir(os.path.dirname(dst) or ".")


def replace_keeping(src: str, dst: str) -> None:
    """Atomically replace ``dst`` with the file at ``src`` while ``src`` keeps its name too.

    A hard link to a temporary name, renamed over ``dst``, then a directory fsync: readers see the
    old ``dst`` or the new one, never neither, and ``src`` still marks the step as unfinished for
    recovery (the cleaner's swap, FORMAT.md "Compacted logs"). Idempotent.
    """
    directory = os.path.dirname(dst) or "."
    if os.path.lexists(dst) and os.path.samefile(src, dst):
        # Done before a crash. (rename() of one hard link over another of the same file does
        # nothing and would leave the temporary name behind.)
        sync_dir(directory)
        return
    tmp = f"{dst}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    os.link(src, tmp)
    try:
        os.replace(tmp, dst)
    except BaseException:
        remove_file(tmp)
        raise
    sync_dir(directory)


def remove_file(path: str, missing_ok: bool = True) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


class FileLock:
    """An exclusive ``flock`` on a lock file, usable as a context manager.

    The descriptor is opened O_CLOEXEC so a child process never inherits the lock. ``acquire``
    blocks unless ``blocking=False``, in which case it returns False when someone else holds it.

    With ``record_holder``, the first exclusive acquisition of this handle (and the first after a
    wait) writes the holder's pid into the file (20 bytes at position 0), so a process waiting for
    it can say who holds it: :meth:`acquire_within` is the one lock wait of logbroker (partition
    locks, group locks).
    """

    __slots__ = ("path", "fd", "held", "record_holder", "_recorded", "__weakref__")

    def __init__(self, path: str, record_holder: bool = False) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        self.held = False
        self.record_holder = record_holder
        self._recorded = False
        _open_locks.add(self)

    def _reopen_in_child(self) -> None:
        """After ``fork()``, in the child: a descriptor of its own, not held. The inherited one shares
        the parent's open file, and with it the parent's flock (a parent holding the lock would let
        the child in). Closing the inherited copy leaves the parent's lock alone: flock is released
        by LOCK_UN or when the last descriptor of the open file closes, and the parent keeps one."""
        if self.fd < 0:
            return
        inherited = self.fd
        self.fd = _reopen(inherited, self.path)
        os.close(inherited)
        self.held = False
        self._recorded = False

    def acquire(self, blocking: bool = True, shared: bool = False) -> bool:
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            op |= fcntl.LOCK_NB
        try:
            fcntl.flock(self.fd, op)
        except BlockingIOError:
            return False
        self.held = True
        if self.record_holder and not shared:
            self._record()
        return True

    def _record(self) -> None:
        """Write our pid into the lock file, on this handle's first exclusive acquisition only: a
        pwrite on every one cost 5-35% of a one-record ``fsync=never`` append (measured). So with
        several writer processes the file names the last one that started, and the kernel's
        ``/proc/locks`` (asked first, see :func:`holder_description`) names the real holder."""
        if not self._recorded:
            write_at(self.fd, _HOLDER % os.getpid(), 0, self.path)
            self._recorded = True

    def acquire_within(self, timeout_s: float | None, what: str, error: type[LogBrokerError] | None = None,
                       warn_after_s: float | None = None, limit_name: str | None = "max.block.ms") -> None:
        """Take the lock exclusively, waiting at most ``timeout_s`` (None: for ever).

        After ``warn_after_s`` (default :data:`LOCK_WAIT_WARN_S`) of waiting, one warning on the
        ``logbroker`` logger says what is waited for and which process holds it; on timeout
        ``error`` (default :class:`~logbroker.errors.LockTimeoutError`) says the same. The wait
        itself is a blocking ``flock`` in a helper thread on a descriptor of its own, so the lock is
        taken the instant it is released (no polling delay); a wait given up on never holds it.
        A ``timeout_s`` of 0 tries once and raises at once, starting no helper: a caller that must
        not block (an event loop) polls with it.
        """
        if self.acquire(blocking=False):
            return
        if timeout_s is not None and timeout_s <= 0:
            label = f" ({limit_name})" if limit_name else ""
            # No holder_description here: it reads /proc/locks, and a poller asks often.
            raise (error or LockTimeoutError)(
                f"{what} is held by another process ({self.path}); not waiting (0 ms{label}); "
                f"nothing was written", path=self.path)
        warn_after_s = LOCK_WAIT_WARN_S if warn_after_s is None else warn_after_s
        started = time.monotonic()
        waiter = _LockWaiter(self.path, self.fd)
        try:
            warned = False
            while True:
                left = None if timeout_s is None else timeout_s - (time.monotonic() - started)
                step = warn_after_s if not warned else left
                if left is not None and step is not None:
                    step = min(step, left)
                if waiter.wait(None if step is None else max(step, 0.0)):
                    break
                waited = time.monotonic() - started
                label = f" ({limit_name})" if limit_name else ""
                if timeout_s is not None and waited >= timeout_s:
                    waiter.abandon()
                    raise (error or LockTimeoutError)(
                        f"gave up waiting for {what} after {timeout_s * 1000:.0f} ms{label}: it is held by "
                        f"{holder_description(self.path)} ({self.path}); nothing was written", path=self.path)
                if not warned:
                    warned = True
                    limit = "for ever" if timeout_s is None else f"up to {timeout_s * 1000:.0f} ms{label}"
                    _log.warning("waiting for %s: it is held by %s (%s); waiting %s", what,
                                 holder_description(self.path), self.path, limit)
        except BaseException:
            waiter.abandon()
            raise
        # The helper's descriptor now holds the lock: it becomes this lock's descriptor.
        os.close(self.fd)
        self.fd = waiter.fd
        self.held = True
        self._recorded = False  # another holder wrote its pid meanwhile
        if self.record_holder:
            self._record()
        if warned:
            _log.warning("got %s after %.1f s", what, time.monotonic() - started)

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        self.release()
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_open_locks: "weakref.WeakSet[FileLock]" = weakref.WeakSet()


def _reopen_locks_in_child() -> None:
    for lock in list(_open_locks):
        try:
            lock._reopen_in_child()
        except OSError:
            lock.fd, lock.held = -1, False  # gone with its directory: any use fails, none is shared


os.register_at_fork(after_in_child=_reopen_locks_in_child)


def _reopen(fd: int, path: str) -> int:
    """A new open file (flock belongs to the open file, so a dup would share the lock with ``fd``)
    on the same inode as ``fd``, even when the path was renamed or removed since (a deleted topic):
    reopened through /proc on Linux, else by path."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)


class _LockWaiter:
    """A blocking exclusive flock on a fresh descriptor of the lock file, in a daemon thread."""

    def __init__(self, path: str, fd: int) -> None:
        self.fd = _reopen(fd, path)
        self._cond = threading.Condition()
        self._state = "waiting"  # -> "held" (the waiter's owner takes fd) or "abandoned"
        threading.Thread(target=self._run, name="logbroker-lock-wait", daemon=True).start()

    def _run(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            ok = True
        except OSError:
            ok = False
        with self._cond:
            if self._state == "abandoned" or not ok:
                os.close(self.fd)  # closing the descriptor releases a lock taken too late
                self._state = "abandoned"
            else:
                self._state = "held"
            self._cond.notify_all()

    def wait(self, timeout_s: float | None) -> bool:
        """True once the lock is held (within ``timeout_s``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._state != "waiting", timeout_s)
            return self._state == "held"

    def abandon(self) -> None:
        with self._cond:
            if self._state == "held":
                os.close(self.fd)
            self._state = "abandoned"


def holder_description(path: str) -> str:
    """Who holds the lock file ``path``: "process 1234 (logbroker publish orders, stopped)".

    The kernel's table of locks (``/proc/locks``, Linux) is asked first; elsewhere the pid recorded in
    the file (see :class:`FileLock`: the last holder that recorded one). "another process" when
    neither says.
    """
    pid = _flock_holder(path)
    if pid is None:
        raw = read_file(path) or b""
        try:
            pid = int(raw[:_HOLDER_SIZE].split()[0])
        except (ValueError, IndexError):
            return "another process"
    details = []
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = " ".join(f.read().replace(b"\0", b" ").decode("utf-8", "replace").split())
        if cmd:
            details.append(cmd if len(cmd) <= 80 else cmd[:77] + "...")
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t"):
                details.append("stopped")
    except (OSError, IndexError):
        pass  # not Linux, or the process is gone
    return f"process {pid}" + (f" ({', '.join(details)})" if details else "")


def _flock_holder(path: str) -> int | None:
    """The pid holding an exclusive flock on ``path`` according to /proc/locks; None when unknown."""
    try:
        st = os.stat(path)
        with open("/proc/locks", "rb") as f:
            table = f.read().decode("ascii", "replace")
    except OSError:
        return None
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:
            continue  # a waiter, not a holder
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == where:
            try:
                return int(fields[4])
            except ValueError:
                return None
    return None


def try_lock_path(path: str) -> FileLock | None:
    """Take an exclusive lock on ``path`` without waiting; None when another process holds it."""
    lock = FileLock(path)
    if lock.acquire(blocking=False):
        return lock
    lock.close()
    return None
