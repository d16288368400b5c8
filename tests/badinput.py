"""The bad-input catalogue of the torture suite (``tests/test_bad_*.py``): every way a user can hand
logbroker something wrong. This module is their sandbox and their checks of a clean refusal.

Each case runs the real command line (``python cli.py ...`` in a subprocess, with
``LOGBROKER_DATA_DIR`` set) and, where it makes sense, the library. Every refused case must give:

- one line on stderr that says what was wrong and where (line number, offset, file, name);
- a non-zero exit code and no Python traceback;
- nothing created, removed or changed anywhere under the test's temporary directory, which holds
  the data directory, the working directory of the command and its neighbours (a snapshot of every
  file's bytes, mode and symlink target is compared before and after); where a command also has
  valid input to keep (publish), only the records of the valid lines are added.

The data directory of each test (fixture ``box``, made available to every test module by
conftest.py) is a copy of one prepared once per test module (fixture ``template``): topic
``t`` with one partition, tiny segments and retention already applied, so its log start offset is
above 0, and group ``g`` with a committed offset on it.

The names matrix (bad topic and group names x every command that takes one) runs ``cli.main`` in
this process, which is fast; one representative command per name runs as a real subprocess too.
The other families run every sixth case (the first included) as a subprocess and the rest in
process, to keep the catalogue near 40 s; ``LOGBROKER_BAD_INPUT_SUBPROCESS=all`` runs every case as a
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
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / "cli.py")
sys.path.insert(0, str(ROOT))

from logbroker import cli  # noqa: E402
from logbroker.broker import Broker  # noqa: E402
from logbroker.clients.producer import Producer  # noqa: E402
from logbroker.storage.topic import Topic  # noqa: E402
from logbroker.groups import admin  # noqa: E402

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
            elif name in (".lock", "group.lock"):
                # A lock file holds no data, only the pid of its last holder (FORMAT.md): taking a
                # lock and then refusing is no change.
                out[rel] = ("lock", stat.S_IMODE(st.st_mode))
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
