"""Bad payloads through ``publish``: each refused line reported, the lines around it kept.

Part of the bad-input catalogue: its rules and sandbox are in ``badinput.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from badinput import CLI, ENV, I64, Box, snapshot, refused, stored_values


# -- payloads through publish ---------------------------------------------------------------------------

def assert_only_appended(box: Box, topic: str = "t") -> None:
    """Under data/<topic>/<topic>-0 segments and indexes only grew (old bytes kept) and state files changed;
    everywhere else nothing changed."""
    after = snapshot(box.root)
    part = os.path.join("data", topic, f"{topic}-0") + os.sep
    for path in set(box.before) | set(after):
        old, new = box.before.get(path), after.get(path)
        if old == new:
            continue
        assert path.startswith(part), f"{path} changed outside the partition: {old} -> {new}"
        name = path[len(part):]
        if name in ("high-watermark", ".lock"):
            continue
        assert name.endswith((".log", ".index", ".timeindex")), f"unexpected change of {path}"
        if old is not None:
            assert new is not None, f"{path} was removed"
            assert new[2] >= old[2], f"{path} shrank"
    for path in box.before:
        if path.startswith(part) and path.endswith(".log") and path in after:
            full = box.root / path
            # The old bytes are a prefix of the new ones (append-only).
            assert box._old_logs[path] == full.read_bytes()[:len(box._old_logs[path])]


@pytest.fixture
def pbox(box) -> Box:
    """A box that also keeps the bytes of every segment, to check that publish only appends."""
    box._old_logs = {p: (box.root / p).read_bytes() for p in box.before if p.endswith(".log")}
    return box


OK_BEFORE, OK_AFTER = b'{"ok":"before"}', b'{"ok":"after"}'

PAYLOADS = {
    "invalid-json": (b'{"a": 1', "invalid JSON at column 8: unexpected end of data"),
    "trailing-garbage": (b'{"a": 1} x', "invalid JSON at column 10: unexpected content after document"),
    "empty-line": (b"", "empty line"),
    "blank-line": (b"   \t ", "empty line"),
    "lone-cr": (b"\r", "empty line"),
    "NaN": (b'{"a": NaN}', "(NaN and Infinity are not JSON)"),
    "Infinity": (b"[1, Infinity]", "(NaN and Infinity are not JSON)"),
    "-Infinity": (b"-Infinity", "(NaN and Infinity are not JSON)"),
    "float-overflow-1e400": (b"1e400", "invalid JSON at column 1: number is infinity"),
    "nesting-10000": (b"[" * 10000 + b"]" * 10000, "JSON nested deeper than 255 levels (at byte 256)", "wide"),
    "nesting-256-objects": (b'{"a":' * 256 + b"1" + b"}" * 256, "JSON nested deeper than 255 levels", "wide"),
    "nesting-10000-with-long-int": (b"[" * 10000 + b"12345678901234567890" + b"]" * 10000,
                                    "JSON nested deeper than 255 levels", "wide"),
    "int-over-64-bits": (b'{"id": 123456789012345678901234567890}', "integer 123456789012345678901234567890 does "
                                                                    "not fit in 64 bits"),
    "int-2^63": (I64.encode(), f"integer {I64} does not fit in 64 bits"),
    "int-below-minus-2^63": (b"-9223372036854775809", "integer -9223372036854775809 does not fit in 64 bits"),
    "int-900-digits": (b"[" + b"7" * 900 + b"]", "integer 777777777777777777777777777777... does not fit in 64 bits"),
    "lone-surrogate": (b'"\\ud800"', "low surrogate"),
    "lone-low-surrogate": (b'{"k": "\\udc00"}', "invalid JSON"),
    "invalid-utf8": (b'{"a": "\xff\xfe"}', "invalid UTF-8 at byte 8"),
    "overlong-utf8": (b'"\xc0\xaf"', "invalid UTF-8 at byte 2"),
    "utf8-encoded-surrogate": (b'"\xed\xa0\x80"', "invalid UTF-8 at byte 2"),
    "utf8-bom": (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
    "utf16-le": ('{"a": 1}'.encode("utf-16-le"), "invalid JSON"),
    "nul-byte": (b'{"a": 1}\x00', "invalid JSON at column 9"),
    "nul-in-string": (b'{"a": "x\x00y"}', "invalid JSON at column 9: unexpected control character"),
    "line-of-max-message-bytes-plus-1": (b'"' + b"a" * 999 + b'"', "bytes as a line after encoding, larger than "
                                                                  "max.message.bytes=1000"),
    "line-of-max-message-bytes-plus-2": (b'"' + b"a" * 1000 + b'"', "line is larger than max.message.bytes=1000"),
    "line-of-max-message-bytes": (b'"' + b"a" * 998 + b'"', "bytes as a line after encoding, larger than "
                                                            "max.message.bytes=1000"),
    # value 502 + key 482 + the line's fixed parts: over 1000 once encoded (a 400-byte key fits)
    "line-of-max-message-bytes-with-key": (b'"' + b"a" * 500 + b'"', "bytes as a line after encoding, larger than "
                                                                     "max.message.bytes=1000",
                                           "t", ["--key", "k" * 480]),
    "line-of-5000-digits": (b"1" + b"0" * 5000, "line is larger than max.message.bytes=1000"),
}


@pytest.mark.parametrize("case", list(PAYLOADS))
def test_bad_payload_is_reported_by_line_and_the_lines_around_it_are_published(pbox, case):
    bad, needle, topic, extra = {2: (*PAYLOADS[case], "t", []), 3: (*PAYLOADS[case], [])}.get(
        len(PAYLOADS[case]), PAYLOADS[case])
    before = stored_values(pbox.data, topic)
    done = pbox.run("publish", topic, *extra, input=OK_BEFORE + b"\n" + bad + b"\n" + OK_AFTER + b"\n")
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert done.returncode == 1, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("line 2: ") and needle in lines[0], err
    assert lines[1].startswith(f"Published 2 records to {topic} (1 failed"), err
    assert stored_values(pbox.data, topic) == before + [{"ok": "before"}, {"ok": "after"}]
    assert_only_appended(pbox, topic)


def test_a_line_just_under_the_record_limit_is_published(pbox):
    done = pbox.run("publish", "t", input=b'"' + b"a" * 800 + b'"\n')
    assert done.returncode == 0, done.stderr
    assert stored_values(pbox.data)[-1] == "a" * 800
    assert_only_appended(pbox)


def test_nesting_of_500000_levels_in_one_line_does_not_crash_the_process(tmp_path):
    # orjson.loads segfaults on this (measured: SIGSEGV); it fits in the default 1 MiB limit.
    b = Box(tmp_path, tmp_path / "data", tmp_path)
    done = b.run("publish", "deep", "--partitions", "1",
                 input=b'{"n":1}\n' + b"[" * 500_000 + b"]" * 500_000 + b'\n{"n":2}\n')
    err = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err, (done.returncode, err)
    assert "line 2: JSON nested deeper than 255 levels" in err
    assert "Published 2 records" in err
    assert stored_values(b.data, "deep") == [{"n": 1}, {"n": 2}]


def test_crlf_line_endings_are_accepted(pbox):
    before = stored_values(pbox.data)
    done = pbox.run("publish", "t", input=b'{"a": 1}\r\n{"b": "x\\r"}\r\n')
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr.decode()
    assert stored_values(pbox.data) == before + [{"a": 1}, {"b": "x\r"}]
    assert_only_appended(pbox)


def test_line_separator_u2028_inside_a_value_is_kept_and_does_not_split_the_line(pbox):
    before = stored_values(pbox.data)
    done = pbox.run("publish", "t", input='{"s": "a\u2028b\u0085c"}\n'.encode())
    assert done.returncode == 0, done.stderr
    assert stored_values(pbox.data) == before + [{"s": "a\u2028b\u0085c"}]
    assert_only_appended(pbox)


def test_duplicate_keys_keep_the_last_value_as_json_parsers_do(pbox):
    before = stored_values(pbox.data)
    done = pbox.run("publish", "t", input=b'{"a": 1, "a": 2}\n')
    assert done.returncode == 0, done.stderr
    assert stored_values(pbox.data) == before + [{"a": 2}]


def test_publish_file_that_does_not_exist(box):
    missing = box.root / "missing.jsonl"
    refused(box, "publish", "t", "--file", str(missing), needles=("No such file or directory", str(missing)))


def test_publish_file_that_is_a_directory(box):
    refused(box, "publish", "t", "--file", str(box.root / "neighbour"), needles=("Is a directory",
                                                                                  str(box.root / "neighbour")))


def test_publish_without_a_topic(box):
    refused(box, "publish", needles=("no topic given: pass TOPIC or set KAFKA_TOPIC",), code=2)


def test_a_100_mb_line_is_skipped_in_bounded_memory_and_the_lines_around_it_are_published(tmp_path):
    """Peak RSS of the publish process stays under 150 MB while a 100 MB line streams past."""
    data = tmp_path / "data"
    env = {**os.environ, ENV: str(data)}
    proc = subprocess.Popen([sys.executable, CLI, "publish", "big", "--partitions", "1"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    errs = []
    reader = threading.Thread(target=lambda: errs.append(proc.stderr.read()))
    reader.start()
    chunk = b"a" * (1 << 20)
    proc.stdin.write(b'{"n": 1}\n"')
    for _ in range(100):
        proc.stdin.write(chunk)
    proc.stdin.write(b'"\n{"n": 2}\n')
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    err = errs[0].decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "line 2: line is larger than max.message.bytes=1048576" in err
    assert "Published 2 records to big (1 failed" in err
    assert usage.ru_maxrss * 1024 < 150 * 1024 * 1024, f"peak RSS {usage.ru_maxrss / 1024:.0f} MB"
    assert stored_values(data, "big") == [{"n": 1}, {"n": 2}]
    assert sorted(os.listdir(tmp_path)) == ["data"]
