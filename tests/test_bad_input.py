"""The bad-input catalogue of the torture suite: every way a user can hand logbroker something wrong.

Each case runs the real command line (``python cli.py ...`` in a subprocess, with
``LOGBROKER_DATA_DIR`` set) and, where it makes sense, the library. Every refused case must give:

- one line on stderr that says what was wrong and where (line number, offset, file, name);
- a non-zero exit code and no Python traceback;
- nothing created, removed or changed anywhere under the test's temporary directory, which holds
  the data directory, the working directory of the command and its neighbours (a snapshot of every
  file's bytes, mode and symlink target is compared before and after); where a command also has
  valid input to keep (publish), only the records of the valid lines are added.

The data directory of each test is a copy of one prepared once per module (``TEMPLATE``): topic
``t`` with one partition, tiny segments and retention already applied, so its log start offset is
above 0, and group ``g`` with a committed offset on it.

The names matrix (bad topic and group names x every command that takes one) runs ``cli.main`` in
this process, which is fast; one representative command per name runs as a real subprocess too.
The other families run every sixth case (the first included) as a subprocess and the rest in
process, to keep the file near 40 s; ``LOGBROKER_BAD_INPUT_SUBPROCESS=all`` runs every case as a
subprocess (about 2 minutes). Cases that need a process of their own (a crash, peak memory,
dropped capabilities) always run as one.

Kafka's behaviour is kept where it differs from "refuse": a name may start with '-' when given
after ``--`` (Kafka's alphabet allows it; without ``--`` it is an unknown option), ``replay
--to-offset`` past the log end stops there, and ``groups reset-offsets`` clamps a target outside
[log start, log end] with a warning (kafka-consumer-groups does the same).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / "cli.py")
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402
from logbroker.broker import Broker  # noqa: E402
from logbroker.consumer import Consumer  # noqa: E402
from logbroker.producer import Producer  # noqa: E402
from logbroker import admin  # noqa: E402
from logbroker.errors import (InvalidConfigError, InvalidNameError, InvalidRecordError,  # noqa: E402
                              LogBrokerError, RecordTooLargeError, UnknownPartitionError)
from logbroker.topic import Topic  # noqa: E402

ENV = "LOGBROKER_DATA_DIR"
I64 = str(2**63)


# -- sandbox: a data directory inside a watched tree ---------------------------------------------

def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, mode and content hash (files) or target (symlinks)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(path, "rb") as f:
                    digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, digest)
    return out


def diff(before: dict, after: dict) -> list[str]:
    changes = [f"removed {p}" for p in before if p not in after]
    changes += [f"created {p}" for p in after if p not in before]
    changes += [f"changed {p}" for p in before if p in after and before[p] != after[p]]
    return sorted(changes)


@dataclass
class Box:
    root: Path  # the watched tree: data/, cwd/ and neighbours
    data: Path
    cwd: Path
    before: dict | None = None
    real: bool = True  # run the CLI as a subprocess (else cli.main() in this process)

    def run(self, *args: str, input: bytes | None = None, data_dir: Path | None = None,
            prefix: tuple[str, ...] = (), real: bool | None = None) -> subprocess.CompletedProcess:
        if not (self.real if real is None else real) and not prefix:
            return run_in_process(list(args), self.data if data_dir is None else data_dir, input or b"", self.cwd)
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_TOPIC", "KAFKA_CONSUMER_GROUP")}
        env[ENV] = str(self.data if data_dir is None else data_dir)
        return subprocess.run([*prefix, sys.executable, CLI, *args], input=input, capture_output=True,
                              env=env, cwd=self.cwd, timeout=60)

    def mark(self) -> None:
        self.before = snapshot(self.root)

    def assert_unchanged(self) -> None:
        assert diff(self.before, snapshot(self.root)) == []


def make_template(path: Path) -> dict:
    """Topic ``t`` (1 partition, retention applied: log start > 0) and group ``g`` committed on it."""
    data = path / "data"
    data.mkdir(parents=True)
    broker = Broker(str(data))
    broker.create_topic("t", 1, {"segment.bytes": 400, "retention.bytes": 800, "retention.ms": -1,
                                 "max.message.bytes": 1000})
    with Producer(str(data), batch_size=0) as producer:
        for i in range(30):
            producer.send("t", {"n": i}, key=f"k{i}").get()
    env = {**os.environ, ENV: str(data)}
    done = subprocess.run([sys.executable, CLI, "retention"], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    reader = broker.topic("t").reader(0)
    start, end = reader.log_start_offset(), reader.high_watermark()
    reader.close()
    assert 0 < start < end == 30
    admin.execute_reset(admin.plan_reset_offsets(str(data), "g", "t", None, ("to-offset", start + 1)))
    broker.create_topic("wide", 1)  # default config: max.message.bytes is 1 MiB
    with Producer(str(data)) as producer:
        producer.send("wide", {"n": 0}).get()
    return {"start": start, "end": end, "committed": start + 1}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template")
    info = make_template(path)
    return path / "data", info


#: Each parametrized family runs every SUBPROCESS_EVERY-th case (the first one included) as a real
#: subprocess and the others through cli.main() in this process, which is ten times faster and
#: checks the same things (an escaping exception fails the test as a traceback would). Set
#: LOGBROKER_BAD_INPUT_SUBPROCESS=all to run every case as a subprocess.
SUBPROCESS_EVERY = 6
ALL_SUBPROCESS = os.environ.get("LOGBROKER_BAD_INPUT_SUBPROCESS") == "all"


def _real(request) -> bool:
    callspec = getattr(request.node, "callspec", None)
    if ALL_SUBPROCESS or callspec is None:
        return True
    return all(i % SUBPROCESS_EVERY == 0 for i in callspec.indices.values())


@pytest.fixture
def box(request, tmp_path, template) -> Box:
    src, _ = template
    shutil.copytree(src, tmp_path / "data", symlinks=True)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "neighbour").mkdir()
    (tmp_path / "neighbour" / "keep.txt").write_bytes(b"keep me\n")
    b = Box(tmp_path, tmp_path / "data", tmp_path / "cwd", real=_real(request))
    b.mark()
    return b


@pytest.fixture
def span(template) -> dict:
    return template[1]


# -- what a clean refusal looks like ---------------------------------------------------------------

def one_error_line(done, *needles: str, code: int | None = None) -> str:
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert done.returncode != 0, (done.returncode, err)
    if code is not None:
        assert done.returncode == code, (done.returncode, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def refused(box: Box, *args: str, needles: tuple[str, ...] = (), code: int | None = None,
            input: bytes | None = None) -> str:
    done = box.run(*args, input=input)
    line = one_error_line(done, *needles, code=code)
    box.assert_unchanged()
    return line


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


def run_in_process(argv: list[str], data_dir: Path, stdin: bytes = b"",
                   cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cli.main()`` with ``argv`` in this process; stdout/stderr captured as bytes."""
    out, errs = io.BytesIO(), io.BytesIO()
    saved = (sys.argv, sys.stdin, sys.stdout, sys.stderr, os.environ.get(ENV))
    saved_cwd = os.getcwd()
    saved_kafka = {k: os.environ.pop(k) for k in ("KAFKA_TOPIC", "KAFKA_CONSUMER_GROUP") if k in os.environ}
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = ["logbroker", *argv]
    # Keep the wrappers referenced: a collected TextIOWrapper closes the BytesIO under it.
    wrappers = (io.TextIOWrapper(io.BytesIO(stdin)), io.TextIOWrapper(out, write_through=True),
                io.TextIOWrapper(errs, write_through=True))
    sys.stdin, sys.stdout, sys.stderr = wrappers
    # cli.main()'s logging.basicConfig is a no-op under pytest (its handlers are installed): route
    # warnings to the captured stderr as the real process would.
    handler = logging.StreamHandler(wrappers[2])
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    os.environ[ENV] = str(data_dir)
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.argv, sys.stdin, sys.stdout, sys.stderr, env = saved
        os.chdir(saved_cwd)
        logging.getLogger().removeHandler(handler)
        os.environ.update(saved_kafka)
        if env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = env
    result = subprocess.CompletedProcess(argv, code, out.getvalue(), errs.getvalue())
    for w in wrappers:
        w.detach()
    return result


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


