"""kcat (librdkafka 2.0.2 in Debian: the oldest client, it pins the version floors) against
``logbroker serve``: the research's kcat steps, plus one truth on disk with the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kafka_support import module_server, run_kcat

pytestmark = pytest.mark.slow  # a server process and a kcat process per test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "kcat")


def _cli(server, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_server_prints_where_it_listens(server):
    assert server.line == f"listening on 127.0.0.1:{server.port} (data dir {server.data_dir})"


def test_metadata_lists_one_broker_at_the_real_port(server):
    meta = json.loads(run_kcat(server.bootstrap, "-L", "-J"))
    assert [b["name"] for b in meta["brokers"]] == [server.bootstrap]
    assert meta["controllerid"] == 0


def test_produce_with_keys_and_headers_then_consume_from_beginning_offset_and_last(server):
    run_kcat(server.bootstrap, "-P", "-t", "kc1", "-K:", "-p", "0", "-H", "src=kcat", input="k1:v1\nk2:v2\nk3:v3\n")
    meta = json.loads(run_kcat(server.bootstrap, "-L", "-t", "kc1", "-J"))
    assert len(meta["topics"][0]["partitions"]) == 3  # auto-created with --num-partitions' default
    got = run_kcat(server.bootstrap, "-C", "-t", "kc1", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o|%k|%s|%h\n")
    assert got.splitlines() == ["0|k1|v1|src=kcat", "1|k2|v2|src=kcat", "2|k3|v3|src=kcat"]
    assert run_kcat(server.bootstrap, "-C", "-t", "kc1", "-p", "0", "-o", "-1", "-e", "-q", "-f", "%s\n") == "v3\n"
    assert run_kcat(server.bootstrap, "-C", "-t", "kc1", "-p", "0", "-o", "1", "-c", "1", "-q", "-f", "%s\n") == "v2\n"
    # An offset past the end: OFFSET_OUT_OF_RANGE, then the client's reset to earliest.
    assert run_kcat(server.bootstrap, "-C", "-t", "kc1", "-p", "0", "-o", "100", "-X", "auto.offset.reset=earliest",
                    "-e", "-q", "-f", "%o ") == "0 1 2 "


def test_acks_0_produce_gets_no_response_and_is_stored(server):
    run_kcat(server.bootstrap, "-P", "-t", "kc2", "-p", "1", "-X", "acks=0", input="z0\n")
    got = run_kcat(server.bootstrap, "-C", "-t", "kc2", "-p", "1", "-o", "beginning", "-c", "1", "-q", "-f", "%s\n")
    assert got == "z0\n"


def test_group_consumes_everything_commits_and_resumes_from_its_commits(server):
    run_kcat(server.bootstrap, "-P", "-t", "kc3", "-p", "0", input="a\nb\n")
    first = run_kcat(server.bootstrap, "-G", "g3", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%p:%o:%s\n",
                     "kc3")
    assert sorted(first.splitlines()) == ["0:0:a", "0:1:b"]
    run_kcat(server.bootstrap, "-P", "-t", "kc3", "-p", "2", input="new\n")
    again = run_kcat(server.bootstrap, "-G", "g3", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%p:%o:%s\n",
                     "kc3")
    assert again.splitlines() == ["2:0:new"]
    # One truth on disk: the Kafka group's commits are the group's committed offsets.
    described = _cli(server, "groups", "describe", "g3")
    rows = {tuple(line.split()[:3]) for line in described.splitlines()[2:]}
    assert {("kc3", "0", "2"), ("kc3", "2", "1")} <= rows


def test_records_published_natively_reach_kcat_as_their_stored_json_and_kcat_records_reach_native_consumers(server):
    _cli(server, "topics", "create", "kc4", "--partitions", "1")
    subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, "publish", "kc4"],
                   input='{"item": "poster", "n": 1}\n', text=True, check=True, capture_output=True, timeout=60)
    got = run_kcat(server.bootstrap, "-C", "-t", "kc4", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%s\n")
    assert got == '{"item": "poster", "n": 1}\n'  # publish keeps a line's JSON text as written
    run_kcat(server.bootstrap, "-P", "-t", "kc4", "-p", "0", input='{"a":[1,2]}\nplain text\n')
    native = _cli(server, "consume", "kc4", "--from-beginning", "--max-messages", "3", "--format", "json")
    assert native.splitlines() == ['{"item":"poster","n":1}', '{"a":[1,2]}', '{"$base64":"cGxhaW4gdGV4dA=="}']
    line = open(os.path.join(server.data_dir, "kc4", "kc4-0", "00000000000000000000.log")).read().splitlines()[1]
    assert line.endswith(',"value":{"a":[1,2]}}')  # canonical JSON from a Kafka client is stored as JSON
