"""The server's timers without a network: a connection's read deadline (one timer, moved by
setting a number) and a long poll's wait for an append (one future, dropped after its wait)."""

from __future__ import annotations

import asyncio
import struct

from logbroker.kafka import server as server_module
from logbroker.kafka.server import Deadline, KafkaServer, ServerConfig
from logbroker.kafka.storage import Storage


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_a_deadline_moved_later_expires_once_with_its_last_reason_and_not_before_it():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        deadline = Deadline(loop, lambda reason: fired.append((reason, loop.time())))
        deadline.set(0.05, "first")
        await asyncio.sleep(0.01)
        deadline.set(0.3, "moved")  # later than the timer armed: the timer re-arms when it fires
        due = deadline.at
        while not fired:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        return fired, due
    fired, due = _run(main())
    assert [reason for reason, _ in fired] == ["moved"]
    assert fired[0][1] >= due


def test_a_deadline_moved_earlier_expires_at_the_earlier_time():
    async def main():
        loop = asyncio.get_running_loop()
        fired = asyncio.Event()
        deadline = Deadline(loop, lambda reason: fired.set())
        deadline.set(3600, "idle")
        deadline.set(0.05, "frame")
        await asyncio.wait_for(fired.wait(), 10)  # not an hour
        deadline.cancel()
    _run(main())


def test_a_cleared_deadline_never_expires():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        deadline = Deadline(loop, fired.append)
        deadline.set(0.02, "frame")
        deadline.clear()
        await asyncio.sleep(0.2)
        return fired
    assert _run(main()) == []


def test_timed_out_long_polls_leave_no_waiter_behind(tmp_path):
    async def main():
        storage = Storage(str(tmp_path))
        results = []
        for _ in range(50):
            fut = storage.next_append()
            results.append(await storage.wait_append(fut, 0.001))
        left = len(storage._waiters)
        fut = storage.next_append()
        storage._notify()
        woke = await storage.wait_append(fut, 10)
        storage.close()
        return results, left, woke
    results, left, woke = _run(main())
    assert results == [False] * 50 and left == 0 and woke is True


def test_a_frame_not_completed_in_time_closes_its_connection_and_the_server_serves_on(tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "FRAME_TIMEOUT_S", 0.2)

    async def main():
        srv = KafkaServer(str(tmp_path), ServerConfig(port=0))
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(struct.pack(">i", 100) + b"\x00" * 10)  # 10 of 100 bytes, then nothing
            await writer.drain()
            closed = await asyncio.wait_for(reader.read(), 10)  # EOF: the server closed it
            writer.close()
            # Another connection is still served: ApiVersions v0 answers.
            r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
            request = struct.pack(">hhih", 18, 0, 7, 1) + b"t"
            w2.write(struct.pack(">i", len(request)) + request)
            await w2.drain()
            size = struct.unpack(">i", await asyncio.wait_for(r2.readexactly(4), 10))[0]
            correlation = struct.unpack(">i", (await r2.readexactly(size))[:4])[0]
            w2.close()
            return closed, correlation
        finally:
            await srv.close()
    closed, correlation = _run(main())
    assert closed == b"" and correlation == 7
