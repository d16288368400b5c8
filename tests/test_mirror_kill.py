"""kill -9 of a mirror process at random points, then a rerun: the target ends identical to the source,
each record exactly once, and the group positions translated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from logbroker import Broker
from logbroker.errors import UnknownTopicError
from logbroker.storage.topic import Topic

from kafka_support import module_server
from mirror_support import commit, end_offsets, fill, shifted, source_records, target_records

PARTITIONS = 3
RECORDS = 40_000  # per partition: a copy long enough that a kill lands inside it on a fast machine


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    yield from module_server(tmp_path_factory, "mirror-kill-target")


def appended(data_dir: str, topic: str) -> int:
    """Records the server has appended to ``topic``, read from its files: cheap enough to poll every
    10 ms, so a kill lands within a few hundred records of its point however fast the copy runs."""
    try:
        t = Topic(data_dir, topic)
    except UnknownTopicError:
        return 0
    try:
        return sum(t.reader(p).high_watermark() for p in range(t.partitions))
    finally:
        t.close()


def mirror_command(source: str, bootstrap: str, topic: str) -> list[str]:
    return [sys.executable, "-m", "logbroker", "--data-dir", source, "mirror", topic, "--to-bootstrap-server", bootstrap]


@pytest.mark.slow
def test_kill_9_at_random_points_then_a_rerun_leaves_each_record_exactly_once(target, tmp_path):
    source = str(tmp_path / "source")
    fill(source, "killed", partitions=PARTITIONS, records=RECORDS)
    Broker(source).delete_records([("killed", 1, 777)])
    commit(source, "app", {("killed", 0): 5000, ("killed", 1): 100, ("killed", 2): 7999})
    total = PARTITIONS * RECORDS - 777
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    # Kill points: a few moments after start (connecting, creating, committing the base), then after
    # a random number of acknowledged records, increasing.
    points = [("after_s", rng.uniform(0.0, 0.6))] + [("acked", n) for n in sorted(rng.sample(range(1, total), 5))]
    mid_copy = 0
    for kind, point in points:
        proc = subprocess.Popen(mirror_command(source, target.bootstrap, "killed"), stderr=subprocess.PIPE)
        started = time.monotonic()
        acked = 0
        while proc.poll() is None:
            if kind == "after_s" and time.monotonic() - started >= point:
                break
            if kind == "acked":
                acked = appended(target.data_dir, "killed")
                if acked >= point:
                    break
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            mid_copy += 0 < acked < total
        proc.wait()
        stderr = proc.stderr.read().decode()
        assert proc.returncode in (0, -signal.SIGKILL), (seed, stderr)
    done = subprocess.run(mirror_command(source, target.bootstrap, "killed"), capture_output=True, text=True)
    assert done.returncode == 0, (seed, done.stderr)
    assert mid_copy >= 1, f"no kill landed in the middle of the copy (seed {seed})"
    assert target_records(target.bootstrap, "killed", PARTITIONS) == shifted(source_records(source, "killed")), seed
    from test_mirror import committed_on_target
    assert [committed_on_target(target.bootstrap, "app", "killed", p) for p in range(PARTITIONS)] == [5000, 0, 7999]


@pytest.mark.slow
def test_ctrl_c_stops_a_copy_with_its_summary_and_exit_130_and_a_rerun_finishes_it(target, tmp_path):
    source = str(tmp_path / "source")
    fill(source, "interrupted", partitions=2, records=50000)  # a copy long enough for Ctrl+C to land in it
    proc = subprocess.Popen(mirror_command(source, target.bootstrap, "interrupted"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked = 0
    while acked == 0 and proc.poll() is None:
        acked = appended(target.data_dir, "interrupted")
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    copied = int(stderr.splitlines()[-1].split()[1].replace(",", ""))
    assert 0 < copied < 100000 and copied == sum(end_offsets(target.bootstrap, "interrupted", 2))
    rerun = subprocess.run(mirror_command(source, target.bootstrap, "interrupted"), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert int(rerun.stdout.splitlines()[-1].split()[1].replace(",", "")) == 100000 - copied
    assert target_records(target.bootstrap, "interrupted", 2) == source_records(source, "interrupted")
