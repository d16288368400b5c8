"""What `pip install .` puts on a machine, and the three ways to start the same command line.

The wheel holds the ``logbroker`` package and nothing else (a top-level ``cli`` module would collide
with any other package's); the console script, ``python -m logbroker`` and ``python cli.py`` from a
checkout all run :func:`logbroker.cli.main`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _help(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LOGBROKER_DATA_DIR"}
    return subprocess.run([*command, "--help"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_python_dash_m_logbroker_and_cli_py_from_a_checkout_run_the_same_app(tmp_path):
    as_module = _help([sys.executable, "-m", "logbroker"], tmp_path)
    from_checkout = _help([sys.executable, str(ROOT / "cli.py")], tmp_path)
    assert as_module.returncode == 0, as_module.stderr
    assert from_checkout.returncode == 0, from_checkout.stderr
    assert as_module.stdout == from_checkout.stdout
    assert as_module.stdout.startswith("Usage: logbroker ")
    assert "topics" in as_module.stdout and "consume" in as_module.stdout


@pytest.mark.slow
def test_pip_install_puts_only_the_logbroker_package_and_its_console_script_on_the_path(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "cli.py"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "logbroker", source / "logbroker", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    top_level = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info"))
    assert top_level == ["bin", "logbroker"]
    assert (target / "logbroker" / "__main__.py").is_file()
    [dist_info] = target.glob("logbroker-*.dist-info")
    assert "logbroker = logbroker.__main__:main" in (dist_info / "entry_points.txt").read_text()


def test_only_the_command_line_modules_of_the_package_import_typer():
    importers = sorted(p.relative_to(ROOT / "logbroker").as_posix() for p in (ROOT / "logbroker").rglob("*.py")
                       if "import typer" in p.read_text() or "from typer" in p.read_text())
    assert importers and all(p.startswith("cli/") for p in importers), importers


@pytest.mark.parametrize("how", ["module", "checkout", "console-script"])
def test_ctrl_c_while_the_command_line_loads_exits_130_without_a_traceback(tmp_path, how):
    # A typer whose import is interrupted stands for a Ctrl+C during start-up.
    fake = tmp_path / "fake" / "typer"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise KeyboardInterrupt\n")
    command = {"module": [sys.executable, "-m", "logbroker"],
               "checkout": [sys.executable, str(ROOT / "cli.py")],
               "console-script": [sys.executable, "-c", "from logbroker.__main__ import main; main()"]}[how]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), str(ROOT)])}
    done = subprocess.run([*command, "topics", "list"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130
    assert "Traceback" not in done.stderr