# -- offsets -------------------------------------------------------------------------------------------

def _offset_cases():
    # (id, argv builder given the span, needles builder, exit code)
    yield ("consume-negative", lambda s: ["consume", "t", "--partition", "0", "--offset", "-1"],
           lambda s: ["--offset must be 0 or more, got -1"], 2)
    yield ("consume-2^63", lambda s: ["consume", "t", "--partition", "0", "--offset", I64],
           lambda s: [f"--offset {I64} is out of range for t-0", f"valid offsets are {s['start']} (log start) "
                      f"to {s['end']} (log end)"], 1)
    yield ("consume-non-numeric", lambda s: ["consume", "t", "--partition", "0", "--offset", "abc"],
           lambda s: ["'--offset'", "integer"], 2)
    yield ("consume-below-log-start", lambda s: ["consume", "t", "--partition", "0", "--offset", str(s["start"] - 1)],
           lambda s: [f"--offset {s['start'] - 1} is out of range for t-0", f"valid offsets are {s['start']}"], 1)
    yield ("consume-beyond-log-end", lambda s: ["consume", "t", "--partition", "0", "--offset", str(s["end"] + 1)],
           lambda s: [f"--offset {s['end'] + 1} is out of range", f"to {s['end']} (log end)"], 1)
    yield ("consume-offset-without-partition", lambda s: ["consume", "t", "--offset", "3"],
           lambda s: ["--offset needs --partition"], 2)
    yield ("consume-partition-99", lambda s: ["consume", "t", "--partition", "99", "--timeout-ms", "50"],
           lambda s: ["partition 99 does not exist", "'t' has partitions 0 to 0"], 1)
    yield ("consume-partition-negative", lambda s: ["consume", "t", "--partition", "-1", "--timeout-ms", "50"],
           lambda s: ["partition -1 does not exist"], 1)
    yield ("consume-max-messages-0", lambda s: ["consume", "t", "--max-messages", "0"],
           lambda s: ["--max-messages must be at least 1, got 0"], 2)
    yield ("consume-format-unknown", lambda s: ["consume", "t", "--format", "xml"],
           lambda s: ["--format must be json, envelope or pretty, not 'xml'"], 2)
    yield ("replay-from-negative", lambda s: ["replay", "t", "--from-offset", "-1"],
           lambda s: ["--from-offset must be an integer >= 0, got -1"], 2)
    yield ("replay-from-2^63", lambda s: ["replay", "t", "--from-offset", I64],
           lambda s: [f"cannot replay t-0 from offset {I64}", "beyond the log end",
                      f"valid offsets are {s['start']} (log start) to {s['end']} (log end)"], 1)
    yield ("replay-from-non-numeric", lambda s: ["replay", "t", "--from-offset", "1e3x"],
           lambda s: ["'--from-offset'", "integer"], 2)
    yield ("replay-from-below-log-start", lambda s: ["replay", "t", "--from-offset", "0"],
           lambda s: ["cannot replay t-0 from offset 0", "retention removed",
                      f"valid offsets are {s['start']} (log start)"], 1)
    yield ("replay-from-beyond-log-end", lambda s: ["replay", "t", "--from-offset", str(s["end"] + 1)],
           lambda s: [f"from offset {s['end'] + 1}", "beyond the log end"], 1)
    yield ("replay-to-negative", lambda s: ["replay", "t", "--from-offset", str(s["start"]), "--to-offset", "-5"],
           lambda s: ["--to-offset must be an integer >= 0, got -5"], 2)
    yield ("replay-to-non-numeric", lambda s: ["replay", "t", "--from-offset", str(s["start"]), "--to-offset", "ten"],
           lambda s: ["'--to-offset'", "integer"], 2)
    yield ("replay-to-before-from", lambda s: ["replay", "t", "--from-offset", str(s["end"]),
                                               "--to-offset", str(s["start"])],
           lambda s: [f"--to-offset {s['start']} is before --from-offset {s['end']}"], 2)
    yield ("replay-no-start", lambda s: ["replay", "t"], lambda s: ["give --from-offset N or --from-time"], 2)
    yield ("replay-partition-99", lambda s: ["replay", "t", "--from-offset", "0", "--partition", "99"],
           lambda s: ["partition 99 does not exist"], 1)
    yield ("reset-to-offset-negative", lambda s: ["groups", "reset-offsets", "g", "--topic", "t", "--to-offset", "-1",
                                                  "--execute"],
           lambda s: ["--to-offset must be 0 or more, got -1"], 2)
    yield ("reset-to-offset-non-numeric", lambda s: ["groups", "reset-offsets", "g", "--topic", "t",
                                                     "--to-offset", "x1", "--execute"],
           lambda s: ["'--to-offset'", "integer"], 2)
    yield ("reset-shift-by-non-numeric", lambda s: ["groups", "reset-offsets", "g", "--topic", "t",
                                                    "--shift-by", "--3", "--execute"],
           lambda s: ["'--shift-by'", "integer"], 2)
    yield ("reset-two-specs", lambda s: ["groups", "reset-offsets", "g", "--topic", "t", "--to-earliest",
                                         "--to-latest", "--execute"],
           lambda s: ["give exactly one of"], 2)
    yield ("reset-partition-99", lambda s: ["groups", "reset-offsets", "g", "--topic", "t:99", "--to-earliest",
                                            "--execute"],
           lambda s: ["partition 99 does not exist"], 1)
    yield ("reset-partition-non-numeric", lambda s: ["groups", "reset-offsets", "g", "--topic", "t:0,x",
                                                     "--to-earliest", "--execute"],
           lambda s: ["--topic 't:0,x': partitions must be integers"], 2)
    yield ("reset-shift-without-commit", lambda s: ["groups", "reset-offsets", "fresh", "--topic", "t",
                                                    "--shift-by", "1", "--execute"],
           lambda s: ["--shift-by needs a committed offset", "'fresh'", "t-0"], 1)
    yield ("publish-partition-99", lambda s: ["publish", "t", "--partition", "99"],
           lambda s: ["partition 99 does not exist"], 1)
    yield ("publish-partition-negative", lambda s: ["publish", "t", "--partition", "-1"],
           lambda s: ["partition -1 does not exist"], 1)
    yield ("publish-fsync-unknown", lambda s: ["publish", "t", "--fsync", "sometimes"],
           lambda s: ["fsync", "'sometimes'"], 2)


