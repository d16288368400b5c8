"""Idempotent producers: producer ids, and the sequence numbers that keep a retried batch from
being appended twice (Kafka's producer state, kept in memory).

For each (producer id, topic, partition) the server remembers the epoch and the last five batches
appended (first and last sequence, base offset), as Kafka does. A batch whose first sequence is one
of them is a retry: it is acknowledged with the offset it got the first time and not appended
again. A batch that skips sequence numbers gets OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch
INVALID_PRODUCER_EPOCH.

What a restart forgets: this state. After a restart a retry of a batch appended before it is
appended again (a duplicate), and the first batch of a known producer id is accepted at whatever
sequence it carries. Producer ids are derived from the wall clock in microseconds, so a restarted
server does not hand out an id it gave before.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .batch import ProducedBatch
from .errors import ErrorCode as E

__all__ = ["ProducerStates", "Duplicate"]

_KEEP = 5
_SEQ_MOD = 1 << 31


class Duplicate(int):
    """The base offset a retried batch got when it was first appended."""


class ProducerStates:
    def __init__(self) -> None:
        self._next_id = int(time.time() * 1_000_000)
        self._states: dict[tuple[int, str, int], tuple[int, deque]] = {}
        self._turns: dict[tuple[int, str, int], list] = {}  # key -> [lock, batches holding or awaiting it]

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def turn(self, batch: ProducedBatch, topic: str, partition: int) -> None:
        """Wait until no earlier batch of this producer to this partition is being appended (its
        requests are pipelined and group-committed): :meth:`check` must see it recorded. Pair with
        :meth:`done`."""
        key = (batch.producer_id, topic, partition)
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = [asyncio.Lock(), 0]
        turn[1] += 1
        await turn[0].acquire()

    def done(self, batch: ProducedBatch, topic: str, partition: int) -> None:
        key = (batch.producer_id, topic, partition)
        turn = self._turns[key]
        turn[0].release()
        turn[1] -= 1
        if not turn[1]:
            del self._turns[key]

    def check(self, batch: ProducedBatch, topic: str, partition: int) -> Duplicate | E | None:
        """None: append it; a :class:`Duplicate`: a retry, already appended; else the error to return."""
        if batch.producer_id < 0 or batch.base_sequence < 0:
            return None
        state = self._states.get((batch.producer_id, topic, partition))
        if state is None:
            return None
        epoch, batches = state
        if batch.producer_epoch < epoch:
            return E.INVALID_PRODUCER_EPOCH
        if batch.producer_epoch > epoch:
            return None if batch.base_sequence == 0 else E.OUT_OF_ORDER_SEQUENCE_NUMBER
        for first, _last, base in batches:
            if first == batch.base_sequence:
                return Duplicate(base)
        if batches and batch.base_sequence != (batches[-1][1] + 1) % _SEQ_MOD:
            return E.OUT_OF_ORDER_SEQUENCE_NUMBER
        return None

    def record(self, batch: ProducedBatch, topic: str, partition: int, base_offset: int) -> None:
        """Remember an appended batch of an idempotent producer."""
        if batch.producer_id < 0 or batch.base_sequence < 0:
            return
        key = (batch.producer_id, topic, partition)
        state = self._states.get(key)
        if state is None or state[0] != batch.producer_epoch:
            state = self._states[key] = (batch.producer_epoch, deque(maxlen=_KEEP))
        last = (batch.base_sequence + len(batch.records) - 1) % _SEQ_MOD
        state[1].append((batch.base_sequence, last, base_offset))
