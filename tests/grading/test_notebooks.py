"""The assignment notebooks: the instructor versions pass under nbval; the student versions generated
by nbgrader run, and their graded cells score 0 cleanly, saying that the code is missing (nothing else fails)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = ROOT / "notebooks" / "assignments"
NOTEBOOKS = sorted(ASSIGNMENTS.glob("part_*.ipynb"))
BIN = Path(sys.executable).parent

nbformat = pytest.importorskip("nbformat")


def test_there_is_one_notebook_per_part_with_nbgrader_cells() -> None:
    assert [p.stem[:6] for p in NOTEBOOKS] == ["part_a", "part_b", "part_c", "part_d"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
        assert any(m.get("solution") for m in meta)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert len(graded) == 2 and all(c.metadata["nbgrader"]["points"] > 0 for c in graded)
        text = "\n".join(c.source for c in nb.cells)
        assert "### BEGIN SOLUTION" in text and "### BEGIN HIDDEN TESTS" in text
        assert all(c.metadata["nbgrader"]["locked"] for c in graded)


def test_the_notebooks_are_up_to_date_with_the_reference(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", ASSIGNMENTS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    for part, name in module.NAMES.items():
        fresh = module.notebook(part)
        stored = nbformat.read(ASSIGNMENTS / f"{name}.ipynb", as_version=4)
        assert [c.source for c in fresh.cells] == [c.source for c in stored.cells], f"rerun {module.__file__}"


def test_instructor_notebooks_pass_under_nbval() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                             *map(str, NOTEBOOKS)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"{5 * len(NOTEBOOKS)} passed" in result.stdout  # the five code cells of each notebook ran


@pytest.mark.skipif(shutil.which("nbgrader", path=str(BIN)) is None, reason="nbgrader is not installed")
def test_student_versions_generated_by_nbgrader_score_0_cleanly(tmp_path: Path) -> None:
    from nbclient import NotebookClient

    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "raft"\n')
    for path in NOTEBOOKS:
        (tmp_path / "source" / path.stem).mkdir(parents=True)
        shutil.copy(path, tmp_path / "source" / path.stem / path.name)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader runs alembic
    for path in NOTEBOOKS:
        result = subprocess.run([str(BIN / "nbgrader"), "generate_assignment", path.stem, "--force"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        released = tmp_path / "release" / path.stem / path.name
        nb = nbformat.read(released, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text and "hidden" not in text
        assert "raise NotImplementedError()" in text
        NotebookClient(nb, timeout=600, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if cell.metadata.get("nbgrader", {}).get("grade"):  # 0 points (nbgrader's partial credit), and why
                assert not errors, (path.name, cell.source, errors)
                results = [o for o in cell.outputs if o.output_type == "execute_result"]
                assert [r.data["text/plain"] for r in results] == ["0"], (path.name, cell.source, cell.outputs)
                printed = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
                assert "not implemented: " in printed and "is not written yet" in printed, printed[:2000]
                assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
            else:
                assert not errors, (path.name, cell.source, errors)
