"""The command line as a user meets it: help everywhere, README examples that run, clean errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from logbroker import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _commands(group=None, prefix=()):
    group = group or get_command(cli.app)
    for name, cmd in group.commands.items():
        path = prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


ALL_COMMANDS = sorted(_commands())


def run(*args: str, data_dir: Path, input: bytes | None = None, env: dict | None = None):
    full_env = {**os.environ, "LOGBROKER_DATA_DIR": str(data_dir), **(env or {})}
    full_env.pop("KAFKA_TOPIC", None) if not (env and "KAFKA_TOPIC" in env) else None
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=input, capture_output=True,
                          env=full_env, timeout=60)


@pytest.mark.parametrize("path,cmd", ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_has_help_with_an_example(path, cmd):
    assert cmd.help and cmd.help.strip(), f"{' '.join(path)} has no help text"
    assert "Example:" in cmd.help, f"{' '.join(path)} help has no example"


@pytest.mark.parametrize("path", [p for p, _ in ALL_COMMANDS], ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_appears_in_the_readme(path):
    assert f"logbroker {' '.join(path)}" in README, f"`logbroker {' '.join(path)}` is not in README.md"


def test_publish_reports_bad_lines_by_number_and_keeps_the_good_ones(tmp_path):
    done = run("publish", "t", data_dir=tmp_path, input=b'{"a": 1}\nnot json\n\n{"b": 2}\n')
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "line 2: invalid JSON" in err and "line 3" not in err  # an empty line is no error
    assert "Published 2 records" in err and "(1 failed" in err and "1 empty line skipped" in err
    assert "Traceback" not in err


def test_publish_skips_empty_lines_as_kafkas_console_producer_does(tmp_path):
    done = run("publish", "t", "--partitions", "1", data_dir=tmp_path, input=b'{"a": 1}\n\n   \n\r\n')
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "created topic 't' with 1 partition (" in err
    assert "Published 1 record to t (0 failed, 100.0% success); per partition: 0: 1 (last offset 0)" in err


def test_unknown_topic_is_one_clear_line_and_exit_code_1(tmp_path):
    done = run("topics", "describe", "nope", data_dir=tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        f"error: topic 'nope' does not exist in {tmp_path} (--data-dir DIR or LOGBROKER_DATA_DIR=DIR to look elsewhere)"]


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc", "x" * 250, "caf\u00e9", "a b"])
def test_invalid_topic_names_are_refused_and_nothing_is_created(tmp_path, name):
    done = run("topics", "create", "--", name, data_dir=tmp_path)
    assert done.returncode == 2
    assert "error: topic name" in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    assert not any(tmp_path.iterdir())


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    done = run("topics", "list", data_dir=f)
    assert done.returncode == 2
    assert "is not a directory" in done.stderr.decode()
    assert f.read_text() == "x"


def test_inspect_verify_exits_3_and_names_the_position_of_a_flipped_byte(tmp_path):
    assert run("topics", "create", "t", "--partitions", "1", data_dir=tmp_path).returncode == 0
    lines = b"".join(b'{"n": %d}\n' % i for i in range(20))
    assert run("publish", "t", data_dir=tmp_path, input=lines).returncode == 0
    seg = tmp_path / "t" / "t-0" / "00000000000000000000.log"
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x01
    seg.write_bytes(bytes(data))
    done = run("inspect", str(seg.parent), "--verify", data_dir=tmp_path)
    assert done.returncode == 3
    assert "position" in done.stderr.decode()


def test_consume_with_an_offset_beyond_the_log_end_is_an_error_naming_the_valid_range(tmp_path):
    assert run("topics", "create", "t", "--partitions", "1", data_dir=tmp_path).returncode == 0
    assert run("publish", "t", data_dir=tmp_path, input=b'{"n": 1}\n{"n": 2}\n').returncode == 0
    done = run("consume", "t", "--partition", "0", "--offset", "99", "--max-messages", "1", data_dir=tmp_path)
    assert done.returncode == 1
    assert "valid offsets are 0 (log start) to 2 (log end)" in done.stderr.decode()


@pytest.mark.slow
def test_consume_from_an_offset_prints_values_and_the_kafka_summary(tmp_path):
    assert run("topics", "create", "t", "--partitions", "1", data_dir=tmp_path).returncode == 0
    assert run("publish", "t", data_dir=tmp_path, input=b'{"n": 1}\n{"n": 2}\n{"n": 3}\n').returncode == 0
    done = run("consume", "t", "--partition", "0", "--offset", "1", "--timeout-ms", "300", data_dir=tmp_path)
    assert done.returncode == 0
    assert done.stdout.decode().splitlines() == ['{"n":2}', '{"n":3}']
    assert "Processed a total of 2 messages" in done.stderr.decode()


@pytest.mark.slow
def test_two_groups_each_get_every_record_and_one_group_resumes_where_it_stopped(tmp_path):
    assert run("topics", "create", "t", "--partitions", "3", data_dir=tmp_path).returncode == 0
    lines = b"".join(b'{"n": %d}\n' % i for i in range(12))
    assert run("publish", "t", data_dir=tmp_path, input=lines).returncode == 0
    first = run("consume", "t", "--group", "a", "--from-beginning", "--max-messages", "5", data_dir=tmp_path)
    rest = run("consume", "t", "--group", "a", "--timeout-ms", "500", data_dir=tmp_path)
    other = run("consume", "t", "--group", "b", "--from-beginning", "--timeout-ms", "500", data_dir=tmp_path)
    got_a = first.stdout.decode().split() + rest.stdout.decode().split()
    assert sorted(got_a) == sorted(f'{{"n":{i}}}' for i in range(12))
    assert sorted(other.stdout.decode().split()) == sorted(got_a)


@pytest.mark.slow
def test_replay_to_another_topic_keeps_keys_timestamps_and_order(tmp_path):
    import orjson

    assert run("topics", "create", "src", "--partitions", "1", data_dir=tmp_path).returncode == 0
    assert run("publish", "src", "--key", "k", data_dir=tmp_path, input=b'{"a": 1}\n{"a": 2}\n').returncode == 0
    done = run("replay", "src", "--from-offset", "0", "--to-topic", "dst", data_dir=tmp_path)
    assert done.returncode == 0 and "Replayed 2 records from src into dst" in done.stderr.decode()
    src = [orjson.loads(line) for line in run("consume", "src", "--from-beginning", "--timeout-ms", "300",
                                               "--format", "envelope", data_dir=tmp_path).stdout.splitlines()]
    dst = [orjson.loads(line) for line in run("consume", "dst", "--from-beginning", "--timeout-ms", "300",
                                               "--format", "envelope", data_dir=tmp_path).stdout.splitlines()]
    assert [(r["key"], r["timestamp"], r["value"]) for r in dst] == [(r["key"], r["timestamp"], r["value"]) for r in src]


@pytest.mark.slow
def test_topics_create_if_not_exists_succeeds_on_an_existing_topic_and_changes_nothing(tmp_path):
    assert run("topics", "create", "t", "--partitions", "2", data_dir=tmp_path).returncode == 0
    again = run("topics", "create", "t", "--partitions", "5", "--if-not-exists", data_dir=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stderr.decode().strip() == "Topic t already exists with 2 partitions; nothing changed."
    assert run("topics", "create", "t", data_dir=tmp_path).returncode == 1
