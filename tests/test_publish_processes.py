"""``logbroker publish`` as a real process: live over a pipe held open, and Ctrl+C mid-stream.

Visibility is asserted with a generous bound only (the figure itself is in benchmarks/).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import orjson
import pytest

from waiting import wait_until
from logbroker import Broker

pytestmark = pytest.mark.slow


def _publisher(data_dir, *args):
    env = {**os.environ, "LOGBROKER_DATA_DIR": str(data_dir)}
    env.pop("KAFKA_TOPIC", None)
    return subprocess.Popen([sys.executable, "-m", "logbroker", "publish", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _visible(data_dir, topic, partitions):
    broker = Broker(data_dir)
    try:
        t = broker.topic(topic)
    except Exception:  # noqa: BLE001 (not created yet)
        return []
    out = []
    for p in range(partitions):
        out += [(p, r.offset, r.value) for r in t.reader(p).read(0, 1_000_000)]
    return out


def _appended(data_dir, topic, partitions):
    """How many records are readable: the high watermarks, cheap enough to poll while a fast
    publisher runs (re-reading every record would let it finish first on a slow machine)."""
    try:
        t = Broker(data_dir).topic(topic)
    except Exception:  # noqa: BLE001 (not created yet)
        return 0
    try:
        return sum(t.reader(p).high_watermark() for p in range(partitions))
    finally:
        t.close()


def test_a_line_written_to_a_pipe_held_open_is_visible_while_publish_still_runs(tmp_path):
    proc = _publisher(tmp_path, "live", "--partitions", "1")
    try:
        proc.stdin.write(b'{"n": 1}\n')
        proc.stdin.flush()
        assert wait_until(lambda: _visible(tmp_path, "live", 1), "the first line to be readable") == [(0, 0, {"n": 1})]
        proc.stdin.write(b'{"n": 2}\n')
        proc.stdin.flush()
        wait_until(lambda: len(_visible(tmp_path, "live", 1)) == 2, "the second line to be readable",
                   seen=lambda: _visible(tmp_path, "live", 1))
        # a following console consumer sees both while the publisher still holds its input open
        env = {**os.environ, "LOGBROKER_DATA_DIR": str(tmp_path)}
        env.pop("KAFKA_TOPIC", None)
        done = subprocess.run([sys.executable, "-m", "logbroker", "consume", "live", "--from-beginning",
                               "--max-messages", "2", "--timeout-ms", "20000"],
                              capture_output=True, env=env, timeout=60)
        assert [orjson.loads(x) for x in done.stdout.splitlines()] == [{"n": 1}, {"n": 2}]
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        proc.wait(60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    assert "Published 2 records to live" in err


@pytest.mark.parametrize("partitions", [1, 3])
def test_ctrl_c_during_a_large_publish_prints_what_was_acknowledged_and_nothing_else_is_visible(tmp_path, partitions):
    proc = _publisher(tmp_path, "big", "--partitions", str(partitions))
    stop = threading.Event()

    def feed():
        n = 0
        try:
            while not stop.is_set() and n < 3_000_000:
                proc.stdin.write(b"".join(b'{"n": %d, "pad": "%s"}\n' % (n + i, b"x" * 100) for i in range(1000)))
                n += 1000
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_until(lambda: _appended(tmp_path, "big", partitions) > 5000, "5,000 records to be readable",
                   seen=lambda: f"{_appended(tmp_path, 'big', partitions)} records")
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    m = re.search(r"Interrupted after line ([\d,]+)\. Published ([\d,]+) records to big \(0 failed, 100\.0% success\); "
                  r"per partition: (.*)$", err, re.M)
    assert m, err
    read, published = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
    assert read == published  # every line read was published: a rerun resumes after line `read`
    claimed = {int(p): (int(n), int(last)) for p, n, last in
               re.findall(r"(\d+): (\d+) \(last offset (\d+)\)", m.group(3))}
    # what a reader sees is exactly what the summary claims: nothing past it, nothing half-visible
    records = _visible(tmp_path, "big", partitions)
    assert len(records) == published
    for p in range(partitions):
        offsets = [o for q, o, _ in records if q == p]
        assert (len(offsets), offsets[-1]) == claimed[p]
    # the published lines are the first ones of the input: a rerun resumes after them
    assert sorted(v["n"] for _, _, v in records) == list(range(published))
    # and a writer's tail check finds nothing beyond them either
    Broker(tmp_path).recover("big")
    assert len(_visible(tmp_path, "big", partitions)) == published
