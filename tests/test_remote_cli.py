"""Every command with ``--bootstrap-server`` against ``logbroker serve`` on one data directory,
compared with the same command run locally on that directory: same stdout, stderr and exit code.

Normalised, and only where the two truly differ: ``topics describe``'s SEGMENTS and SIZE columns
(and ``segments``, ``size``, ``topic_id`` in its JSON), which Kafka's protocol does not carry;
LAG-TIME / ``lag_ms`` of ``groups describe``, an age that grows between the two runs; the "does
not exist" wording, which names the data directory or the cluster."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import orjson
import pytest

from kafka_support import module_server
from logbroker.remote.clients import RemoteProducer

pytestmark = pytest.mark.slow  # a server process and two client processes per comparison


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "remotecli")


def run(server, *args: str, remote: bool, input: str | None = None, env: dict | None = None,
        timeout: float = 90) -> subprocess.CompletedProcess:
    where = ["--bootstrap-server", server.bootstrap] if remote else []
    return subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, *args, *where],
                          input=input, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def both(server, *args: str, input: str | None = None) -> tuple[subprocess.CompletedProcess, ...]:
    return run(server, *args, remote=False, input=input), run(server, *args, remote=True, input=input)


def same(server, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run locally and remotely; assert equal exit codes, stdout and stderr; return the local run."""
    local, remote = both(server, *args, input=input)
    assert (remote.returncode, remote.stdout, remote.stderr) == (local.returncode, local.stdout, local.stderr), args
    return local


def lines(n: int, start: int = 0) -> str:
    return "".join(f'{{"n":{i},"customer":"c{i % 5}"}}\n' for i in range(start, start + n))


@pytest.fixture(scope="module")
def orders(server):
    """Topic ``orders``: 3 partitions, 40 keyed records with a header, partition 0's log start at 2,
    and records a Kafka client sent (bytes, text, a null value, headers with bytes) on partition 1;
    group ``billing`` committed after 17 records."""
    assert run(server, "topics", "create", "orders", "-p", "3", "-c", "segment.bytes=500",
               remote=False).returncode == 0
    done = run(server, "publish", "orders", "--key-field", "customer", "--header", "source=test",
               input=lines(40), remote=False)
    assert done.returncode == 0, done.stderr
    with RemoteProducer(server.bootstrap) as producer:
        producer.send_bytes("orders", b"\xff\xfe raw", key=b"\x00k", partition=1, headers=[("h", b"\x80")])
        producer.send_bytes("orders", b"not json, text", key="t", partition=1)
        producer.send_bytes("orders", None, key="gone", partition=1)
    assert run(server, "delete-records", "orders", "--partition", "0", "--before-offset", "2",
               remote=False).returncode == 0
    done = run(server, "consume", "orders", "--group", "billing", "--from-beginning", "--max-messages", "17",
               remote=False)
    assert done.returncode == 0, done.stderr
    return "orders"


# -- topics --------------------------------------------------------------------------------------

def test_topics_list_and_describe_match(server, orders):
    same(server, "topics", "list")
    same(server, "topics", "list", "--json")
    local, remote = both(server, "topics", "describe", "orders")
    assert remote.returncode == local.returncode == 0
    cut = re.compile(r"^(\d+ +\d+ +\d+ +\d+) +\S+ +\S+(?: \S+)?$", re.M)  # drop SEGMENTS and SIZE
    assert cut.sub(r"\1", remote.stdout) == cut.sub(r"\1", local.stdout)
    assert re.search(r"^0 +2 +\d+ +\d+ +- +-$", remote.stdout, re.M)  # log start 2, no segments or size
    local, remote = both(server, "topics", "describe", "orders", "--json")
    blank = {"segments": None, "size": None}
    want = orjson.loads(local.stdout)
    want["topic_id"] = None
    want["partition_details"] = [{**p, **blank} for p in want["partition_details"]]
    assert orjson.loads(remote.stdout) == want


