"""State files damaged under a running installation: a ``.timeindex`` zero-filled (a disk or
filesystem that lost the file's blocks, an operator's ``dd``) while the log itself is intact.

Indexes are derived data that is never trusted blindly. Before the fix, the closing entry of a
closed segment's ``.timeindex`` was: zero-filled, it said the segment's newest record was from 1970,
so ``logbroker retention`` deleted a segment of fresh records under ``retention.ms=1h`` (records
lost) and ``consume --from-time`` skipped the segment (it started 20 records late).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from corrupt import overwrite, zeros
from logbroker.storage.segment import list_segments, timeindex_name


def run(data_dir: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGBROKER_DATA_DIR": data_dir}
    return subprocess.run([sys.executable, "-m", "logbroker", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("index_interval", ["4096", "100"], ids=["closing-entry-only", "with-entries"])
def test_a_zero_filled_timeindex_neither_deletes_fresh_records_nor_skips_them_by_time(data_dir, index_interval):
    assert run(data_dir, "topics", "create", "t", "--partitions", "1", "--config", "segment.bytes=2000",
               "--config", "retention.ms=3600000", "--config", f"index.interval.bytes={index_interval}").returncode == 0
    for k in range(6):  # one batch per run: a segment rolls every two runs
        lines = "".join(json.dumps({"i": 10 * k + i}) + "\n" for i in range(10))
        assert run(data_dir, "publish", "t", stdin=lines).returncode == 0
    partition_dir = os.path.join(data_dir, "t", "t-0")
    assert len(list_segments(partition_dir)) >= 3
    timeindex = os.path.join(partition_dir, timeindex_name(0))
    overwrite(timeindex, 0, zeros(os.path.getsize(timeindex)))

    first = run(data_dir, "consume", "t", "--from-time", "2020-01-01T00:00:00", "--max-messages", "1")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"i": 0}  # the first record is newer than 2020

    retention = run(data_dir, "retention", "t")
    assert retention.returncode == 0, retention.stderr
    everything = run(data_dir, "consume", "t", "--from-beginning", "--timeout-ms", "500")
    assert [json.loads(line)["i"] for line in everything.stdout.splitlines()] == list(range(60))


@pytest.mark.slow
def test_a_zero_filled_cleaner_checkpoint_is_reported_and_repaired_so_compaction_runs_again(data_dir):
    assert run(data_dir, "topics", "create", "c", "--partitions", "1", "--config", "cleanup.policy=compact",
               "--config", "segment.bytes=1500", "--config", "min.compaction.lag.ms=0").returncode == 0
    for generation in range(6):
        lines = "".join(json.dumps({"k": f"k{k}", "v": generation}) + "\n" for k in range(8))
        assert run(data_dir, "publish", "c", "--key-field", "k", stdin=lines).returncode == 0
    assert run(data_dir, "compact", "c").returncode == 0
    checkpoint = os.path.join(data_dir, "c", "c-0", "cleaner-offset-checkpoint")
    overwrite(checkpoint, 0, zeros(os.path.getsize(checkpoint)))

    refused = run(data_dir, "compact", "c")  # a clear refusal, pointing at the way out
    assert refused.returncode != 0
    assert "cleaner-offset-checkpoint" in refused.stderr and "logbroker recover c" in refused.stderr
    verify = run(data_dir, "inspect", os.path.join(data_dir, "c", "c-0"), "--verify")
    assert verify.returncode != 0 and "rewrite cleaner-offset-checkpoint" in verify.stdout + verify.stderr
    recovered = run(data_dir, "recover", "c")
    assert recovered.returncode == 0, recovered.stderr
    assert "rewrite cleaner-offset-checkpoint" in recovered.stdout + recovered.stderr
    assert run(data_dir, "inspect", os.path.join(data_dir, "c", "c-0"), "--verify").returncode == 0

    lines = "".join(json.dumps({"k": f"k{k}", "v": 6}) + "\n" for k in range(8))
    assert run(data_dir, "publish", "c", "--key-field", "k", stdin=lines).returncode == 0
    compacted = run(data_dir, "compact", "c")
    assert compacted.returncode == 0, compacted.stderr
    everything = run(data_dir, "consume", "c", "--from-beginning", "--timeout-ms", "500")
    latest = {}
    for line in everything.stdout.splitlines():
        value = json.loads(line)
        latest[value["k"]] = value["v"]
    assert latest == {f"k{k}": 6 for k in range(8)}
