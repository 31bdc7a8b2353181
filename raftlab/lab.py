"""`raftlab lab`: JupyterLab on the course notebooks, in a working folder of the student's own; and
`raftlab app`: the RaftLab app alone, served by Voilà (no code cells, no notebook).

The notebooks have one source, the repository's `notebooks/` folder. `raftlab/notebooks` is a symbolic
link to it, so package data (`notebooks/*.ipynb` in pyproject.toml) puts real copies in a wheel, and an
editable install or a checkout reads the folder itself. `raftlab lab` copies the notebooks that are
missing to a working folder (never one that is there: a student's edits are kept) and starts JupyterLab
there, with its news pop-up and update check off for the session (`QUIET_SETTINGS`).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_DIR = "raftlab-notebooks"
FIRST_NOTEBOOK = "00_welcome.ipynb"


def notebook_source() -> Path:
    """The folder the notebooks come from: the checkout's `notebooks/`, else the installed package's."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "notebooks"
    if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return package / "notebooks"


def copy_missing(source: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Copy each `*.ipynb` of `source` to `dest` unless `dest` has it already; returns (copied, kept).

    A file already in `dest`, edited or not, is never written to.
    """
    dest.mkdir(parents=True, exist_ok=True)
    return copy_missing_files(sorted(source.glob("*.ipynb")), dest)


NBGRADER_CONFIG = """\
# nbgrader's configuration for the raftlab assignments (written by `raftlab assignments`).
c = get_config()
c.CourseDirectory.course_id = "raft"
# A graded cell of raftlab ends within its own budget (25 s, naming the rules it could not check),
# before nbgrader's cell timeout, which this leaves room for on a slow machine:
c.Execute.timeout = 120
"""


def write_course(dest: str | Path) -> list[Path]:
    """Write an nbgrader course to `dest`: ``nbgrader_config.py`` (unless there is one) and each assignment
    notebook as ``source/<assignment>/<notebook>.ipynb`` (``part_a`` ... ``part_d``; an existing notebook is
    never overwritten). Returns the files written. Then, in `dest`: ``nbgrader generate_assignment part_a``."""
    dest = Path(dest)
    written: list[Path] = []
    source = notebook_source() / "assignments"
    notebooks = sorted(source.glob("part_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no assignment notebooks in {source}")
    dest.mkdir(parents=True, exist_ok=True)
    config = dest / "nbgrader_config.py"
    if not config.exists():
        config.write_text(NBGRADER_CONFIG, encoding="utf-8")
        written.append(config)
    for notebook in notebooks:
        folder = dest / "source" / notebook.stem[:6]  # part_a_election.ipynb -> source/part_a/
        folder.mkdir(parents=True, exist_ok=True)
        copied, _ = copy_missing_files([notebook], folder)
        written.extend(folder / name for name in copied)
    return written


def copy_missing_files(files: list[Path], dest: Path) -> tuple[list[str], list[str]]:
    """`copy_missing` for a list of files."""
    copied, kept = [], []
    for path in files:
        target = dest / path.name
        try:
            with path.open("rb") as src, target.open("xb") as out:  # "x": fail rather than overwrite
                shutil.copyfileobj(src, out)
        except FileExistsError:
            kept.append(path.name)
            continue
        copied.append(path.name)
    return copied, kept


def jupyter_command(dest: Path, port: int | None, no_browser: bool, extra: list[str]) -> list[str]:
    """The `jupyter lab` command line serving `dest`."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={dest}"]
    if (dest / FIRST_NOTEBOOK).is_file():
        command.append(f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}")
    if port is not None:
        command.append(f"--port={port}")
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root otherwise (containers, CI machines)
    return command + extra


QUIET_SETTINGS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
"""Defaults `raftlab lab` gives JupyterLab for its session: no "would you like to get news?" pop-up over
the app, and no update check (a student's own choice in JupyterLab's settings still wins)."""


