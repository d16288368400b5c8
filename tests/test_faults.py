"""Injected faults: disk full, failing fsync, and simulated power loss.

- Disk full runs in a child process, on a 256 KiB tmpfs in a private mount namespace (``unshare -m``,
  skipped cleanly when not permitted) and, everywhere, under ``RLIMIT_FSIZE``.
- fsync errors come from ``logbroker.storage.fsutil.fault_hook``, which every fsync passes through.
- Power loss: a workload runs with a hook that copies the topic at every fsync (a crash just before
  it) and remembers what was durable: file sizes at their last fsync and directory entries at their
  directory's last fsync. Each copy is then damaged the way a power cut can (the unsynced part of each
  file dropped, zeroed, turned to garbage or torn at 512/4096 bytes; names created since the last
  directory fsync lost; the never-fsynced state and index files lost or zeroed) and recovered.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from logbroker.errors import FencedError, FsyncError
from logbroker.storage.fsutil import FsyncPolicy
from logbroker.clients.producer import Producer
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic

import corrupt
from conftest import T0, read_all, rec, reopen, tmp_files

# -- disk full ---------------------------------------------------------------------------------

DISK_FULL = textwrap.dedent("""
    import json, os, resource, signal, sys
    sys.path.insert(0, sys.argv[3])
    import corrupt
    from logbroker.errors import DiskFullError
    from logbroker.storage.record import PendingRecord
    from logbroker.storage.topic import Topic
    data_dir, mode = sys.argv[1], sys.argv[2]
    ballast = os.path.join(data_dir, "ballast")
    if mode == "tmpfs":
        with open(ballast, "wb") as f:
            f.write(b"b" * 64 * 1024)
    t = Topic.create(data_dir, "t", 1)
    log = t.log(0)
    if mode == "rlimit":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, resource.RLIM_INFINITY))
    acked, error = [], None
    for i in range(10_000):
        try:
            [res] = log.append([PendingRecord(1764230400000 + i, None, None, {"i": i, "pad": "p" * 1000})])
        except DiskFullError as exc:
            error = type(exc).__name__ + ": " + str(exc)
            break
        except OSError as exc:
            error = "other " + type(exc).__name__ + ": " + str(exc)
            break
        acked.append(res.base_offset)
    path = corrupt.segment_path(t.partition_path(0))
    whole = corrupt.valid_end(path) == os.path.getsize(path)
    again = None
    try:
        log.append([PendingRecord(1764230400000, None, None, "still full " * 400)])
    except DiskFullError:
        again = "DiskFullError"
    if mode == "tmpfs":
        os.unlink(ballast)
    else:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    [res] = log.append([PendingRecord(1764230400000, None, None, "x" * 4000)])
    values = [r.value for r in t.reader(0).read(0, 100_000)]
    print(json.dumps({"acked": acked, "error": error, "whole": whole, "again": again,
                      "resumed_at": res.base_offset, "values_ok": values[:len(acked)] == [
                          {"i": i, "pad": "p" * 1000} for i in range(len(acked))],
                      "last": values[-1] == "x" * 4000, "count": len(values)}))
