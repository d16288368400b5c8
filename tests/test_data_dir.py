"""Which data directory a command uses, and that only commands that write ever create it.

A read-only command run in the wrong directory must not leave an empty ./segments behind; it says
where it looked and how to point elsewhere. A command that writes says when it created the data
directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

READ_ONLY = {
    "topics list": ["topics", "list"],
    "groups list": ["groups", "list"],
    "topics describe": ["topics", "describe", "orders"],
    "groups describe": ["groups", "describe", "billing"],
    "retention --dry-run": ["retention", "--dry-run"],
    "retention": ["retention"],
    "recover": ["recover"],
    "bench consume": ["bench", "consume", "--topic", "orders"],
    "replay": ["replay", "orders", "--from-offset", "0"],
    "consume": ["consume", "orders", "--timeout-ms", "100"],
    "topics delete": ["topics", "delete", "orders"],
    "groups delete": ["groups", "delete", "billing"],
    "reset-offsets": ["groups", "reset-offsets", "billing", "--topic", "orders", "--to-earliest"],
}


def run_in(cwd: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LOGBROKER_DATA_DIR", "KAFKA_TOPIC", "KAFKA_CONSUMER_GROUP")}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd, env=env, input=input,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("name", list(READ_ONLY))
def test_a_read_only_command_creates_nothing_and_says_where_it_looked(tmp_path, name):
    done = run_in(tmp_path, *READ_ONLY[name])
    assert list(tmp_path.iterdir()) == [], f"{name} created {list(tmp_path.iterdir())}"
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert str(tmp_path / "segments") in err and "--data-dir" in err, err


def test_publish_into_a_new_data_directory_says_where_it_created_it(tmp_path):
    done = run_in(tmp_path, "publish", "orders", input=b'{"n": 1}\n')
    assert done.returncode == 0, done.stderr
    assert f"Created data directory {tmp_path / 'segments'}" in done.stderr.decode()
    again = run_in(tmp_path, "publish", "orders", input=b'{"n": 2}\n')
    assert "Created data directory" not in again.stderr.decode()


def test_retention_with_nothing_to_delete_says_why_per_partition(tmp_path):
    assert run_in(tmp_path, "publish", "orders", "--partitions", "1", input=b'{"n": 1}\n').returncode == 0
    lines = run_in(tmp_path, "retention").stdout.decode().splitlines()
    assert lines[0] == "Nothing to delete:"
    assert lines[1].startswith("  orders-0: all of it is in the active segment (") and "never deleted" in lines[1]
