"""Bad topic and group names, through every command that takes one.

Part of the bad-input catalogue: its rules and sandbox are in ``badinput.py``.
"""

from __future__ import annotations

import os

import pytest

from badinput import Box, snapshot, diff, run_in_process, one_error_line, refused
from logbroker.broker import Broker
from logbroker.clients.consumer import Consumer
from logbroker.clients.producer import Producer
from logbroker.groups import admin
from logbroker.errors import InvalidNameError


# -- names: bad topic and group names, every command that takes one ---------------------------------

ABS = "<abs>"  # replaced by an absolute path inside the watched tree
BAD_NAMES = {
    "empty": ("", "must not be empty"),
    "dot": (".", "is not allowed"),
    "dotdot": ("..", "is not allowed"),
    "parent-x": ("../x", "contains '/'"),
    "slash": ("a/b", "contains '/'"),
    "absolute": (ABS, "contains '/'"),
    "250-chars": ("x" * 250, "250 characters long; the limit is 249"),
    "non-ascii": ("caf\u00e9", "contains '\u00e9'"),
    "space": ("a b", "contains ' '"),
    "newline": ("a\nb", "contains '\\n'"),
    "backslash": ("a\\b", "contains '\\\\'"),
    "colon": ("a:b", "contains ':'"),
    "reserved-__": ("__consumer_offsets", "starts with '__'"),
    "reserved-__creating": ("__creating-t-00", "starts with '__'"),
}

# (command id) -> argv builder taking the bad name; the kind ("topic" or "group") the error names.
NAME_COMMANDS = {
    "topics-create": (lambda n: ["topics", "create", "--", n], "topic"),
    "topics-describe": (lambda n: ["topics", "describe", "--", n], "topic"),
    "topics-alter": (lambda n: ["topics", "alter", "--config", "retention.ms=1", "--", n], "topic"),
    "topics-delete": (lambda n: ["topics", "delete", "--", n], "topic"),
    "publish": (lambda n: ["publish", "--", n], "topic"),
    "consume": (lambda n: ["consume", "--timeout-ms", "50", "--", n], "topic"),
    "consume-group": (lambda n: ["consume", "t", "--timeout-ms", "50", "--group", n], "group"),
    "replay": (lambda n: ["replay", "--from-offset", "0", "--", n], "topic"),
    "replay-to-topic": (lambda n: ["replay", "t", "--from-time", "2000-01-01", "--to-topic", n], "topic"),
    "retention": (lambda n: ["retention", "--", n], "topic"),
    "recover": (lambda n: ["recover", "--", n], "topic"),
    "groups-describe": (lambda n: ["groups", "describe", "--", n], "group"),
    "groups-delete": (lambda n: ["groups", "delete", "--", n], "group"),
    "groups-reset-offsets": (lambda n: ["groups", "reset-offsets", "--topic", "t", "--to-earliest",
                                        "--execute", "--", n], "group"),
    "groups-reset-offsets-topic": (lambda n: ["groups", "reset-offsets", "g", "--topic", n, "--to-earliest",
                                              "--execute"], "topic"),
}



def bad_name(box: Box, key: str) -> tuple[str, str]:
    name, why = BAD_NAMES[key]
    if name == ABS:
        name = str(box.root / "abs")
    return name, why


@pytest.mark.parametrize("command", list(NAME_COMMANDS))
@pytest.mark.parametrize("key", list(BAD_NAMES))
def test_bad_name_in_process(box, key, command):
    name, why = bad_name(box, key)
    build, kind = NAME_COMMANDS[command]
    if (key, command) == ("colon", "groups-reset-offsets-topic"):
        kind, why = "", "--topic 'a:b': partitions must be integers"  # TOPIC:P,P syntax
    done = run_in_process(build(name), box.data, b'{"n": 1}\n', box.cwd)
    one_error_line(done, f"error: {kind} name" if kind else "error: ", why, code=2)
    box.assert_unchanged()


# One real subprocess per name, the commands taken in turn so that each runs for real at least once.
_ROTATION = list(NAME_COMMANDS)


@pytest.mark.parametrize("key", list(BAD_NAMES))
def test_bad_name_subprocess(box, key):
    name, why = bad_name(box, key)
    command = _ROTATION[list(BAD_NAMES).index(key) % len(_ROTATION)]
    build, kind = NAME_COMMANDS[command]
    refused(box, *build(name), needles=(f"error: {kind} name", why), code=2, input=b'{"n": 1}\n')


def test_names_starting_with_dash_are_options_unless_after_double_dash(box):
    # Without `--` a leading '-' is parsed as an option, never as a name (RELIABILITY 5.1).
    refused(box, "topics", "create", "-x", needles=("No such option: -x",), code=2)


@pytest.mark.parametrize("name", ["-x", "--", "-rf"])
def test_names_starting_with_dash_after_double_dash_are_kafka_names_kept_inside_the_data_dir(box, name):
    # Kafka's alphabet allows a leading '-'; after `--` such a name is explicit, and its directory
    # stays inside the data directory. Describe and delete reach it the same way.
    done = box.run("topics", "create", "--partitions", "1", "--", name)
    assert done.returncode == 0, done.stderr
    assert diff(box.before, snapshot(box.root)) and all(
        c.startswith(f"created data{os.sep}{name}") for c in diff(box.before, snapshot(box.root)))
    assert box.run("topics", "describe", "--", name).returncode == 0
    assert box.run("topics", "delete", "--", name).returncode == 0
    box.assert_unchanged()


def test_a_name_differing_only_in_case_from_an_existing_topic_is_refused(box):
    refused(box, "topics", "create", "T", needles=("'T' collides with the existing topic 't'",))


NUL_OPERATIONS = {
    "create_topic": lambda d: Broker(d).create_topic("a\0b", 1),
    "describe_topic": lambda d: Broker(d).describe_topic("t\0"),
    "delete_topic": lambda d: Broker(d).delete_topic("t\0/../t"),
    "producer_send": lambda d: Producer(d).send("t\0", {"n": 1}),
    "consumer_topic": lambda d: Consumer("t\0", data_dir=d).poll(timeout_ms=10),
    "consumer_group": lambda d: Consumer("t", data_dir=d, group_id="g\0").poll(timeout_ms=10),
    "describe_group": lambda d: admin.describe_group(d, "g\0"),
    "delete_group": lambda d: admin.delete_group(d, "g\0"),
    "reset_group": lambda d: admin.plan_reset_offsets(d, "g\0", "t", None, "to-earliest"),
    "replay_topic": lambda d: list(admin.replay(d, "t\0", 0)),
}


@pytest.mark.parametrize("op", list(NUL_OPERATIONS))
def test_nul_byte_in_a_name_through_the_library(box, op):
    # argv cannot carry a NUL byte, so the library is the only way in.
    with pytest.raises(InvalidNameError, match=r"contains '\\x00'"):
        NUL_OPERATIONS[op](str(box.data))
    box.assert_unchanged()