OFFSET_CASES = {c[0]: c[1:] for c in _offset_cases()}


@pytest.mark.parametrize("case", list(OFFSET_CASES))
def test_bad_offsets_and_partitions(box, span, case):
    argv, needles, code = OFFSET_CASES[case]
    refused(box, *argv(span), needles=tuple(needles(span)), code=code, input=b'{"n": 1}\n')


@pytest.mark.parametrize("spec", [["--to-offset", I64], ["--to-offset", "0"], ["--shift-by", I64],
                                  ["--shift-by", "-" + I64]],
                         ids=["to-offset-2^63", "to-offset-below-log-start", "shift-by-2^63", "shift-by-minus-2^63"])
def test_reset_offsets_out_of_range_is_clamped_with_a_warning_as_in_kafka(box, span, spec):
    # kafka-consumer-groups clamps a reset target into [log start, log end] and says so; so does
    # logbroker. The dry run changes nothing; --execute stores the clamped offset, never the asked one.
    done = box.run("groups", "reset-offsets", "g", "--topic", "t", *spec)
    err = done.stderr.decode()
    assert done.returncode == 0 and "Traceback" not in err, err
    assert f"is outside [{span['start']}, {span['end']}]" in err and "for t-0" in err
    box.assert_unchanged()
    done = box.run("groups", "reset-offsets", "g", "--topic", "t", *spec, "--execute")
    assert done.returncode == 0, done.stderr
    committed = admin.describe_group(str(box.data), "g")[0].current_offset
    assert committed in (span["start"], span["end"])


