"""The package's imports point down its layers, so the file list reads as the architecture.

Layers, bottom-up: ``errors`` < ``storage`` < ``groups`` < ``clients`` < ``broker`` < ``tools`` /
``kafka`` / ``remote`` (side by side, none importing another) < ``cli`` (with the package's
``__init__`` and ``__main__``). A module may import its own layer and any layer below it. The Kafka
protocol server (``kafka``) sits on the storage and groups layers only, never on the clients or
the Broker facade. Every import counts: at module level, inside a function, under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RANK = {"errors": 0, "storage": 1, "groups": 2, "clients": 3, "broker": 4,
        "tools": 5, "kafka": 5, "remote": 5, "cli": 6, "__main__": 6, "__init__": 6}
#: layers that may import only these (besides themselves), stricter than their rank alone
ONLY = {"kafka": {"errors", "storage", "groups"}}


def layer_of(module: str) -> str:
    """The layer of a dotted name under logbroker: ``logbroker.storage.log`` -> ``storage``. A
    name of the package itself (``logbroker``, ``logbroker.Broker``) is the top-level
    ``__init__``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in RANK:
        return parts[1]
    return "__init__"


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, dotted name) for each logbroker name the module at ``path`` imports; ``package`` is
    the module's own package, for relative imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "logbroker"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "logbroker":
                continue
            if node.module is None or source == "logbroker":  # from . import x: x may be a module
                found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, source))
    return found


def layer_violations(root: Path) -> list[str]:
    """One line per import under ``root``/logbroker that points up (or sideways between the
    independent top layers), naming the module, the line and what it imports."""
    problems = []
    for path in sorted((root / "logbroker").rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        parts = list(relative.parts)
        package = ".".join(parts if parts[-1] == "__init__" else parts[:-1])
        if parts[-1] == "__init__":
            parts = parts[:-1]
        own = layer_of(".".join(parts)) if len(parts) > 1 else "__init__"
        for line, module in imported_modules(path, package):
            theirs = layer_of(module)
            if theirs == own or RANK[theirs] == RANK[own] == RANK["cli"]:
                continue
            allowed = ONLY.get(own)
            upward = RANK[theirs] >= RANK[own] or (allowed is not None and theirs not in allowed)
            if upward:
                problems.append(f"{path.relative_to(root)}:{line}: the {own} layer imports {module} "
                                f"(the {theirs} layer)")
    return problems


def test_every_import_in_the_package_points_down_its_layers():
    assert layer_violations(ROOT) == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "logbroker" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_an_upward_import_is_named_with_its_module_and_line(tmp_path):
    root = _plant(tmp_path, {
        "storage/log.py": "import os\n\ndef f():\n    from ..clients.producer import Producer\n",
        "groups/offsets.py": "from logbroker.broker import Broker\nfrom ..storage import fsutil\n",
        "clients/consumer.py": "from .. import errors\nfrom ..groups.offsets import OffsetStore\n",
    })
    assert layer_violations(root) == [
        "logbroker/groups/offsets.py:1: the groups layer imports logbroker.broker (the broker layer)",
        "logbroker/storage/log.py:4: the storage layer imports logbroker.clients.producer (the clients layer)",
    ]


def test_the_kafka_server_may_not_import_the_clients_or_the_broker(tmp_path):
    root = _plant(tmp_path, {
        "kafka/storage.py": "from ..broker import Broker\nfrom ..storage.topic import Topic\n",
        "kafka/group_api.py": "from ..groups.offsets import OffsetStore\nfrom ..clients import producer\n",
    })
    assert layer_violations(root) == [
        "logbroker/kafka/group_api.py:2: the kafka layer imports logbroker.clients (the clients layer)",
        "logbroker/kafka/storage.py:1: the kafka layer imports logbroker.broker (the broker layer)",
    ]


def test_the_side_by_side_top_layers_do_not_import_each_other_nor_the_package_root(tmp_path):
    root = _plant(tmp_path, {
        "remote/mirror.py": "from ..tools.publish import publish_lines\n",
        "tools/demo.py": "from logbroker import Broker\nfrom ..broker import Broker\n",
    })
    assert layer_violations(root) == [
        "logbroker/remote/mirror.py:1: the remote layer imports logbroker.tools.publish (the tools layer)",
        "logbroker/tools/demo.py:1: the tools layer imports logbroker.Broker (the __init__ layer)",
    ]


def _own_private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines itself: its functions, classes and variables, the
    attributes it assigns (``self._x = ...``, ``other._x = ...``) and those its ``__slots__`` list."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                  for t in node.targets):
            names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                      and isinstance(c.value, str)}
    return {name for name in names if name.startswith("_")}


def private_uses(root: Path) -> list[str]:
    """Names private to one module used by another: ``from m import _name`` anywhere in the package,
    and ``obj._name`` (obj not self or cls) read in a module that does not define ``_name`` itself
    (a private method or attribute of another module's class, even one in the same subpackage).
    A module may read privates of other instances of its own classes (``other._lines``)."""
    problems = []
    for path in sorted((root / "logbroker").rglob("*.py")):
        where = path.relative_to(root)
        tree = ast.parse(path.read_text(), str(path))
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                problems += [f"{where}:{node.lineno}: imports {alias.name} from {'.' * node.level}{node.module or ''}"
                             for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and node.attr.startswith("_")
                  and not node.attr.startswith("__") and node.attr not in own
                  and isinstance(node.value, ast.Name) and node.value.id not in ("self", "cls")):
                problems.append(f"{where}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return problems


def test_no_module_reaches_for_another_modules_private_names():
    assert private_uses(ROOT) == []


def test_a_private_import_and_a_private_attribute_of_another_module_are_named(tmp_path):
    root = _plant(tmp_path, {
        "clients/producer.py": "from ..storage.record import _KEEP, PendingRecord\n",
        "tools/publish.py": "def f(producer):\n    return producer._topic('t'), self._x\n",
        "storage/cleaner.py": "def f(log):\n    with log._locked():\n        log._unlink_segment(0)\n",
        "storage/log.py": ("class Log:\n    __slots__ = ('_lines',)\n    def __init__(self):\n        self._x = 1\n"
                           "    def _roll(self):\n        pass\n    def f(self, other):\n"
                           "        return other._lines, other._x, other._roll()\n"),
    })
    assert private_uses(root) == [
        "logbroker/clients/producer.py:1: imports _KEEP from ..storage.record",
        "logbroker/storage/cleaner.py:2: uses log._locked",
        "logbroker/storage/cleaner.py:3: uses log._unlink_segment",
        "logbroker/tools/publish.py:2: uses producer._topic",
    ]
