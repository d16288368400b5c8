"""What keeps the command line quick to start, and the helpers split out of cli.py for it.

Start-up is checked by what gets imported, never by timing (the machine running the suite is shared):
`--help` loads neither the storage stack nor rich, a one-record publish loads no pydantic, and
`import logbroker.errors` loads nothing else of logbroker. Timings are in benchmarks/cli_pipeline.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer

from logbroker import cli
from logbroker.cli import typer_plain as cli_typer
from logbroker.tools import render

ROOT = Path(__file__).resolve().parent.parent

SHOW_MODULES = "import sys; print('\\n'.join(sorted(sys.modules)), file=sys.stderr)"


def modules_after(args: list[str], tmp_path: Path, stdin: bytes = b"") -> set[str]:
    """The modules loaded once ``cli.py args`` has run, as a real process."""
    code = (f"import sys, atexit; sys.argv = ['logbroker', *{args!r}]; "
            f"atexit.register(lambda: exec({SHOW_MODULES!r})); sys.path.insert(0, {str(ROOT)!r}); "
            "import cli; cli.main()")
    done = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, timeout=60,
                          env={**os.environ, "LOGBROKER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr.decode()
    return set(done.stderr.decode().split())


def test_help_loads_neither_the_storage_stack_nor_rich_nor_pydantic(tmp_path):
    loaded = modules_after(["--help"], tmp_path)
    assert "logbroker.errors" in loaded
    assert not {"logbroker.broker", "logbroker.storage.log", "logbroker.storage.topic"} & loaded
    assert not any(m.split(".")[0] in ("rich", "pydantic") for m in loaded)


def test_a_one_record_publish_loads_no_pydantic(tmp_path):
    loaded = modules_after(["publish", "t"], tmp_path, stdin=b'{"a": 1}\n')
    assert "logbroker.clients.producer" in loaded
    assert not any(m.split(".")[0] in ("rich", "pydantic") for m in loaded)


def test_importing_logbroker_errors_loads_no_other_logbroker_module():
    code = "import sys, logbroker.errors; print(sorted(m for m in sys.modules if m.startswith('logbroker')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT).stdout
    assert out.decode().strip() == "['logbroker', 'logbroker.errors']"


def test_public_names_of_the_package_still_import():
    import logbroker
    from logbroker import Broker, Producer, Record, TopicConfig, resolve_data_dir  # noqa: F401
    assert all(getattr(logbroker, name) is not None for name in logbroker.__all__)
    with pytest.raises(AttributeError):
        logbroker.no_such_name  # noqa: B018


def test_the_data_dir_variable_of_the_cli_is_the_brokers():
    from logbroker.storage.datadir import ENV_DATA_DIR
    assert cli.ENV_DATA_DIR == ENV_DATA_DIR


def test_every_parameter_of_the_cli_is_coerced_without_pydantic():
    root = cli_typer.plain_command(cli.app)
    todo, slow = [root], []
    while todo:
        cmd = todo.pop()
        todo.extend(getattr(cmd, "commands", {}).values())
        for p in cmd.params:
            if hasattr(p, "type_descriptor") and not isinstance(p._runtime_param, cli_typer.PlainCoercion):
                slow.append(f"{cmd.name} {p.name}")
    assert slow == []


@pytest.mark.parametrize("kind,text,value", [
    (int, "12", 12), (int, " 7 ", 7), (int, "-3", -3), (int, "2.0", 2), (float, "1e3", 1000.0),
    (float, "-1", -1.0), (str, "orders", "orders"), (bool, "yes", True), (bool, "0", False),
])
def test_plain_coercion_accepts_what_typer_accepted(kind, text, value):
    got = cli_typer.PlainCoercion(kind, False).coerce(text, None, None)
    assert got == value and type(got) is kind


@pytest.mark.parametrize("kind,text,message", [
    (int, "abc", "Input should be a valid integer, unable to parse string as an integer"),
    (int, "1.5", "Input should be a valid integer, unable to parse string as an integer"),
    (float, "x", "Input should be a valid number"),
    (bool, "maybe", "Input should be a valid boolean"),
])
def test_plain_coercion_refuses_bad_values_with_typers_wording(kind, text, message):
    with pytest.raises(typer.BadParameter, match=message):
        cli_typer.PlainCoercion(kind, False).coerce(text, None, None)


def test_plain_coercion_of_a_list_and_of_nothing():
    assert cli_typer.PlainCoercion(str, True).coerce(("a=1", "b=2"), None, None) == ["a=1", "b=2"]
    assert cli_typer.PlainCoercion(str, True).coerce(None, None, None) == ()
    assert cli_typer.PlainCoercion(int, False).coerce(None, None, None) is None


def test_a_bad_number_on_the_command_line_is_one_error_line_and_exit_code_2(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "generate", "many"], capture_output=True,
                          timeout=60, env={**os.environ, "LOGBROKER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.decode().startswith("error: Invalid value for 'N': Input should be a valid integer")
    assert "Traceback" not in done.stderr.decode()


def test_render_table_pads_columns_and_strips_trailing_blanks():
    assert render.table(["A", "LONGER"], [[1, "-"], ["wide", "x"]]).splitlines() == [
        "A     LONGER", "1     -", "wide  x"]


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (16 * 2**20, "16.0 MiB")])
def test_render_size_uses_binary_units(n, text):
    assert render.size(n) == text


def test_render_summaries_of_nothing_say_so():
    from logbroker.storage.log import RecoveryReport
    clean = RecoveryReport(topic="t", partition=0)
    fixed = RecoveryReport(topic="t", partition=1, actions=["cut a torn tail"])
    assert render.retention_summary([], dry_run=True) == "Nothing to delete."
    assert render.recover_summary([clean, clean]) == "All 2 partitions are clean."
    assert render.recover_summary([clean, fixed]) == "t-1: cut a torn tail"


def test_render_publish_summary_counts_success_and_partitions():
    summary = SimpleNamespace(published=3, failed=1, per_partition={1: 2, 0: 1})
    assert render.publish_summary(summary, "t") == \
        "Published 3 records to t (1 failed, 75.0% success); per partition: 0: 1, 1: 2"


def test_render_publish_summary_gives_last_offsets_what_was_not_acknowledged_and_plurals():
    from logbroker.tools.publish import PublishSummary
    one = PublishSummary(published=1, per_partition={0: 1}, last_offsets={0: 41})
    assert render.publish_summary(one, "t") == \
        "Published 1 record to t (0 failed, 100.0% success); per partition: 0: 1 (last offset 41)"
    cut = PublishSummary(published=1500, per_partition={0: 1000, 2: 500}, last_offsets={0: 999, 2: 1499},
                         not_acknowledged=3, interrupted=True, skipped=2, lines_read=1505)
    assert render.publish_summary(cut, "t") == (
        "Interrupted after line 1,505. Published 1,500 records to t (3 failed, 99.8% success); per partition: "
        "0: 1000 (last offset 999), 2: 500 (last offset 1499); 3 not acknowledged; 2 empty lines skipped")
