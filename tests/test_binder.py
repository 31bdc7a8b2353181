"""Binder: `binder/` alone builds an environment, the way repo2docker's pip path does, that runs 00_welcome."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "binder" / "requirements.txt"
WELCOME = "notebooks/00_welcome.ipynb"


def _requirement_lines() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def test_binder_requirements_are_pinned_and_install_this_repository():
    lines = _requirement_lines()
    local = [line for line in lines if line.startswith(".")]
    assert local == [".[jupyter]"], "the checkout itself is installed once, as a local path"
    pins = {}
    for line in lines:
        if line in local:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", line)
        assert match, f"not pinned with ==: {line!r}"
        pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    for name in ("jupyterlab", "ipywidgets", "matplotlib", "networkx", "ipykernel", "numpy"):
        assert name in pins, f"{name} is not pinned"
    assert pins["ipywidgets"].startswith("8."), "ipywidgets 8: no lab extension step"
    runtime = (ROOT / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.1[0-2]", runtime), runtime


def _clean_copy(dest: Path) -> None:
    """The files git would check out (tracked, plus new files not ignored): what repo2docker would see."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        names = [n for n in listed.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = []
    if not names:  # not a git checkout: everything but local state
        shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
            "raftlab-notebooks"))
        return
    for name in names:
        src, dst = ROOT / name, dest / name
        if not src.is_symlink() and not src.exists():
            continue  # deleted in the work tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def _isolated_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"} and not k.startswith("JUPYTER")}
    # Kernels and settings only from the new environment, not from this machine's user folders.
    env.update(JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_PLATFORM_DIRS="1", MPLBACKEND="Agg", PYTHONNOUSERSITE="1")
    return env


@pytest.mark.timeout(1500)
def test_binder_environment_built_from_binder_alone_executes_the_welcome_notebook(tmp_path):
    if not (ROOT / WELCOME).is_file():
        pytest.skip(f"{WELCOME} is not written yet")
    repo = tmp_path / "repo"
    _clean_copy(repo)
    assert (repo / WELCOME).is_file() and (repo / "binder" / "requirements.txt").is_file()
    env = _isolated_env(tmp_path / "home")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python, bindir = venv / "bin" / "python", venv / "bin"
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)

    started = time.monotonic()
    # repo2docker: `${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"`, run in
    # the repository's root. The cache is allowed here, to be fast; it changes no version.
    done = subprocess.run([str(bindir / "pip"), "install", "-q", "-r", "binder/requirements.txt"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    install_s = time.monotonic() - started

    # The environment is the pinned one, with raftlab installed from the copy (not from this checkout).
    probe = ("import json, raftlab, ipywidgets, jupyterlab, matplotlib, networkx; print(json.dumps({"
             "'raftlab': raftlab.__file__, 'ipywidgets': ipywidgets.__version__, "
             "'jupyterlab': jupyterlab.__version__, 'matplotlib': matplotlib.__version__, "
             "'networkx': networkx.__version__}))")
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["raftlab"]).resolve().is_relative_to(venv.resolve()), found["raftlab"]
    pins = dict(line.split("==") for line in _requirement_lines() if "==" in line)
    for name in ("ipywidgets", "jupyterlab", "matplotlib", "networkx"):
        assert found[name] == pins[name], (name, found[name], pins[name])

    # Execute 00_welcome top to bottom in that environment's own kernel.
    out = tmp_path / "executed"
    done = subprocess.run([str(bindir / "jupyter"), "nbconvert", "--to", "notebook", "--execute", WELCOME,
                           "--output-dir", str(out), "--ExecutePreprocessor.timeout=600",
                           "--ExecutePreprocessor.kernel_name=python3"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    executed = json.loads((out / "00_welcome.ipynb").read_text(encoding="utf-8"))
    code_cells = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code_cells, "00_welcome has no code to run"
    assert all(c.get("execution_count") for c in code_cells if c["source"]), "a code cell was not executed"
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    print(f"binder environment: pip install {install_s:.0f} s, total {time.monotonic() - started:.0f} s")