def test_topics_create_alter_and_delete_say_the_same(server):
    for name, remote in (("made-local", False), ("made-remote", True)):
        created = run(server, "topics", "create", name, "-p", "2", "-c", "retention.ms=60000", remote=remote)
        again = run(server, "topics", "create", name, "--if-not-exists", remote=remote)
        altered = run(server, "topics", "alter", name, "-c", "retention.ms=120000", "--partitions", "4",
                      remote=remote)
        shrunk = run(server, "topics", "alter", name, "--partitions", "1", remote=remote)
        unknown = run(server, "topics", "alter", name, "-c", "no.such=1", remote=remote)
        deleted = run(server, "topics", "delete", name, remote=remote)
        results = [(r.returncode, r.stdout, r.stderr.replace(name, "NAME"))
                   for r in (created, again, altered)] + [(deleted.returncode, deleted.stderr.replace(name, "NAME"))]
        if not remote:
            expected = results
            refusals = [(r.returncode, "can only grow" in r.stderr, "no.such" in r.stderr) for r in (shrunk, unknown)]
        else:
            assert results == expected
            assert [(r.returncode, "can only grow" in r.stderr, "no.such" in r.stderr)
                    for r in (shrunk, unknown)] == refusals
    assert refusals == [(2, True, False), (2, False, True)]


def test_a_missing_topic_is_the_same_error_naming_the_cluster(server):
    local, remote = both(server, "topics", "describe", "nosuch")
    assert remote.returncode == local.returncode == 1
    assert remote.stderr == f"error: topic 'nosuch' does not exist on {server.bootstrap}\n"
    assert "nosuch" not in run(server, "topics", "list", remote=True).stdout  # describing did not create it


# -- publish, consume, replay --------------------------------------------------------------------

def test_publish_spreads_keyed_lines_as_the_local_producer_does(server):
    for name, remote in (("pub-local", False), ("pub-remote", True)):
        done = run(server, "publish", name, "--partitions", "3", "--key-field", "customer", "--header", "a=b",
                   input=lines(25) + "\nnot json\n", remote=remote)
        if not remote:
            expected = (done.returncode, done.stderr.replace(name, "NAME"))
        else:
            assert (done.returncode, done.stderr.replace(name, "NAME")) == expected
    assert expected[0] == 1 and "line 27" in expected[1] and "Published 25 records" in expected[1]
    dump = [run(server, "replay", name, "--from-offset", "0", "--format", "envelope", remote=False).stdout
            for name in ("pub-local", "pub-remote")]
    strip = [[{k: v for k, v in orjson.loads(line).items() if k not in ("topic", "timestamp")}
              for line in d.splitlines()] for d in dump]
    assert strip[0] == strip[1] and len(strip[0]) == 25


@pytest.mark.parametrize("fmt", ["json", "envelope", "pretty"])
def test_consume_prints_every_kind_of_record_the_same(server, orders, fmt):
    for partition, offset in (("0", "2"), ("1", "0")):
        same(server, "consume", "orders", "--partition", partition, "--offset", offset, "--max-messages", "12",
             "--timeout-ms", "3000", "--format", fmt)


def test_consume_with_kafkas_print_properties_matches(server, orders):
    same(server, "consume", "orders", "--partition", "1", "--offset", "10", "--max-messages", "5", "--timeout-ms", "3000",
         "--property", "print.key=true", "--property", "print.headers=true", "--property", "print.offset=true")


def test_a_group_consumer_resumes_from_the_same_commits(server, orders):
    for group in ("resume-local", "resume-remote"):  # only partition 1 has records left to read
        for how in (["--topic", "orders", "--to-latest"], ["--topic", "orders:1", "--to-offset", "1"]):
            assert run(server, "groups", "reset-offsets", group, *how, "--execute", remote=False).returncode == 0
    local = run(server, "consume", "orders", "--group", "resume-local", "--max-messages", "3", remote=False)
    remote = run(server, "consume", "orders", "--group", "resume-remote", "--max-messages", "3", remote=True)
    assert (remote.returncode, remote.stdout, remote.stderr) == (local.returncode, local.stdout, local.stderr)
    rows = [orjson.loads(run(server, "groups", "describe", g, "--json", remote=False).stdout)
            for g in ("resume-local", "resume-remote")]
    assert [r["current_offset"] for r in rows[0]] == [r["current_offset"] for r in rows[1]]
    assert rows[0][1]["current_offset"] == 4


