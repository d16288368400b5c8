"""What people read: tables that match the commands they name, members one can find and stop, no
Python reprs, agreeing plurals, help without typer's placeholders."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logbroker import Broker, Producer
from logbroker import cli
from logbroker.cli import typer_plain as cli_typer
from logbroker.storage.consumer_record import Record
from logbroker.tools.pretty import format_pretty

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "cli.py")]


def env_for(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_TOPIC", "KAFKA_CONSUMER_GROUP")}
    return {**env, "LOGBROKER_DATA_DIR": str(data_dir), **extra}


def run(data_dir: Path, *args: str, input: bytes | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=input, capture_output=True, env=env_for(data_dir, **env), timeout=120)


def section(text: str, title: str) -> list[str]:
    """The indented lines under a numbered demo heading containing ``title``, dedented."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line) + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("   "):
            break
        out.append(line[3:])
    return out


@pytest.mark.slow
def test_the_demo_tables_are_the_tables_of_the_commands_they_name(tmp_path):
    demo = run(tmp_path, "demo", "--orders", "6")
    assert demo.returncode == 0, demo.stderr
    text = demo.stdout.decode()
    topic = "kpop_merchandise_orders_demo"
    assert section(text, f"(logbroker topics describe {topic})") == \
        run(tmp_path, "topics", "describe", topic).stdout.decode().splitlines()
    for group in ("shipping", "analytics"):
        assert section(text, f"(logbroker groups describe {group})") == \
            run(tmp_path, "groups", "describe", group).stdout.decode().splitlines()


@pytest.mark.slow
def test_groups_describe_shows_idle_members_with_host_and_pid_and_explains_auto_commit(tmp_path):
    Broker(tmp_path).create_topic("t", 1)
    consumers = [subprocess.Popen([*CLI, "consume", "t", "--group", "g"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env_for(tmp_path)) for _ in range(2)]
    try:
        for _ in range(600):  # until both have joined and the rebalance settled (a guard, not a timing assertion)
            out = run(tmp_path, "groups", "describe", "g").stdout.decode() if (tmp_path / "t" / "groups").exists() else ""
            # While the partition moves, describe truthfully shows it unowned beside two idle members.
            if all(re.search(rf"\s{c.pid}\s", out) for c in consumers) and len(out.splitlines()) == 4:
                break
            time.sleep(0.05)
        header, *rows = out.splitlines()[1:]
        assert header.split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-TIME",
                                  "CONSUMER-ID", "HOST", "PID", "CLIENT-ID"]
        assert sorted(row.split()[1] for row in rows) == ["-", "0"]  # one owner, one idle member
        assert sorted(int(row.split()[8]) for row in rows) == sorted(c.pid for c in consumers)
        assert "commit every 5 s (auto-commit)" in run(tmp_path, "groups", "describe", "g").stderr.decode()
    finally:
        for c in consumers:
            c.terminate()
            c.wait(timeout=30)
    assert "auto-commit" not in run(tmp_path, "groups", "describe", "g").stderr.decode()  # nobody live


def test_no_python_reprs_in_pretty_records_and_inspect_dumps(tmp_path):
    plain = Record("t", 0, {"offset": 3, "timestamp": 0, "key": None, "value": [1, 2]})
    keyed = Record("t", 0, {"offset": 4, "timestamp": 0, "key": "user-1", "value": [1]})
    assert "(t, partition 0, offset 3, no key)" in format_pretty(plain, 1)
    assert "(t, partition 0, offset 4, key user-1)" in format_pretty(keyed, 2)
    Broker(tmp_path).create_topic("t", 1)
    with Producer(tmp_path) as producer:
        producer.send("t", {"n": 1})
        producer.send("t", {"n": 2}, key="k", headers={"h": "v"})
        producer.flush()
    dump = run(tmp_path, "inspect", str(tmp_path / "t" / "t-0"), "--print-records").stdout.decode()
    assert "key: null headers: {} value: {\"n\":1}" in dump
    assert 'key: "k" headers: {"h":"v"} value: {"n":2}' in dump
    assert "None" not in dump


@pytest.mark.slow
def test_counts_agree_with_their_nouns(tmp_path):
    one = run(tmp_path, "topics", "create", "t", "--partitions", "1")
    assert "Created topic t with 1 partition." in one.stderr.decode()
    run(tmp_path, "publish", "t", input=b'{"n": 1}\n')
    run(tmp_path, "consume", "t", "-g", "g", "--from-beginning", "--max-messages", "1")
    assert "Processed a total of 1 message\n" in run(tmp_path, "consume", "t", "--offset", "earliest",
                                                       "--max-messages", "1").stderr.decode()
    reset = run(tmp_path, "groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute")
    assert "Reset 1 partition of group g." in reset.stderr.decode()
    assert run(tmp_path, "recover", "t").stdout.decode().strip() == "The only partition is clean."
    assert run(tmp_path, "replay", "t", "--from-offset", "0").stderr.decode().endswith("Replayed 1 record\n")
    assert "(1 record, " in run(tmp_path, "inspect", str(tmp_path / "t" / "t-0")).stdout.decode()


def test_replay_honours_kafka_topic_like_publish_and_consume(tmp_path):
    run(tmp_path, "publish", "t", "--partitions", "1", input=b'{"n": 1}\n')
    done = run(tmp_path, "replay", "--from-offset", "0", "--format", "json", KAFKA_TOPIC="t")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b'{"n":1}\n'


def _helps():
    root = cli_typer.plain_command(cli.app)
    todo = [((), root)]
    while todo:
        path, cmd = todo.pop()
        yield path, cmd
        todo.extend((path + (name,), sub) for name, sub in getattr(cmd, "commands", {}).items())


@pytest.mark.parametrize("path,cmd", list(_helps()), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_has_no_typer_placeholders(path, cmd):
    ctx = cmd.make_context(" ".join(("logbroker", *path)), ["--help"], resilient_parsing=True)
    text = cmd.get_help(ctx)
    assert not re.search(r"\{\w+\}|<\w+(\[\w+\])?>", text), text
    for name, sub in getattr(cmd, "commands", {}).items():
        assert "..." not in sub.get_short_help_str(limit=45), f"{name}: {sub.get_short_help_str(limit=45)}"