""")


def run_disk_full(command: list[str]) -> dict:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return {"failed": proc.returncode, "stderr": proc.stderr}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_disk_full(result: dict) -> None:
    assert "failed" not in result, result.get("stderr")
    assert result["error"] and result["error"].startswith("DiskFullError"), result["error"]
    assert len(result["acked"]) > 20 and result["acked"] == list(range(len(result["acked"])))
    assert result["whole"], "the segment holds a partial record after disk full"
    assert result["again"] == "DiskFullError"
    assert result["values_ok"] and result["last"]
    # the failed appends were undone: appends resumed right after the acknowledged records
    assert result["resumed_at"] == len(result["acked"]) == result["count"] - 1


def test_disk_full_under_rlimit_fsize_undoes_the_write_and_appends_resume(tmp_path):
    here = os.path.dirname(__file__)
    check_disk_full(run_disk_full([sys.executable, "-c", DISK_FULL, str(tmp_path), "rlimit", here]))


def test_disk_full_on_a_small_tmpfs_undoes_the_write_and_appends_resume(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    here = os.path.dirname(__file__)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "disk_full.py"
    script.write_text(DISK_FULL)
    shell = (f"mount -t tmpfs -o size=256k tmpfs {mnt} || exit 77; "
             f"exec {sys.executable} {script} {mnt} tmpfs {here}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True, timeout=120)
    if proc.returncode == 77 or "Operation not permitted" in proc.stderr or "ermission denied" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    check_disk_full(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert os.listdir(mnt) == []  # the mount lived only in the child's namespace


# -- fsync errors ------------------------------------------------------------------------------


class FailFsync:
    """A fault hook failing the ``n``-th fsync (1-based) whose target matches, with EIO."""

    def __init__(self, n: int, match=lambda target: True) -> None:
        self.n = n
        self.match = match
        self.calls: list[str] = []

    def __call__(self, op: str, target: object) -> None:
        if op != "fsync" or not self.match(str(target)):
            return
        self.calls.append(str(target))
        if len(self.calls) == self.n:
            raise OSError(errno.EIO, "Input/output error (injected)")


@pytest.mark.parametrize("n", range(1, 9))
def test_a_failed_fsync_is_never_acknowledged_and_fences_the_partition_until_reopened(make_topic, fault_hook, n):
    t = make_topic(segment_bytes=400)
    log = t.log(0)
    hook = fault_hook(FailFsync(n))
    acked = []
    with pytest.raises(FsyncError):
        for i in range(50):
            [res] = log.append([rec({"i": i}, i=i)])
            acked.append(res.base_offset)
    assert len(hook.calls) == n  # the failed fsync was not retried
    with pytest.raises(FencedError):
        log.append([rec("refused")])
    with pytest.raises(FencedError):
        log.flush()
    fault_hook(None)
    t = reopen(t)
    t.log(0).recover()
    values = [r.value for r in read_all(t)]
    assert values[:len(acked)] == [{"i": i} for i in range(len(acked))]
    assert values[len(acked):] in ([], [{"i": len(acked)}])  # the in-doubt record: whole or absent
    [res] = t.log(0).append([rec("after")])
    assert res.base_offset == len(values)
    t.close()


def test_a_failed_directory_fsync_during_a_roll_fences_the_partition(make_topic, fault_hook, data_dir):
    t = make_topic(segment_bytes=150)
    log = t.log(0)
    log.append([rec("first")])
    fault_hook(FailFsync(1, match=lambda target: os.path.isdir(target)))
    with pytest.raises(FsyncError):
        log.append([rec("rolls")])
    with pytest.raises(FencedError):
        log.append([rec("refused")])
    fault_hook(None)
    t = reopen(t)
    t.log(0).recover()
    assert [r.value for r in read_all(t)] in (["first"], ["first", "rolls"])
    t.log(0).append([rec("after")])
    assert [r.value for r in read_all(t)][-1] == "after"
    t.close()


def test_the_producer_fails_the_future_of_a_record_whose_fsync_failed(make_topic, fault_hook, data_dir):
    make_topic()
    producer = Producer(data_dir, fsync="always", auto_create=False)
    producer.send("t", "ok", partition=0).get()
    fault_hook(FailFsync(1))
    with pytest.raises(FsyncError):
        producer.send("t", "doomed", partition=0).get()
    fault_hook(None)
    with pytest.raises(FencedError):
        producer.send("t", "refused", partition=0).get()


# -- simulated power loss ----------------------------------------------------------------------


class CrashRecorder:
    """Fault hook copying the topic before every fsync, with what was durable at that instant."""

    def __init__(self, topic_dir: str, out_dir: str) -> None:
        self.topic_dir = topic_dir
        self.out_dir = out_dir
        self.durable_size: dict[str, int] = {}
        self.durable_names: dict[str, set[str]] = {}
        self.acked = 0
        self.crashes: list[tuple[str, dict, dict, int]] = []

    def __call__(self, op: str, target: object) -> None:
        if op != "fsync":
            return
        target = os.path.abspath(str(target))
        copy = os.path.join(self.out_dir, f"crash-{len(self.crashes):04d}")
        shutil.copytree(self.topic_dir, copy)
        self.crashes.append((copy, dict(self.durable_size),
                             {d: set(n) for d, n in self.durable_names.items()}, self.acked))
        if os.path.isdir(target):
            self.durable_names[target] = set(os.listdir(target))
        elif os.path.exists(target):
            self.durable_size[target] = os.path.getsize(target)


def tear(data: bytes, durable: int, how: str, seed: int) -> bytes:
    """The bytes a power cut may leave of a file whose first ``durable`` bytes were fsynced."""
    kept, lost = data[:durable], data[durable:]
    if how == "drop":
        return kept
    if how == "keep":
        return data
    if how == "zero":
        return kept + corrupt.zeros(len(lost))
    if how == "garbage":
        return kept + corrupt.garbage(len(lost), seed)
    unit = int(how.split("-")[1])  # torn-512 / torn-4096: whole units of real data, then zeros
    boundary = max(durable, (len(data) // 2) // unit * unit)
    return data[:boundary] + corrupt.zeros(len(data) - boundary)


def build_crash_state(copy: str, topic_dir: str, sizes: dict, names: dict, how: str, lose_names: bool,
                      state: str, seed: int) -> None:
    for root, _dirs, files in os.walk(copy):
        original_dir = os.path.join(topic_dir, os.path.relpath(root, copy))
        for name in files:
            path = os.path.join(root, name)
            if lose_names and original_dir in names and name not in names[original_dir]:
                os.unlink(path)  # created after its directory's last fsync
                continue
            with open(path, "rb") as f:
                data = f.read()
            durable = sizes.get(os.path.join(original_dir, name), 0)
            if name.endswith(".log"):
                data = tear(data, durable, how, seed)
            elif name == "high-watermark" and state != "keep":
                data = b"" if state == "lost" else corrupt.zeros(len(data))
            elif name.endswith("index") and state != "keep":
                data = data[:durable]
            with open(path, "wb") as f:
                f.write(data)


@pytest.mark.slow
def test_power_loss_at_any_fsync_keeps_every_durable_acknowledged_record_and_no_phantom(data_dir, tmp_path,
                                                                                      fault_hook):
    t = Topic.create(data_dir, "t", 1, {"segment.bytes": 900})
    topic_dir = os.path.abspath(t.path)
    recorder = CrashRecorder(topic_dir, str(tmp_path / "crashes"))
    fault_hook(recorder)
    log = t.log(0)
    sent = []
    for i in range(30):
        batch = [{"i": len(sent) + j, "pad": "q" * (17 * i % 300)} for j in range(1 + i % 3)]
        log.append([PendingRecord(T0 + len(sent) + j, "k", None, v) for j, v in enumerate(batch)],
                   FsyncPolicy("always"))
        sent.extend(batch)
        recorder.acked = len(sent)
    fault_hook(None)
    t.close()
    assert len(recorder.crashes) > 40
    states = 0
    variants = [("drop", False, "keep"), ("zero", False, "keep"), ("garbage", True, "lost"),
                ("torn-512", False, "zeroed"), ("torn-4096", True, "keep"), ("keep", False, "lost"),
                ("zero", True, "zeroed")]
    for k, (copy, sizes, names, acked) in enumerate(recorder.crashes):
        for how, lose_names, state in (variants[(k + j) % len(variants)] for j in range(0, len(variants), 2)):
            crash_dir = str(tmp_path / "state")
            shutil.rmtree(crash_dir, ignore_errors=True)
            shutil.copytree(copy, os.path.join(crash_dir, "t"))
            build_crash_state(os.path.join(crash_dir, "t"), topic_dir, sizes, names, how, lose_names, state, k)
            after = Topic(crash_dir, "t")
            after.log(0).recover()
            values = [r.value for r in read_all(after)]
            where = f"crash {k} ({how}, names lost: {lose_names}, state {state})"
            assert values[:acked] == sent[:acked], where  # every durable acknowledged record
            assert values == sent[:len(values)], where  # nothing else but records really sent, in place
            [res] = after.log(0).append([PendingRecord(T0, None, None, "after")])
            assert res.base_offset == len(values), where
            after.close()
            assert tmp_files(crash_dir) == []
            states += 1
    print(f"power loss: {len(recorder.crashes)} crash points, {states} crash states checked")