def test_replay_prints_and_refuses_the_same(server, orders):
    same(server, "replay", "orders", "--from-offset", "2", "--to-offset", "9")
    same(server, "replay", "orders", "--from-offset", "0", "--partition", "1", "--format", "pretty")
    local = same(server, "replay", "orders", "--from-offset", "0", "--partition", "0")
    assert local.returncode == 1 and "retention removed" in local.stderr


def test_replay_to_topic_copies_records_into_the_cluster(server, orders):
    done = run(server, "replay", "orders", "--from-offset", "0", "--partition", "1", "--to-topic", "copied",
               remote=True)
    originals = [orjson.loads(line) for line in
                 run(server, "replay", "orders", "--from-offset", "0", "--partition", "1",
                     remote=False).stdout.splitlines()]
    assert done.returncode == 0 and f"Replayed {len(originals)} records from orders into copied" in done.stderr
    copies = [orjson.loads(line) for line in
              run(server, "replay", "copied", "--from-offset", "0", remote=False).stdout.splitlines()]
    fields = ("key", "value", "headers", "timestamp")
    assert sorted(str([r[f] for f in fields]) for r in copies) == sorted(str([r[f] for f in fields]) for r in originals)


# -- groups ----------------------------------------------------------------------------------------

def _no_lag_time(text: str) -> str:
    return re.sub(r"\d+\.\ds", "N.Ns", text)


def test_groups_list_and_describe_match(server, orders):
    same(server, "groups", "list")
    same(server, "groups", "list", "--json")
    local, remote = both(server, "groups", "describe", "billing")
    assert (remote.returncode, _no_lag_time(remote.stdout), remote.stderr) == \
        (local.returncode, _no_lag_time(local.stdout), local.stderr)
    local, remote = both(server, "groups", "describe", "billing", "--json")
    rows = [[{**r, "lag_ms": None} for r in orjson.loads(x.stdout)] for x in (local, remote)]
    assert rows[0] == rows[1] and sum(r["current_offset"] or 0 for r in rows[0]) == 17 + 2  # + the log start


@pytest.mark.parametrize("how", [["--to-earliest"], ["--to-latest"], ["--to-offset", "1"], ["--shift-by", "-3"],
                                 ["--by-duration", "PT1H"], ["--to-datetime", "2000-01-01T00:00:00"],
                                 ["--to-current"]])
def test_a_reset_plan_is_the_same(server, orders, how):
    same(server, "groups", "reset-offsets", "billing", "--topic", "orders", *how)


def test_reset_execute_and_delete_act_on_the_data_directory(server, orders):
    assert run(server, "consume", "orders", "--group", "doomed", "--from-beginning", "--max-messages", "9",
               remote=False).returncode == 0
    done = run(server, "groups", "reset-offsets", "doomed", "--topic", "orders:1,2", "--to-earliest", "--execute",
               remote=True)
    assert done.returncode == 0 and "Reset 2 partitions of group doomed." in done.stderr
    rows = orjson.loads(run(server, "groups", "describe", "doomed", "--json", remote=False).stdout)
    assert [r["current_offset"] for r in rows if r["partition"] in (1, 2)] == [0, 0]
    done = run(server, "groups", "delete", "doomed", remote=True)
    assert (done.returncode, done.stderr) == (0, "Deleted group doomed.\n")
    assert "doomed" not in run(server, "groups", "list", remote=False).stdout
    local, remote = both(server, "groups", "delete", "doomed")
    assert remote.returncode == local.returncode == 1
    assert remote.stderr == f"error: consumer group 'doomed' does not exist on {server.bootstrap}\n"


# -- bench -----------------------------------------------------------------------------------------

