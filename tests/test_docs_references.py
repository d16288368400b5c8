"""The reference pages name things that exist: every path, module file, test and section they cite.

README.md, FORMAT.md, RELIABILITY.md, CHANGELOG.md and benchmarks/README.md send readers to files
(`logbroker/storage/recovery.py`), to module files by their bare name (`segment.py`), to single
tests (`tests/test_clock.py::test_...`) and to sections of each other ("FORMAT.md, "Compacted
logs""). The code's docstrings and comments cite sections too. A rename that leaves one of these
behind fails here, naming the page and what it cites.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "FORMAT.md", "RELIABILITY.md", "CHANGELOG.md", "benchmarks/README.md"]

PATH = re.compile(r"(?<![\w/.-])((?:logbroker|tests|benchmarks)/[\w/.*-]*[\w/*])")
BARE_MODULE = re.compile(r"`([a-z_][a-z0-9_]*\.py)`")
TEST_ID = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")
TRIPLE_QUOTED = re.compile(r'"""(.*?)"""', re.DOTALL)
COMMENT = re.compile(r"(?m)(?:^|\s)#.*$")
DOTTED = re.compile(r"\blogbroker(?:\.[A-Za-z_]\w*)+")
SECTION = re.compile(r"\b((?:FORMAT|RELIABILITY|README)\.md),? \(?((?:\"[^\"\n]+\"(?:, )?)+)")


def exists(path: str) -> bool:
    """A file or directory, a glob matching one (`tests/test_bad_*.py`), or a module named without .py."""
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists() or (ROOT / f"{path}.py").exists()


def page_text(page: str) -> str:
    return (ROOT / page).read_text()


def repository_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout:
        return listed.stdout.split()
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]


def prose_of(source: Path) -> str:
    """The triple-quoted strings and comments of a Python file: where it names other code in words.

    Regular expressions rather than a parse: every docstring is caught (with some strings that are
    not docstrings, such as a child process's code, which must name real modules too), in a
    fraction of the time ast takes over the whole package."""
    text = source.read_text()
    return "\n".join(TRIPLE_QUOTED.findall(text) + COMMENT.findall(text))


def resolves(dotted: str) -> bool:
    """Whether a dotted name is a module of the package followed by attributes that exist."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def cited_sections(text: str) -> list[tuple[str, str]]:
    """(page, title) for every `PAGE.md, "Title"` or `PAGE.md ("Title", "Other")` in text."""
    found = []
    for match in SECTION.finditer(text):
        for title in re.findall(r"\"([^\"\n]+)\"", match.group(2)):
            found.append((match.group(1), title))
    return found


def has_section(page: str, title: str) -> bool:
    """A heading holding the title, or a bold run starting with it (RELIABILITY.md's bullets)."""
    text = page_text(page)
    headings = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    return any(title in h for h in headings) or f"**{title}" in text


@pytest.mark.parametrize("page", PAGES)
def test_every_path_a_page_names_exists(page):
    missing = sorted({p for p in PATH.findall(page_text(page)) if not exists(p)})
    assert not missing, f"{page} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_module_file_a_page_names_by_its_bare_name_exists_somewhere(page):
    names = {Path(f).name for f in repository_files()}
    missing = sorted({m for m in BARE_MODULE.findall(page_text(page)) if m not in names})
    assert not missing, f"{page} names module files that no longer exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_single_test_a_page_names_is_defined_in_its_file(page):
    missing = []
    for path, name in TEST_ID.findall(page_text(page)):
        source = ROOT / path
        defined = set()
        if source.exists():
            defined = {node.name for node in ast.walk(ast.parse(source.read_text()))
                       if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"{page} names tests that do not exist: {missing}"


def test_every_dotted_name_the_pages_docstrings_and_comments_give_exists():
    sources = [(page, page_text(page)) for page in PAGES]
    sources += [(str(f.relative_to(ROOT)), prose_of(f))
                for f in sorted((ROOT / "logbroker").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))]
    missing = sorted({f"{where}: {name}" for where, text in sources for name in DOTTED.findall(text)
                      if not resolves(name)})
    assert not missing, "names that no module defines:\n" + "\n".join(missing)


def test_every_section_cited_by_a_page_or_the_code_exists():
    sources = [ROOT / page for page in PAGES]
    sources += sorted((ROOT / "logbroker").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    missing = []
    for source in sources:
        for page, title in cited_sections(source.read_text()):
            if not has_section(page, title):
                missing.append(f"{source.relative_to(ROOT)} cites {page}, \"{title}\"")
    assert not missing, "sections cited but not found:\n" + "\n".join(missing)


def test_the_checks_above_catch_what_they_look_for():
    # The patterns must match the forms the pages use, or the tests above would pass on anything.
    assert PATH.findall("see `logbroker/storage/check.py`, tests/golden/ and `tests/test_bad_*.py`") == [
        "logbroker/storage/check.py", "tests/golden/", "tests/test_bad_*.py"]
    assert not exists("logbroker/storage/check.py") and not exists("tests/test_nothing_*.py")
    assert exists("tests/golden/") and exists("tests/test_bad_*.py") and exists("logbroker/__init__")
    assert BARE_MODULE.findall("the check (`check.py`) and `log.py`") == ["check.py", "log.py"]
    assert TEST_ID.findall("`tests/test_clock.py::test_gone`") == [("tests/test_clock.py", "test_gone")]
    assert cited_sections('FORMAT.md ("Compacted logs", "Deleting records") and RELIABILITY.md, "Lost state"') == [
        ("FORMAT.md", "Compacted logs"), ("FORMAT.md", "Deleting records"), ("RELIABILITY.md", "Lost state")]
    assert has_section("FORMAT.md", "Compacted logs") and has_section("RELIABILITY.md", "Lost state")
    assert not has_section("FORMAT.md", "No such section")
    assert DOTTED.findall("(:class:`~logbroker.admin.ResetPlan`, logbroker.storage.log)") == [
        "logbroker.admin.ResetPlan", "logbroker.storage.log"]
    assert resolves("logbroker.storage.log") and resolves("logbroker.groups.admin.ResetPlan")
    assert not resolves("logbroker.admin.ResetPlan") and not resolves("logbroker.groups.admin.NoSuchName")
    assert "The patterns must match" in prose_of(Path(__file__)) and "import importlib" not in prose_of(Path(__file__))
