"""Bounded open files: an LRU of the objects that hold descriptors, as Kafka's log manager bounds
the segments it keeps open.

A process may touch hundreds of partitions, and each one costs descriptors: an open partition log up
to five (``.lock``, ``high-watermark`` and the active segment's ``.log``, ``.index``, ``.timeindex``),
a reader up to four, a consumer's watch of a partition one. :data:`OPEN_FILES` keeps their sum under a
budget: each holder calls :meth:`OpenFiles.touch` with itself, the descriptors it may hold and how to
close them whenever it is used; the least recently used holders beyond the budget are closed, and
open their files again when next used (a partition log is dropped and made anew by its topic).

Threads: the bookkeeping is under a lock, and a thread only ever closes holders it touched last
itself, never files another thread may be using (a producer's sender thread appending while the
application's thread polls a consumer): when only other threads' holders are left to close, the
budget is exceeded rather than a descriptor closed under another thread. The default budget is the soft
``RLIMIT_NOFILE`` less a quarter of it, or less 64 when that is more (left to the application and to
what cannot be closed: pinned topic directories, group ownership locks), and never below 32: 192 of
256, 768 of 1,024.
"""

from __future__ import annotations

import os
import resource
import threading
from collections import OrderedDict
from typing import Callable, Hashable

__all__ = ["OpenFiles", "OPEN_FILES", "raise_descriptor_limit"]


class OpenFiles:
    """An LRU of descriptor holders, closed oldest first beyond ``budget`` descriptors."""

    __slots__ = ("budget", "weight", "_entries", "_mutex")

    def __init__(self, budget: int | None = None) -> None:
        self.budget = self.default_budget() if budget is None else budget
        self.weight = 0  # descriptors the entries may hold, summed
        # key -> (weight, close, the thread that touched it last)
        self._entries: OrderedDict[Hashable, tuple[int, Callable[[], None], int]] = OrderedDict()
        self._mutex = threading.Lock()

    @staticmethod
    def default_budget() -> int:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            soft = 1 << 16
        return max(32, soft - max(64, soft // 4))

    def touch(self, key: Hashable, weight: int, close: Callable[[], None]) -> None:
        """``key`` was just used (and holds up to ``weight`` descriptors, closed by ``close``)."""
        me = threading.get_ident()
        doomed = []
        with self._mutex:
            entries = self._entries
            entry = entries.get(key)
            if entry is not None:
                if entry[2] != me:
                    entries[key] = (entry[0], entry[1], me)
                entries.move_to_end(key)
                return
            entries[key] = (weight, close, me)
            self.weight += weight
            if self.weight > self.budget:
                for old in list(entries):
                    if self.weight <= self.budget:
                        break
                    w, closer, owner = entries[old]
                    if old == key or owner != me:
                        continue  # another thread's files are never closed from here
                    del entries[old]
                    self.weight -= w
                    doomed.append(closer)
        for closer in doomed:  # outside the mutex: a closer may forget() other entries
            closer()

    def forget(self, key: Hashable) -> None:
        """``key`` closed its files itself."""
        with self._mutex:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self.weight -= entry[0]


    def _after_fork_in_child(self) -> None:
        self._mutex = threading.Lock()  # a thread of the parent may have held it: none runs here


#: The one budget of this process.
OPEN_FILES = OpenFiles()
os.register_at_fork(after_in_child=OPEN_FILES._after_fork_in_child)

#: The soft descriptor limit a long-running server asks for (Kafka's guidance is 100,000 or more).
SERVER_DESCRIPTOR_LIMIT = 1 << 17


def raise_descriptor_limit(wanted: int = SERVER_DESCRIPTOR_LIMIT) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` toward ``wanted``, never past the hard limit, and
    size :data:`OPEN_FILES`'s budget to the new limit; returns the soft limit now in force.

    For a server (``logbroker serve``) whose clients each hold a descriptor: a login shell's soft
    limit is often 1,024 while the hard one allows far more, as ``ulimit -Hn`` shows. A limit the
    operator lowered on purpose, soft and hard together (``ulimit -n 64``), is left as it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        OPEN_FILES.budget = max(OPEN_FILES.budget, OpenFiles.default_budget())
        return target
    return soft
