"""Bad filesystems and configuration: symlinks, unwritable or misplaced data directories, unknown topics and groups, bad configs, damaged metadata.

Part of the bad-input catalogue: its rules and sandbox are in ``badinput.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from badinput import Box, one_error_line, refused


# -- filesystem ---------------------------------------------------------------------------------------

def move_out(box: Box, rel: str) -> Path:
    """Move ``data/<rel>`` out to ``outside/...`` and leave a symlink to it in its place."""
    src = box.data / rel
    dst = box.root / "outside" / rel.replace("/", "_")
    dst.parent.mkdir(exist_ok=True)
    os.rename(src, dst)
    os.symlink(dst, src)
    box.mark()
    return dst


SYMLINK_TOPIC_COMMANDS = {
    "describe": ["topics", "describe", "t"],
    "delete": ["topics", "delete", "t"],
    "alter": ["topics", "alter", "t", "--config", "retention.ms=5"],
    "publish": ["publish", "t"],
    "consume": ["consume", "t", "--from-beginning", "--timeout-ms", "50"],
    "retention": ["retention", "t"],
    "create-over-it": ["topics", "create", "t"],
}


@pytest.mark.parametrize("command", list(SYMLINK_TOPIC_COMMANDS))
def test_symlinked_topic_directory(box, command):
    move_out(box, "t")
    refused(box, *SYMLINK_TOPIC_COMMANDS[command], input=b'{"n": 1}\n',
            needles=("topic directory", f"{box.data / 't'} is a symbolic link"), code=2)


SYMLINK_PARTITION_COMMANDS = {
    "describe": ["topics", "describe", "t"],
    "publish": ["publish", "t"],
    "consume": ["consume", "t", "--partition", "0", "--offset", "10", "--timeout-ms", "50"],
    "replay": ["replay", "t", "--from-offset", "10"],
    "retention": ["retention", "t"],
    "recover": ["recover", "t"],
    "groups-describe": ["groups", "describe", "g"],
}


@pytest.mark.parametrize("command", list(SYMLINK_PARTITION_COMMANDS))
def test_symlinked_partition_directory(box, command):
    move_out(box, "t/t-0")
    refused(box, *SYMLINK_PARTITION_COMMANDS[command], input=b'{"n": 1}\n',
            needles=("partition directory", "t-0 is a symbolic link"), code=2)


def _active_segment(box: Box) -> str:
    logs = sorted(n for n in os.listdir(box.data / "t" / "t-0") if n.endswith(".log"))
    return logs[-1]


SYMLINK_SEGMENT_COMMANDS = {
    "publish": ["publish", "t"],
    "consume": ["consume", "t", "--partition", "0", "--offset", "28", "--max-messages", "1", "--timeout-ms", "200"],
    "replay": ["replay", "t", "--from-offset", "28"],
    "describe": ["topics", "describe", "t"],
    "recover": ["recover", "t"],
}


@pytest.mark.parametrize("command", list(SYMLINK_SEGMENT_COMMANDS))
def test_symlinked_segment_file(box, command):
    seg = _active_segment(box)
    move_out(box, f"t/t-0/{seg}")
    refused(box, *SYMLINK_SEGMENT_COMMANDS[command], input=b'{"n": 1}\n', needles=(seg, "symbolic link"))


DATA_DIR_FILE_COMMANDS = {
    "topics-list": ["topics", "list"],
    "topics-create": ["topics", "create", "t"],
    "publish": ["publish", "t"],
    "consume": ["consume", "t", "--timeout-ms", "50"],
    "groups-list": ["groups", "list"],
}


@pytest.mark.parametrize("command", list(DATA_DIR_FILE_COMMANDS))
def test_data_directory_that_is_a_file(box, command):
    f = box.root / "neighbour" / "keep.txt"
    done = box.run(*DATA_DIR_FILE_COMMANDS[command], data_dir=f, input=b'{"n": 1}\n')
    one_error_line(done, f"data directory {f} is not a directory", code=2)
    box.assert_unchanged()


def test_data_directory_below_a_file(box):
    f = box.root / "neighbour" / "keep.txt"
    done = box.run("topics", "create", "t", data_dir=f / "data")
    one_error_line(done, f"{f / 'data'}", "is not a directory", code=2)
    box.assert_unchanged()


def _without_write_permission(box: Box) -> tuple[str, ...]:
    """Make the whole data tree read-only; the argv prefix that makes that binding for the command.

    root ignores permission bits through CAP_DAC_OVERRIDE, so as root the command runs with that
    capability (and CAP_DAC_READ_SEARCH) dropped by setpriv: the mode bits then apply to it.
    """
    for dirpath, dirnames, filenames in os.walk(box.data):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)
    box.mark()
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and setpriv (util-linux) is missing to drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--")


READ_ONLY_COMMANDS = {
    "topics-create": (["topics", "create", "new"], "Permission denied"),
    "topics-delete": (["topics", "delete", "t"], "Permission denied"),
    "topics-alter": (["topics", "alter", "t", "--config", "retention.ms=5"], "Permission denied"),
    "publish": (["publish", "t"], "Permission denied"),
    "reset-offsets-execute": (["groups", "reset-offsets", "g", "--topic", "t", "--to-latest", "--execute"],
                              "Permission denied"),
}


@pytest.mark.parametrize("command", list(READ_ONLY_COMMANDS))
def test_data_directory_without_write_permission(box, command):
    prefix = _without_write_permission(box)
    argv, needle = READ_ONLY_COMMANDS[command]
    try:
        done = box.run(*argv, prefix=prefix, input=b'{"n": 1}\n')
        one_error_line(done, needle, str(box.data))
        box.assert_unchanged()
    finally:
        for dirpath, dirnames, filenames in os.walk(box.data):
            os.chmod(dirpath, 0o755)


def test_reading_a_read_only_data_directory_works(box):
    prefix = _without_write_permission(box)
    try:
        done = box.run("topics", "describe", "t", prefix=prefix)
        assert done.returncode == 0, done.stderr
        done = box.run("replay", "t", "--from-offset", "29", "--format", "json", prefix=prefix)
        assert done.returncode == 0 and done.stdout == b'{"n":29}\n', done.stderr
        box.assert_unchanged()
    finally:
        for dirpath, dirnames, filenames in os.walk(box.data):
            os.chmod(dirpath, 0o755)


UNKNOWN_TOPIC_COMMANDS = {
    "describe": ["topics", "describe", "nope"],
    "alter": ["topics", "alter", "nope", "--config", "retention.ms=5"],
    "delete": ["topics", "delete", "nope"],
    "consume": ["consume", "nope", "--timeout-ms", "50"],
    "consume-partition": ["consume", "nope", "--partition", "0", "--offset", "0"],
    "replay": ["replay", "nope", "--from-offset", "0"],
    "retention": ["retention", "nope"],
    "recover": ["recover", "nope"],
    "reset-offsets": ["groups", "reset-offsets", "g", "--topic", "nope", "--to-earliest", "--execute"],
}


@pytest.mark.parametrize("command", list(UNKNOWN_TOPIC_COMMANDS))
def test_unknown_topic(box, command):
    refused(box, *UNKNOWN_TOPIC_COMMANDS[command], needles=(f"topic 'nope' does not exist in {box.data}",), code=1)


@pytest.mark.parametrize("command", [["groups", "describe", "nope"], ["groups", "delete", "nope"]],
                         ids=["describe", "delete"])
def test_unknown_group(box, command):
    refused(box, *command, needles=("consumer group 'nope' does not exist",), code=1)


CONFIGS = {
    "segment.bytes=abc": "segment.bytes must be an integer, got 'abc'",
    "segment.bytes=0": "segment.bytes must be an integer >= 1",
    "segment.bytes=" + str(2**40): "segment.bytes must be an integer >= 1 and at most 2147483647",
    "retention.ms=-5": "retention.ms must be an integer >= -1, got -5",
    "retention.ms=1.5": "retention.ms must be an integer, got '1.5'",
    "max.message.bytes=10": "max.message.bytes must be an integer >= 64",
    "fsync=sometimes": "fsync must be always, interval or never, got 'sometimes'",
    "flush.ms=": "flush.ms must be an integer, got ''",
    "foo=1": "unknown topic config 'foo'",
    "segment.bytes": "config 'segment.bytes' is not of the form key=value",
    "=1": "config '=1' is not of the form key=value",
}


@pytest.mark.parametrize("pair", list(CONFIGS))
def test_bad_config_on_create(box, pair):
    refused(box, "topics", "create", "new", "--config", pair, needles=(CONFIGS[pair],), code=2)


@pytest.mark.parametrize("pair", list(CONFIGS))
def test_bad_config_on_alter(box, pair):
    refused(box, "topics", "alter", "t", "--config", pair, needles=(CONFIGS[pair],), code=2)


PARTITION_COUNTS = {
    "alter-fewer": (["topics", "alter", "t", "--partitions", "0"], "topic 't' has 1 partitions; the count can "
                                                                   "only grow (asked for 0)"),
    "alter-negative": (["topics", "alter", "t", "--partitions", "-3"], "the count can only grow (asked for -3)"),
    "alter-too-many": (["topics", "alter", "t", "--partitions", "5000"], "partitions must be at most 1024"),
    "create-zero": (["topics", "create", "new", "--partitions", "0"], "partitions must be an integer from 1 to "
                                                                      "1024, got 0"),
    "create-too-many": (["topics", "create", "new", "--partitions", "1025"], "got 1025"),
    "create-non-numeric": (["topics", "create", "new", "--partitions", "three"], "'--partitions'"),
    "publish-create-zero": (["publish", "new", "--partitions", "0"], "got 0"),
}


@pytest.mark.parametrize("case", list(PARTITION_COUNTS))
def test_bad_partition_counts(box, case):
    argv, needle = PARTITION_COUNTS[case]
    refused(box, *argv, needles=(needle,), input=b'{"n": 1}\n')


def test_create_an_existing_topic(box):
    refused(box, "topics", "create", "t", "--partitions", "2", needles=("topic 't' already exists",), code=1)


def test_alter_to_fewer_partitions_on_a_larger_topic(box):
    assert box.run("topics", "create", "three", "--partitions", "3").returncode == 0
    box.mark()
    refused(box, "topics", "alter", "three", "--partitions", "2",
            needles=("topic 'three' has 3 partitions; the count can only grow (asked for 2)",), code=2)


@pytest.mark.parametrize("content", [b"not json", b'{"format": 1, "partitions": 1000000000}', b'{"format": 9}',
                                     b'{"format": 1, "partitions": -1}', b""],
                         ids=["garbage", "billion-partitions", "future-format", "negative-partitions", "empty"])
def test_damaged_topic_json(box, content):
    meta = box.data / "t" / "topic.json"
    meta.write_bytes(content)
    box.mark()
    refused(box, "topics", "describe", "t", needles=(str(meta),), code=3)


@pytest.mark.parametrize("target", ["missing", "directory", "text-file"])
def test_inspect_of_something_that_is_not_a_segment(box, target):
    path = {"missing": box.root / "nope.log", "directory": box.root / "neighbour",
            "text-file": box.root / "neighbour" / "keep.txt"}[target]
    refused(box, "inspect", str(path), needles=(str(path),))
