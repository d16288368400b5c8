"""The README keeps itself honest: its shell examples run, in order, against a temporary data dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _readme_shell_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "pip install" in line or "Ctrl+C" in line:
                continue
            lines.append(line)
    return lines


@pytest.mark.slow
def test_readme_shell_examples_run_in_order_against_a_temporary_data_dir(tmp_path):
    env = {**os.environ, "LOGBROKER_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env.pop("KAFKA_TOPIC", None)
    env.pop("KAFKA_CONSUMER_GROUP", None)
    logbroker = f"{sys.executable} {ROOT / 'cli.py'}"
    for line in _readme_shell_lines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = value
            continue
        command = re.sub(r"(^|\| )logbroker ", lambda m: f"{m.group(1)}{logbroker} ", line)
        command = command.replace("python3 ", f"{sys.executable} ", 1) if command.startswith("python3 ") else command
        command = command.replace("segments/", f"{tmp_path / 'data'}/")
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, f"README example failed: {line}\n{done.stderr.decode()[-2000:]}"


@pytest.mark.slow
def test_readme_python_api_example_runs_as_written_in_a_fresh_directory_and_again(tmp_path):
    [block] = re.findall(r"The Python API beside the CLI:\n\n```python\n(.*?)```", README, re.S)
    env = {k: v for k, v in os.environ.items() if k != "LOGBROKER_DATA_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    for run in ("first", "second"):  # the second run finds the topic and the group's commits
        done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"{run} run: {done.stderr[-2000:]}"
        printed = sorted(line.split(" ", 2)[2] for line in done.stdout.splitlines())
        assert printed == ["{'item': 'album'}", "{'item': 'lightstick'}", "{'item': 'poster'}"], run
    assert (tmp_path / "segments" / "orders").is_dir()  # the default data directory


def test_readme_tutorial_steps_are_numbered_without_gaps():
    steps = [int(n) for n in re.findall(r"\*\*Step (\d+) ", README)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 5
