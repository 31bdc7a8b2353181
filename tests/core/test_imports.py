"""The consensus core runs on the standard library only and takes no hidden time or randomness.

`raftlab.core` must import nothing outside the standard library (pyproject: ``dependencies = []``),
and the consensus modules must not read the wall clock or the global random generator: time comes
from `tick` (or an injected clock) and randomness from the injected `random.Random`, which is what
makes runs reproducible. The one documented exception is `Replica.start`, Little Raft's real-time
loop, which falls back to `time.monotonic`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import raftlab.core

CORE = Path(raftlab.core.__file__).parent
SOURCES = sorted(CORE.glob("*.py"))
ROOT = CORE.parent.parent


def test_core_sources_found() -> None:
    names = {p.name for p in SOURCES}
    assert {"messages.py", "log.py", "storage.py", "interfaces.py", "replica.py"} <= names


def test_import_loads_only_the_standard_library() -> None:
    """`import raftlab.core` in a fresh interpreter adds only stdlib modules and raftlab's own."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import raftlab.core\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "raftlab.core" in loaded and "raftlab.core.replica" in loaded  # the import really happened here
    outside = [name for name in loaded
               if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "raftlab"]
    assert outside == []


def _calls_and_imports(tree: ast.AST) -> list[tuple[str, int]]:
    """Dotted names used in the module (``time.time``, ``random.uniform``) and imported names, by line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            found.append((f"{node.value.id}.{node.attr}", node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _start_lines() -> range:
    tree = ast.parse((CORE / "replica.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Replica":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "start":
                    assert item.end_lineno is not None
                    return range(item.lineno, item.end_lineno + 1)
    raise AssertionError("Replica.start not found")


def test_no_wall_clock_global_random_or_threads_in_core_text() -> None:
    for path in SOURCES:
        text = path.read_text()
        for word in ("time.time(", "random.random(", "random.uniform(", "threading"):
            assert word not in text, f"{path.name} contains {word!r}"


def test_no_global_random_functions_or_time_outside_start() -> None:
    """Only `random.Random` (an injectable generator) is used from `random`; `time` only inside
    `Replica.start`, and then only `time.monotonic`."""
    start = _start_lines()
    for path in SOURCES:
        text = path.read_text()
        for name, line in _calls_and_imports(ast.parse(text)):
            root, _, attr = name.partition(".")
            if root == "random" and attr:
                assert attr == "Random", f"{path.name}:{line} uses {name}"
            if root == "time" and attr:
                assert path.name == "replica.py" and line in start, f"{path.name}:{line} uses {name}"
                assert attr == "monotonic", f"{path.name}:{line} uses {name}"
            assert root not in ("threading", "_thread", "secrets"), f"{path.name}:{line} {name}"
        for lineno, source_line in enumerate(text.splitlines(), start=1):
            if "time.monotonic" in source_line:
                assert path.name == "replica.py" and lineno in start, f"{path.name}:{lineno}: time.monotonic"


def test_time_monotonic_is_used_in_start() -> None:
    """The documented exception exists where documented (so the check above is not vacuous)."""
    lines = (CORE / "replica.py").read_text().splitlines()
    start = _start_lines()
    assert any("time.monotonic" in lines[i - 1] for i in start)