def test_replay_to_offset_beyond_the_log_end_stops_at_the_end(box, span):
    # Documented: `to` past the high watermark stops there (the range is clamped, not refused).
    done = box.run("replay", "t", "--from-offset", str(span["end"] - 2), "--to-offset", I64, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ['{"n":28}', '{"n":29}']
    box.assert_unchanged()


# -- timestamps and durations ------------------------------------------------------------------------

TIME_CASES = {
    "consume-from-time-word": (["consume", "t", "--from-time", "yesterday"], "date-time 'yesterday'"),
    "consume-from-time-month-13": (["consume", "t", "--from-time", "2025-13-01T00:00:00"], "'2025-13-01T00:00:00'"),
    "replay-from-time-feb-30": (["replay", "t", "--from-time", "2025-02-30"], "date-time '2025-02-30'"),
    "replay-to-time-empty": (["replay", "t", "--from-offset", "10", "--to-time", ""], "date-time ''"),
    "replay-to-time-hour-25": (["replay", "t", "--from-offset", "10", "--to-time", "2025-11-27T25:00:00Z"],
                               "'2025-11-27T25:00:00Z'"),
    "reset-to-datetime-word": (["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "now"],
                               "date-time 'now'"),
    "reset-to-datetime-bad-offset": (["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime",
                                      "2025-11-27T08:00:00+25:00"], "'2025-11-27T08:00:00+25:00'"),
    "reset-by-duration-1h": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "1h"],
                             "duration '1h'"),
    "reset-by-duration-PT": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "PT"],
                             "duration 'PT'"),
    "reset-by-duration-P1H": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "P1H"],
                              "duration 'P1H'"),
    "reset-by-duration-negative": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "-PT1H"],
                                   "duration '-PT1H'"),
    "reset-by-duration-empty": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", ""],
                                "duration ''"),
}


