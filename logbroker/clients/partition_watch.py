"""Whether a partition may have records past a position, answered from its state file alone.

A consumer waiting for records asks this of every partition it reads on every idle poll, so the
answer must be cheap: :class:`PartitionWatch` keeps the partition's state file (FORMAT.md,
"Partition state") open and reads its first bytes with one ``pread``; only when those bytes changed
does it decode them (:class:`~logbroker.storage.checkpoint.PartitionState`) for the high watermark.
The reader itself is asked only when this says "maybe".
"""

from __future__ import annotations

import os
import time

from ..storage.checkpoint import STATE_NAME, PartitionState
from ..storage.handles import OPEN_FILES

__all__ = ["PartitionWatch", "LOST_STATE_PROBE_S"]

#: how often a missing, empty or replaced state file lets the reader look (it rebuilds a lost one)
LOST_STATE_PROBE_S = 0.5


class PartitionWatch:
    """Tells cheaply whether a partition's state file changed since it was last looked at.

    Contract: :meth:`may_have_data` is True whenever records at or past ``position`` may be readable
    (it may say True when there are none: a racing rewrite, a lost or replaced state file, at most
    twice a second), and False only when the high watermark in the state file, unchanged since
    the last look, is at or below ``position``. :attr:`high_watermark` is the last one read (-1:
    none yet). The state file's descriptor is one of the process's bounded open files
    (:data:`~logbroker.storage.handles.OPEN_FILES`): it may be closed between calls and is opened
    again on demand. One thread at a time (the consumer's).
    """

    __slots__ = ("path", "fd", "seen", "high_watermark", "next_probe")

    def __init__(self, partition_dir: str) -> None:
        self.path = os.path.join(partition_dir, STATE_NAME)
        self.fd = -1
        self.seen = b""
        self.high_watermark = -1
        self.next_probe = 0.0

    def _probe(self) -> bool:
        """A missing or empty state file: a partition never written to, or a lost state file. Let
        the reader look now and then (it rebuilds a lost one), never more than twice a second."""
        now = time.monotonic()
        if now < self.next_probe:
            return False
        self.next_probe = now + LOST_STATE_PROBE_S
        return True

    def may_have_data(self, position: int) -> bool:
        if position < self.high_watermark:
            return True
        if self.fd < 0:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                return self._probe()
        OPEN_FILES.touch(self, 1, self._close_fd)
        raw = os.pread(self.fd, 128, 0)
        if not raw:
            return self._probe()
        if raw == self.seen:
            if self._probe() and os.fstat(self.fd).st_nlink == 0:
                # The file was deleted (and perhaps rebuilt by recovery): watch the new one.
                self.close()
                self.seen, self.high_watermark = b"", -1
                return True
            return False
        self.seen = raw
        state = PartitionState.decode(raw)
        if state is None:  # a read racing a rewrite: let the reader look, and look again next time
            self.seen, self.high_watermark = b"", -1
            return True
        self.high_watermark = state.high_watermark
        return position < self.high_watermark

    def close(self) -> None:
        OPEN_FILES.forget(self)
        self._close_fd()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