def session_env(folder: Path) -> dict[str, str]:
    """The environment of `raftlab lab`'s JupyterLab: ours, with `folder` (written here) first on the
    Jupyter config path, holding `QUIET_SETTINGS` as default setting overrides for this session only."""
    labconfig = folder / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "default_setting_overrides.json").write_text(json.dumps(QUIET_SETTINGS), encoding="utf-8")
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (str(folder), env.get("JUPYTER_CONFIG_PATH")) if p)
    return env


def run_lab(dest: str | Path, port: int | None = None, no_browser: bool = False, extra: list[str] | None = None) -> int:
    """Copy the missing notebooks to `dest`, then run JupyterLab there until it stops; returns its status."""
    extra = list(extra or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        importlib.import_module("jupyterlab")  # only whether it imports (it ships no types for mypy to read)
    except ImportError:
        print("raftlab lab needs JupyterLab: pip install 'raftlab[jupyter]'", file=sys.stderr)
        return 1
    source = notebook_source()
    if not any(source.glob("*.ipynb")):
        print(f"no notebooks found in {source}", file=sys.stderr)
        return 1
    dest = Path(dest).expanduser().resolve()
    copied, kept = copy_missing(source, dest)
    print(f"notebooks: {dest}")
    print(f"  copied {len(copied)} from {source}" + (f": {', '.join(copied)}" if copied else ""))
    if kept:
        print(f"  kept {len(kept)} already there (never overwritten; delete one to get it back fresh)")
    url = f"http://localhost:{port or 8888}/lab"
    print(f"JupyterLab: {url} (its full address, with the token, is printed below; Ctrl-C stops it)",
          flush=True)
    session = Path(tempfile.mkdtemp(prefix="raftlab-lab-"))
    process = subprocess.Popen(jupyter_command(dest, port, no_browser, extra), cwd=dest, env=session_env(session))

    def stop(signum: int, frame: object) -> None:
        process.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue  # Ctrl-C reaches JupyterLab too, which asks to confirm; wait for it to stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(session, ignore_errors=True)


def app_notebook(nodes: int, seed: int) -> dict:
    """The one-cell notebook `raftlab app` serves: a RaftLab of `nodes` nodes and `seed` (as nbformat v4 JSON)."""
    source = f"from raftlab.widgets import RaftLab\n\nRaftLab(n={int(nodes)}, seed={int(seed)})"
    return {"cells": [{"cell_type": "code", "execution_count": None, "id": "raftlab-app", "metadata": {},
                       "outputs": [], "source": source}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def voila_command(notebook: Path, port: int | None, no_browser: bool, extra: list[str]) -> list[str]:
    """The `voila` command line serving `notebook` alone, its code hidden, on 127.0.0.1."""
    command = [sys.executable, "-m", "voila", str(notebook), "--Voila.ip=127.0.0.1", "--strip_sources=True",
               "--show_tracebacks=True"]
    if port is not None:
        command.append(f"--port={port}")
    if no_browser:
        command.append("--no-browser")
    return command + extra


def run_app(nodes: int = 5, seed: int = 1, port: int | None = None, no_browser: bool = False,
            extra: list[str] | None = None) -> int:
    """Serve the RaftLab app alone through Voilà until it stops; returns its status."""
    extra = list(extra or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        importlib.import_module("voila")
        importlib.import_module("ipyevents")
    except ImportError:
        print("raftlab app needs Voilà and ipyevents: pip install 'raftlab[jupyter]'", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="raftlab-app-"))
    notebook = folder / "RaftLab.ipynb"
    notebook.write_text(json.dumps(app_notebook(nodes, seed)), encoding="utf-8")
    print(f"RaftLab app ({nodes} nodes, seed {seed}): http://127.0.0.1:{port or 8866}/ (Ctrl-C stops it)", flush=True)
    process = subprocess.Popen(voila_command(notebook, port, no_browser, extra), cwd=folder)

    def stop(signum: int, frame: object) -> None:
        process.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                process.terminate()
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(folder, ignore_errors=True)