def test_bench_commands_run_against_the_cluster_and_print_the_local_result_lines(server):
    done = run(server, "bench", "produce", "--topic", "perf", "--num-records", "300", "--record-size", "100",
               remote=True)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^300 records sent, [\d.]+ records/sec .* 99.9th\.$", done.stdout, re.M)
    assert f"cluster {server.bootstrap}" in done.stdout.splitlines()[0]
    done = run(server, "bench", "consume", "--topic", "perf", "--json", remote=True)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["data.consumed.in.nMsg"] == 300
    done = run(server, "bench", "e2e", "--rate", "200", "--num-records", "50", remote=True)
    assert done.returncode == 0 and done.stdout.splitlines()[1].startswith("50 records at 200.0 records/sec"), done
    done = run(server, "bench", "produce", "--topic", "perf", "--num-records", "1", "--record-size", "10",
               "--producers", "2", remote=True)
    assert done.returncode == 2 and "--producers applies to the data directory" in done.stderr


# -- the connection ------------------------------------------------------------------------------

def test_an_unreachable_cluster_is_one_line_naming_the_address_and_timeout(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: refused
        address = f"127.0.0.1:{s.getsockname()[1]}"
        for args in (["topics", "list"], ["groups", "describe", "g"], ["consume", "t", "--max-messages", "1"],
                     ["publish", "t"]):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "logbroker", *args, "--bootstrap-server", address],
                                  input="", capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "LOGBROKER_DATA_DIR": str(tmp_path)})
            assert time.monotonic() - started < 30
            assert (done.returncode, done.stdout) == (1, ""), args
            assert done.stderr == f"error: no broker of --bootstrap-server {address} answered within 10 s\n", args


def test_the_environment_variable_points_commands_at_the_cluster(server, orders, tmp_path):
    done = subprocess.run([sys.executable, "-m", "logbroker", "topics", "list"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LOGBROKER_BOOTSTRAP_SERVERS": server.bootstrap,
                                           "LOGBROKER_DATA_DIR": str(tmp_path / "empty")})
    assert done.returncode == 0 and "orders" in done.stdout.split()


def test_command_config_settings_reach_the_client(server, orders, tmp_path):
    props = tmp_path / "client.properties"
    props.write_text("# passed through to librdkafka\nclient.id=remote-cli-test\n")
    done = run(server, "topics", "list", "--command-config", str(props), remote=True)
    assert done.returncode == 0
    assert any(client == "remote-cli-test" for client, _, _ in server.requests())
    props.write_text("security.protocol=carrier-pigeon\n")
    done = run(server, "topics", "list", "--command-config", str(props), remote=True)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "security.protocol" in done.stderr and "carrier-pigeon" in done.stderr


def test_without_the_kafka_extra_the_flag_says_how_to_install_it(server, tmp_path):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(textwrap.dedent("""
        import sys
        class _NoKafka:
            def find_spec(self, name, path=None, target=None):
                if name == "confluent_kafka":
                    raise ImportError("No module named 'confluent_kafka'")
        sys.meta_path.insert(0, _NoKafka())
    """))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = run(server, "topics", "list", remote=True, env=env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("error: --bootstrap-server needs the Kafka client library (confluent-kafka): "
                           "pip install 'logbroker[kafka]'\n")
    assert run(server, "topics", "list", remote=False, env=env).returncode == 0  # local commands need no client


# -- the README ----------------------------------------------------------------------------------

def test_the_readmes_cluster_commands_run_as_written(tmp_path_factory):
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Moving to a Kafka cluster", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert block.startswith("pip install 'logbroker[kafka]'\n")
    commands = block.split("\n", 1)[1]  # the extra is installed with the test dependencies
    gen = module_server(tmp_path_factory, "readmecluster")
    srv = next(gen)
    try:
        bindir = os.path.dirname(sys.executable)
        done = subprocess.run(commands.replace("127.0.0.1:9092", srv.bootstrap), shell=True, capture_output=True,
                              text=True, timeout=180, env={**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"],
                                                           "LOGBROKER_DATA_DIR": str(tmp_path_factory.mktemp("unused"))})
        assert done.returncode == 0, done.stderr
        assert "Published 20 records to orders" in done.stderr and "GROUP billing" in done.stdout
        assert "Reset 3 partitions of group billing." in done.stderr
        assert re.search(r"^0 +0 +\d+ +\d+ +- +-$", done.stdout, re.M)
    finally:
        next(gen, None)