@pytest.mark.parametrize("case", list(TIME_CASES))
def test_bad_timestamps_and_durations(box, case):
    argv, needle = TIME_CASES[case]
    extra = {"groups": ["--execute"], "consume": ["--timeout-ms", "50"]}.get(argv[0], [])
    refused(box, *argv, *extra, needles=(needle,), code=2)


# -- payloads through publish ---------------------------------------------------------------------------

def stored_values(data: Path, topic: str = "t") -> list:
    t = Topic(str(data), topic)
    try:
        reader = t.reader(0)
        try:
            offset, out = reader.log_start_offset(), []
            while True:
                got = reader.read(offset, 1000)
                if not got:
                    return out
                out.extend(r.value for r in got)
                offset = got[-1].offset + 1
        finally:
            reader.close()
    finally:
        t.close()


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
    "line-of-max-message-bytes-plus-1": (b'"' + b"a" * 999 + b'"', "bytes is larger than max.message.bytes=1000"),
    "line-of-max-message-bytes-plus-2": (b'"' + b"a" * 1000 + b'"', "line is larger than max.message.bytes=1000"),
    "line-of-max-message-bytes": (b'"' + b"a" * 998 + b'"', "bytes is larger than max.message.bytes=1000"),
    "line-of-max-message-bytes-with-key": (b'"' + b"a" * 500 + b'"', "bytes is larger than max.message.bytes=1000",
                                           "t", ["--key", "k" * 400]),
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


# -- library API ---------------------------------------------------------------------------------------

class Unencodable:
    pass


def _deep(n: int):
    v: list = []
    for _ in range(n):
        v = [v]
    return v


