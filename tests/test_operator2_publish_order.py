"""``logbroker publish`` keeps the input's order in a partition whatever the lines' sizes.

Before the fix, a line within max.message.bytes but close to it (past the limit less the producer's
size estimate of a record's envelope) was sent on its own at once, while the lines read before it in
the same read waited to be sent together at the end of the read: it overtook them. A 1,000-line file
into a one-partition topic stored line 601 at offset 0, before lines 1 to 600.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(data_dir: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGBROKER_DATA_DIR": data_dir}
    return subprocess.run([sys.executable, "-m", "logbroker", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("too_large", [False, True], ids=["near-the-limit", "and-one-too-large"])
def test_publish_stores_lines_near_max_message_bytes_in_input_order(data_dir, too_large):
    assert run(data_dir, "topics", "create", "t", "--partitions", "1", "--config",
               "max.message.bytes=5000").returncode == 0
    sizes = {600: 4900, 601: 4850}  # lines that fit, but only just
    if too_large:
        sizes[500] = 6000
    lines = [json.dumps({"i": i, "pad": "x" * sizes.get(i, 10)}) for i in range(1000)]
    published = run(data_dir, "publish", "t", stdin="".join(line + "\n" for line in lines))
    expected = [i for i in range(1000) if sizes.get(i, 0) < 5000]
    assert published.returncode == (1 if too_large else 0), published.stderr
    assert f"Published {len(expected):,} records" in published.stderr
    stored = run(data_dir, "consume", "t", "--from-beginning", "--timeout-ms", "500")
    assert [json.loads(line)["i"] for line in stored.stdout.splitlines()] == expected
