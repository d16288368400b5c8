"""A writer killed in the middle of a roll, or failing in the middle of a multi-batch append,
never leaves offsets assigned twice, acknowledged records unreachable, or failed records visible."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logbroker.errors import DiskFullError
from logbroker.clients.producer import Producer
from logbroker.storage.reader import PartitionReader
from logbroker.storage.topic import Topic

ROOT = str(Path(__file__).resolve().parent.parent)


def run_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT})


def read_offsets_and_values(data_dir: str) -> list:
    reader = PartitionReader("t", 0, os.path.join(data_dir, "t", "t-0"))
    out, offset = [], reader.log_start_offset()
    while True:
        got = reader.read(offset, 1000)
        if not got:
            return out
        out.extend((r.offset, r.value) for r in got)
        offset = got[-1].offset + 1


# Where the rolling child dies: after the new segment's file exists (at the directory fsync), or
# after the state names the new segment but before its file exists.
KILL_AT = {
    "directory-fsync": """
        def hook(op, target):
            if op == "fsync" and target == pdir:
                os._exit(137)
        fsutil.fault_hook = hook
    """,
    "before-the-new-file": """
        from logbroker.storage.segment import Segment
        real = Segment.open_append.__func__
        def dying(cls, directory, base):
            if base > 0:
                os._exit(137)
            return real(cls, directory, base)
        Segment.open_append = classmethod(dying)
    """,
}


@pytest.mark.parametrize("where", list(KILL_AT))
def test_a_writer_killed_mid_roll_leaves_unique_offsets_for_a_running_writer_and_a_fresh_one(tmp_path, where):
    data = str(tmp_path)
    Topic.create(data, "t", 1, {"segment.bytes": 1000}).close()
    pdir = os.path.join(data, "t", "t-0")
    long_lived = subprocess.Popen([sys.executable, "-u", "-c", textwrap.dedent(f"""
        import sys
        from logbroker.clients.producer import Producer
        p = Producer({data!r}, batch_size=0)
        for line in sys.stdin:
            print([p.send("t", {{"from": "A", "i": i}}, partition=0).get().offset for i in range(int(line))],
                  flush=True)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        long_lived.stdin.write("3\n")
        long_lived.stdin.flush()
        assert long_lived.stdout.readline().strip() == "[0, 1, 2]"
        roller = run_child(f"""
            import os
            from logbroker.storage import fsutil
            from logbroker.clients.producer import Producer
            pdir = {pdir!r}
            {textwrap.indent(textwrap.dedent(KILL_AT[where]), "            ").strip()}
            Producer({data!r}, batch_size=0).send("t", "B" * 800, partition=0).get()
            print("acknowledged")
            """)
        assert roller.returncode == 137, roller.stderr
        long_lived.stdin.write("3\n")
        long_lived.stdin.flush()
        acked_a = eval(long_lived.stdout.readline())
    finally:
        long_lived.stdin.close()
        long_lived.wait(timeout=30)
    fresh = run_child(f"""
        from logbroker.clients.producer import Producer
        print(Producer({data!r}).send("t", {{"from": "C"}}, partition=0).get().offset)
        """)
    assert fresh.returncode == 0, fresh.stderr
    acked_c = int(fresh.stdout)
    log = read_offsets_and_values(data)
    offsets = [o for o, _ in log]
    assert offsets == list(range(len(offsets))), offsets  # contiguous, each offset once
    by_offset = dict(log)
    for i, off in enumerate(acked_a):
        assert by_offset[off] == {"from": "A", "i": i}
    assert by_offset[acked_c] == {"from": "C"}
    assert acked_c not in acked_a


def test_a_multi_batch_append_that_fails_midway_leaves_nothing_of_it_visible(tmp_path, fault_hook):
    data = str(tmp_path)
    Topic.create(data, "t", 1, {"max.message.bytes": 1000}).close()
    producer = Producer(data, batch_size=1 << 20)
    writes = []

    def disk_fills_on_the_second_batch(op, target):
        if op == "write" and str(target).endswith(".log"):
            writes.append(target)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")

    with producer._acc.io_lock:  # the sender waits: the ten records are appended by one call
        futures = [producer.send("t", {"i": i, "pad": "x" * 200}, partition=0) for i in range(10)]
        fault_hook(disk_fills_on_the_second_batch)
    with pytest.raises(DiskFullError):
        producer.flush()
    fault_hook(None)
    for f in futures:
        with pytest.raises(DiskFullError):
            f.get()
    retried = [producer.send("t", {"i": i, "pad": "x" * 200}, partition=0) for i in range(10)]
    producer.flush()
    assert [f.get().offset for f in retried] == list(range(10))
    producer.close()
    assert [v["i"] for _, v in read_offsets_and_values(data)] == list(range(10))


def test_a_timestamp_lookup_skips_a_segment_that_retention_removed_meanwhile(tmp_path, monkeypatch):
    data = str(tmp_path)
    Topic.create(data, "t", 1, {"segment.bytes": 600}).close()
    with Producer(data, batch_size=0) as producer:
        for i in range(30):
            producer.send("t", {"i": i, "pad": "y" * 100}, partition=0, timestamp_ms=1_000 + i)
    reader = PartitionReader("t", 0, os.path.join(data, "t", "t-0"))
    import logbroker.storage.reader as reader_module
    listed = reader_module.list_segments(reader.directory)
    os.unlink(os.path.join(reader.directory, f"{listed[0]:020d}.log"))  # removed after the listing
    monkeypatch.setattr(reader_module, "list_segments", lambda d: listed)
    assert reader.offset_for_timestamp(1_020) == 20


def test_recovering_a_stale_state_again_and_again_leaks_no_descriptor(tmp_path):
    data = str(tmp_path)
    t = Topic.create(data, "t", 1)
    with Producer(data, batch_size=0) as producer:
        producer.send("t", 1, partition=0).get()
    from logbroker.storage.record import PendingRecord

    log = t.log(0)
    log.append([PendingRecord(1, None, None, 1)])  # its descriptors are open from here on
    state_path = os.path.join(t.partition_path(0), "high-watermark")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        os.unlink(state_path)  # the state is lost: the next append recovers from the log
        log._verified = False
        log._state_file.close()
        log._state_file = type(log._state_file)(t.partition_path(0), create=True)
        log.append([PendingRecord(1, None, None, 2)])
    assert len(os.listdir("/proc/self/fd")) <= before
    t.close()