SEND_CASES = {
    "nan-value": (dict(value={"x": float("nan")}), InvalidRecordError, "NaN or Infinity"),
    "inf-in-list": (dict(value=[1.0, float("-inf")]), InvalidRecordError, "NaN or Infinity"),
    "int-key": (dict(value=1, key=5), InvalidRecordError, "key must be a string"),
    "bytes-key": (dict(value=1, key=b"k"), InvalidRecordError, "key must be a string or None, not bytes"),
    "header-int-value": (dict(value=1, headers={"h": 1}), InvalidRecordError, "headers must be a dict of str to str"),
    "header-bytes-value": (dict(value=1, headers={"h": b"v"}), InvalidRecordError, "headers must be a dict"),
    "header-int-key": (dict(value=1, headers={1: "v"}), InvalidRecordError, "headers must be a dict"),
    "headers-list": (dict(value=1, headers=[("h", "v")]), InvalidRecordError, "headers must be a dict"),
    "set-value": (dict(value={1, 2}), InvalidRecordError, "value is not storable as JSON"),
    "object-value": (dict(value=Unencodable()), InvalidRecordError, "value is not storable as JSON"),
    "bytes-value": (dict(value=b"raw"), InvalidRecordError, "value is not storable as JSON"),
    "int-over-64-bits": (dict(value=2**64), InvalidRecordError, "value is not storable as JSON"),
    "nested-300": (dict(value=_deep(300)), InvalidRecordError, "value is not storable as JSON"),
    "lone-surrogate": (dict(value="\ud800"), InvalidRecordError, "value is not storable as JSON"),
    "too-large": (dict(value="x" * 2000), RecordTooLargeError, "larger than max.message.bytes=1000"),
    "partition-99": (dict(value=1, partition=99), UnknownPartitionError, "partition 99 does not exist"),
    "partition-negative": (dict(value=1, partition=-1), UnknownPartitionError, "partition -1 does not exist"),
    "partition-bool": (dict(value=1, partition=True), UnknownPartitionError, "partition True does not exist"),
    "partition-str": (dict(value=1, partition="0"), UnknownPartitionError, "partition '0' does not exist"),
}


@pytest.mark.parametrize("case", list(SEND_CASES))
def test_producer_send_refuses_bad_records_and_writes_nothing(box, case):
    kwargs, error, match = SEND_CASES[case]
    producer = Producer(str(box.data), batch_size=0)
    try:
        with pytest.raises(error, match=match):
            producer.send("t", **kwargs).get()
        producer.flush()
    finally:
        producer.close()
    box.assert_unchanged()


@pytest.mark.parametrize("ts", [2**63, -2**63 - 1, "soon", float("nan")], ids=["2^63", "below-i64", "str", "nan"])
def test_producer_send_refuses_a_timestamp_outside_int64(box, ts):
    producer = Producer(str(box.data), batch_size=0)
    try:
        with pytest.raises(InvalidRecordError):
            producer.send("t", 1, timestamp_ms=ts).get()
    finally:
        producer.close()
    box.assert_unchanged()


def test_a_record_over_the_limit_does_not_take_the_records_buffered_before_it_down(box):
    before = stored_values(box.data)
    producer = Producer(str(box.data))  # batches: the valid record waits in the buffer
    try:
        ok = producer.send("t", {"ok": 1})
        with pytest.raises(RecordTooLargeError):
            producer.send("t", "x" * 2000)
            producer.flush()
        producer.flush()
        assert ok.get().offset == 30
    finally:
        try:
            producer.close()
        except LogBrokerError:
            pass
    assert stored_values(box.data) == before + [{"ok": 1}]


def test_producer_with_a_bad_fsync_policy(box):
    with pytest.raises(ValueError, match="fsync policy must be one of always, interval, never, not 'sometimes'"):
        Producer(str(box.data), fsync="sometimes")
    box.assert_unchanged()


def test_topic_create_with_bad_partitions_and_config_through_the_library(box):
    b = Broker(str(box.data))
    for partitions in (0, -1, True, "3", 1025, 2.0):
        with pytest.raises(InvalidConfigError, match="partitions must be an integer from 1 to 1024"):
            b.create_topic("new", partitions)
    for config in ({"segment.bytes": "abc"}, {"retention.ms": -5}, {"fsync": "sometimes"}, {"foo": 1},
                   {"segment.bytes": True}):
        with pytest.raises(InvalidConfigError):
            b.create_topic("new", 1, config)
    box.assert_unchanged()


def test_consumer_seek_to_a_negative_offset(box):
    consumer = Consumer(data_dir=str(box.data))
    try:
        consumer.assign([("t", 0)])
        with pytest.raises(ValueError, match="seek offset must be a non-negative integer, got -1"):
            consumer.seek("t", 0, -1)
    finally:
        consumer.close()
    box.assert_unchanged()
