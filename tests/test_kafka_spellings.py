"""What a Kafka user types works with the same meaning as logbroker's own spelling.

kafka-topics / kafka-console-producer / kafka-consumer-groups take ``--topic``, ``--group``,
``--property`` and ``--bootstrap-server``; logbroker accepts them beside its positional names.
(consume's spellings are in test_consume_cli.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(data_dir: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_TOPIC", "KAFKA_CONSUMER_GROUP")}
    env["LOGBROKER_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=input, capture_output=True,
                          env=env, timeout=60)


def ok(data_dir: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    done = run(data_dir, *args, input=input)
    assert done.returncode == 0, f"{args}: {done.stderr.decode()}"
    return done


@pytest.mark.slow
def test_topic_commands_take_kafkas_topic_option(tmp_path):
    ok(tmp_path, "topics", "create", "--topic", "t", "--partitions", "2")
    assert "PartitionCount: 2" in ok(tmp_path, "topics", "describe", "--topic", "t").stdout.decode()
    altered = ok(tmp_path, "topics", "alter", "--topic", "t", "--config", "segment.bytes=1048576")
    assert "Altered topic t: 2 partitions; config segment.bytes=1048576," in altered.stderr.decode()
    assert "{" not in altered.stderr.decode()  # no Python dict repr
    ok(tmp_path, "topics", "delete", "--topic", "t")
    assert ok(tmp_path, "topics", "list").stdout == b""


def test_publish_parses_keys_and_adds_headers_like_the_kafka_console_producer(tmp_path):
    ok(tmp_path, "topics", "create", "t", "--partitions", "1")
    done = ok(tmp_path, "publish", "--topic", "t", "--property", "parse.key=true", "--property", "key.separator=:",
              "--header", "source=test", "--header", "v=1", input=b'user-1:{"n": 1}\nuser-2:{"n": 2}\n')
    assert "Published 2 records" in done.stderr.decode()
    out = ok(tmp_path, "consume", "t", "--from-beginning", "--max-messages", "2", "--format", "envelope").stdout
    records = [orjson.loads(line) for line in out.splitlines()]
    assert [(r["key"], r["value"], r["headers"]) for r in records] == [
        ("user-1", {"n": 1}, {"source": "test", "v": "1"}), ("user-2", {"n": 2}, {"source": "test", "v": "1"})]


def test_publish_with_parse_key_reports_a_line_without_the_separator(tmp_path):
    done = run(tmp_path, "publish", "t", "--property", "parse.key=true", input=b'k\t{"n": 1}\n{"n": 2}\n')
    assert done.returncode == 1
    assert "line 2: no key separator '\\t' in the line (parse.key=true)" in done.stderr.decode()


def test_publish_refuses_parse_key_with_a_fixed_key_and_an_unknown_property(tmp_path):
    both = run(tmp_path, "publish", "t", "--key", "k", "--property", "parse.key=true", input=b"")
    assert both.returncode == 2 and "leave out --key" in both.stderr.decode()
    unknown = run(tmp_path, "publish", "t", "--property", "acks=all", input=b"")
    assert unknown.returncode == 2 and "--property acks is not supported" in unknown.stderr.decode()


@pytest.mark.slow
def test_group_commands_take_kafkas_group_option(tmp_path):
    ok(tmp_path, "topics", "create", "t", "--partitions", "1")
    ok(tmp_path, "publish", "t", input=b'{"n": 1}\n{"n": 2}\n')
    ok(tmp_path, "consume", "t", "--group", "g", "--from-beginning", "--max-messages", "2")
    assert "CURRENT-OFFSET" in ok(tmp_path, "groups", "describe", "--group", "g").stdout.decode()
    ok(tmp_path, "groups", "reset-offsets", "--group", "g", "--topic", "t", "--to-earliest", "--execute")
    described = orjson.loads(ok(tmp_path, "groups", "describe", "--group", "g", "--json").stdout)
    assert [row["current_offset"] for row in described] == [0]
    ok(tmp_path, "groups", "delete", "--group", "g")
    assert ok(tmp_path, "groups", "list").stdout == b""


def test_a_malformed_bootstrap_server_or_a_lone_command_config_is_one_line(tmp_path):
    for args, message in ((["--bootstrap-server", "localhost"], "'localhost' is not HOST:PORT"),
                          (["--command-config", "client.properties"], "--command-config needs --bootstrap-server")):
        for command in (["topics", "list"], ["groups", "list"], ["consume", "t"]):
            done = run(tmp_path, *command, *args)
            err = done.stderr.decode()
            assert done.returncode == 2 and message in err and len(err.splitlines()) == 1, (command, err)
