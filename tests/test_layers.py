"""The layers point one way: core ← machines, sim, check ← viz ← widgets; net and grading on core and sim;
storage (sqlite3) on the core.

Read from the sources (every import statement, at any depth, lazy ones included), so a violation fails
here whatever the import order at run time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import raftlab

PACKAGE = Path(raftlab.__file__).parent

# What each part of raftlab may import of raftlab (besides itself). The top-level modules are parts too.
ALLOWED: dict[str, set[str]] = {
    "core": set(),  # consensus, sans-I/O: nothing else of raftlab
    "check": set(),  # reads histories only
    "machines": {"core"},
    "threads": {"core"},
    "storage": {"core"},  # durable storage: the core's Storage interface on sqlite3 (I/O, so not in the core)
    "sim": {"core", "machines", "check"},
    "net": {"core", "machines", "check", "storage"},  # beside sim, on the core
    "viz": {"core", "machines", "sim"},
    "widgets": {"core", "machines", "sim", "check", "viz"},
    "grading": {"core", "machines", "sim", "check", "mc"},
    "mc": {"core", "machines", "sim", "check"},
    "demo": {"core", "threads"},
    "lab": set(),
    "__init__": {"core"},
    "cli": {"core", "machines", "sim", "check", "net", "grading", "mc", "demo", "lab", "viz"},
}
# Third-party packages by part: the core and the checker use the standard library only; only the
# renderers and the app draw, and only the app uses widgets.
THIRD_PARTY: dict[str, set[str]] = {
    "viz": {"matplotlib", "networkx", "numpy", "IPython"},
    "widgets": {"ipywidgets", "matplotlib", "IPython", "ipyevents"},
    "net": {"uvloop", "cryptography"},  # cryptography: writing certificates only (raftlab cluster init)
    "grading": {"nbformat", "cloudpickle"},  # cloudpickle: a notebook's class sent to a spawned worker
    "lab": {"jupyterlab", "notebook"},
    "cli": {"tqdm", "distributed"},  # distributed: --scheduler only (raftlab[dask])
    "mc": {"tqdm"},  # the live progress bar, imported only when asked for
}


def _imports(path: Path, source: str) -> list[tuple[str, int]]:
    """Every module that `source` (the text of the module at `path`) imports, as an absolute dotted
    name, with its line."""
    rel = path.relative_to(PACKAGE.parent)
    package = list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # each name, as it may be a module (from .. import sim)
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_is_known() -> None:
    assert {_part(p) for p in SOURCES} <= set(ALLOWED), "a new part of raftlab needs its place in ALLOWED"
    assert len(SOURCES) > 30


def _wrong_imports(path: Path, source: str) -> list[str]:
    part = _part(path)
    wrong = []
    for module, line in _imports(path, source):
        names = module.split(".")
        if names[0] == "raftlab":
            target = names[1] if len(names) > 1 else "__init__"
            if target != part and target not in ALLOWED[part]:
                wrong.append(f"line {line}: {part} imports raftlab.{target}")
        elif names[0] not in {*sys.stdlib_module_names, "__future__", *THIRD_PARTY.get(part, set())}:
            wrong.append(f"line {line}: {part} imports the third-party package {names[0]}")
    return wrong


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    wrong = _wrong_imports(path, path.read_text(encoding="utf-8"))
    assert not wrong, f"{path.relative_to(PACKAGE)}: " + "; ".join(wrong)


def test_the_check_finds_wrong_imports_lazy_or_relative() -> None:
    # The test above can fail: the simulator importing the app inside a function, the core importing
    # the simulator by a relative import, the checker importing numpy.
    sim = PACKAGE / "sim" / "probe.py"
    assert _wrong_imports(sim, "def f():\n    from ..widgets import RaftLab\n") == [
        "line 2: sim imports raftlab.widgets"]
    assert _wrong_imports(PACKAGE / "core" / "probe.py", "from ..sim import Simulation\n") == [
        "line 1: core imports raftlab.sim"]
    assert _wrong_imports(PACKAGE / "check" / "probe.py", "import numpy\nimport json\n") == [
        "line 1: check imports the third-party package numpy"]
    assert _wrong_imports(PACKAGE / "viz" / "probe.py", "from raftlab import sim\nfrom .. import widgets\n") == [
        "line 2: viz imports raftlab.widgets"]


def test_the_package_ships_its_type_marker() -> None:
    # "Typing :: Typed" is true: py.typed is in the package and in its package data (mypy runs in CI).
    assert (PACKAGE / "py.typed").is_file()
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"Typing :: Typed"' in pyproject and '"py.typed"' in pyproject
