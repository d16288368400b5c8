"""Errors that name what failed: a full disk names the file it failed on (standard output included),
and ``max.message.bytes`` is judged, and reported, on the exact size of the encoded line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from logbroker import Broker, Producer
from logbroker.clients.consumer import Consumer
from logbroker.errors import DiskFullError, RecordTooLargeError
from logbroker.storage.segment import log_name

ROOT = Path(__file__).resolve().parent.parent


def stored_line_size(data_dir, value) -> int:
    """The length of the line ``value`` gets when written alone at offset 0 of a fresh topic."""
    Broker(data_dir).create_topic("wide", 1)
    with Producer(data_dir) as p:
        p.send("wide", value).get()
    return os.path.getsize(os.path.join(data_dir, "wide", "wide-0", log_name(0)))


def test_max_message_bytes_accepts_a_record_whose_encoded_line_fits(data_dir):
    value = "v" * 1877
    size = stored_line_size(data_dir, value)
    Broker(data_dir).create_topic("t", 1, {"max.message.bytes": size})
    with Producer(data_dir) as p:
        assert p.send("t", value).get().offset == 0


def test_max_message_bytes_refuses_with_the_exact_encoded_size(data_dir):
    value = {"text": "w" * 1877, "n": [1, 2, 3]}
    size = stored_line_size(data_dir, value)
    Broker(data_dir).create_topic("t", 1, {"max.message.bytes": size - 1})
    with Producer(data_dir) as p:
        with pytest.raises(RecordTooLargeError) as info:
            p.send("t", value)
    assert f"record is {size} bytes as a line after encoding, larger than max.message.bytes={size - 1}" in str(info.value)


def test_a_full_disk_while_joining_a_group_names_the_member_file(data_dir, monkeypatch):
    Broker(data_dir).create_topic("t", 1)

    def full(fd, data, position):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(DiskFullError) as info:
        Consumer("t", data_dir=data_dir, group_id="g")
    assert "members" in info.value.path and info.value.path in str(info.value)
    assert "No space left on device" in str(info.value)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_under_standard_output_is_named(data_dir):
    Broker(data_dir).create_topic("t", 1)
    with Producer(data_dir) as p:
        for i in range(3000):
            p.send("t", {"i": i, "pad": "x" * 50})
    env = {**os.environ, "LOGBROKER_DATA_DIR": data_dir}
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "consume", "t", "--from-beginning",
                               "--timeout-ms", "300"], stdout=full, stderr=subprocess.PIPE, env=env, timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "error: No space left on device: standard output (/dev/full)" in err, err
    assert "Traceback" not in err
