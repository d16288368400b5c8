"""The README's "Any Kafka client" snippets run as written against a server started by the test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_support import kcat, module_server

ROOT = Path(__file__).resolve().parent.parent
SECTION = (ROOT / "README.md").read_text().split("## Any Kafka client", 1)[1].split("\n## ", 1)[0]


@pytest.fixture
def server(tmp_path_factory):
    """A fresh server per snippet: each one starts from an empty data directory, as a reader would."""
    yield from module_server(tmp_path_factory, "readme")


def test_the_readme_has_a_snippet_for_each_client():
    assert [name for name in ("kcat", "confluent_kafka", "from kafka import", "aiokafka") if name in SECTION] == [
        "kcat", "confluent_kafka", "from kafka import", "aiokafka"]


@pytest.mark.slow
def test_kcat_snippet_runs_as_written(server):
    kcat()
    [block] = re.findall(r"```sh\n(.*?)```", SECTION, re.S)
    out = subprocess.run(block.replace("127.0.0.1:9092", server.bootstrap), shell=True, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == ["k1=v1", "k2=v2"]


@pytest.mark.slow
@pytest.mark.parametrize("index,expected", [(0, "b'{\"item\":\"poster\"}'"), (1, "album"), (2, "b'")])
def test_python_client_snippets_run_as_written(server, index, expected):
    block = re.findall(r"```python\n(.*?)```", SECTION, re.S)[index]
    out = subprocess.run([sys.executable, "-c", block.replace("127.0.0.1:9092", server.bootstrap)],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expected in out.stdout
