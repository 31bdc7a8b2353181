"""`raftlab lab`: the notebooks are copied without overwriting edits, and JupyterLab serves them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from raftlab.lab import copy_missing, jupyter_command, notebook_source

ROOT = Path(__file__).resolve().parent.parent


def _notebook(text: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": text}], "metadata": {},
                       "nbformat": 4, "nbformat_minor": 5})


def test_copy_missing_copies_new_notebooks_and_never_overwrites_edits(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "work"
    source.mkdir()
    (source / "00_welcome.ipynb").write_text(_notebook("welcome"), encoding="utf-8")
    (source / "01_leader_election.ipynb").write_text(_notebook("election"), encoding="utf-8")
    (source / "notes.txt").write_text("not a notebook", encoding="utf-8")

    copied, kept = copy_missing(source, dest)
    assert (copied, kept) == (["00_welcome.ipynb", "01_leader_election.ipynb"], [])
    assert (dest / "00_welcome.ipynb").read_text(encoding="utf-8") == _notebook("welcome")
    assert not (dest / "notes.txt").exists()

    # The student edits one notebook and deletes the other; a new version of the course arrives.
    (dest / "00_welcome.ipynb").write_text(_notebook("my answers"), encoding="utf-8")
    (dest / "01_leader_election.ipynb").unlink()
    (source / "00_welcome.ipynb").write_text(_notebook("welcome, revised"), encoding="utf-8")
    (source / "02_log_replication.ipynb").write_text(_notebook("replication"), encoding="utf-8")

    copied, kept = copy_missing(source, dest)
    assert copied == ["01_leader_election.ipynb", "02_log_replication.ipynb"]
    assert kept == ["00_welcome.ipynb"]
    assert (dest / "00_welcome.ipynb").read_text(encoding="utf-8") == _notebook("my answers")
    assert (dest / "01_leader_election.ipynb").read_text(encoding="utf-8") == _notebook("election")


def test_notebooks_come_from_the_repository_folder_in_a_checkout_and_ship_as_package_data():
    assert notebook_source() == ROOT / "notebooks"
    link = ROOT / "raftlab" / "notebooks"
    assert link.is_symlink() and link.resolve() == (ROOT / "notebooks").resolve(), "one source of notebooks"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^raftlab = \[.*"notebooks/\*\.ipynb".*\]$', pyproject, re.MULTILINE)


def test_jupyter_command_passes_options_through(tmp_path):
    (tmp_path / "00_welcome.ipynb").write_text(_notebook("hi"), encoding="utf-8")
    command = jupyter_command(tmp_path, 9123, True, ["--ServerApp.token=abc"])
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command
    assert "--port=9123" in command and "--no-browser" in command
    assert command[-1] == "--ServerApp.token=abc"
    assert "--LabApp.default_url=/lab/tree/00_welcome.ipynb" in command
    assert "--no-browser" not in jupyter_command(tmp_path, None, False, [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict | list:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode())


def start_lab(command: list[str], workdir: Path, port: int, token: str, deadline_s: float = 90.0):
    """Run `command` (a `raftlab lab ...`), wait until JupyterLab answers on /api/status; returns the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(JUPYTER_RUNTIME_DIR=str(workdir / ".runtime"), JUPYTER_CONFIG_DIR=str(workdir / ".config"),
               JUPYTER_DATA_DIR=str(workdir / ".data"), JUPYTER_PLATFORM_DIRS="1")
    log = open(workdir / "lab.log", "w+", encoding="utf-8")  # noqa: SIM115 (closed by stop_lab)
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            _get(f"http://127.0.0.1:{port}/api/status?token={token}")
            return process
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.5)
    stop_lab(process)
    log.seek(0)
    raise AssertionError(f"JupyterLab did not answer on port {port}:\n{log.read()[-4000:]}")


def stop_lab(process: subprocess.Popen) -> str:
    """Stop `raftlab lab` by its pid (it stops JupyterLab); returns what it printed."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    text = log.read()
    log.close()
    return text


@pytest.mark.timeout(180)
def test_raftlab_lab_starts_jupyterlab_serving_the_notebooks(tmp_path):
    pytest.importorskip("jupyterlab", reason="needs the jupyter extra")
    source = notebook_source()
    expected = sorted(p.name for p in source.glob("*.ipynb"))
    if not expected:
        pytest.skip(f"no notebooks in {source} yet")
    work = tmp_path / "course"
    work.mkdir()
    edited = work / expected[0]
    edited.write_text(_notebook("a student's edit"), encoding="utf-8")
    port, token = _free_port(), "raftlab-test-token"
    command = [sys.executable, "-m", "raftlab.cli", "lab", "--no-browser", "--port", str(port), "--dir", str(work),
               "--", f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1"]
    process = start_lab(command, tmp_path, port, token)
    try:
        contents = _get(f"http://127.0.0.1:{port}/api/contents?token={token}")
        served = sorted(item["name"] for item in contents["content"] if item["type"] == "notebook")
        assert served == expected
        notebook = _get(f"http://127.0.0.1:{port}/api/contents/{expected[0]}?token={token}")
        assert notebook["content"]["cells"][0]["source"] == "a student's edit"  # not overwritten
        with pytest.raises(urllib.error.HTTPError):  # the token passed through is required
            _get(f"http://127.0.0.1:{port}/api/contents?token=wrong")
        # no news pop-up over the app, no update check: the session's defaults (JupyterLab's own: ask, check)
        notification = _get(f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification"
                            f"?token={token}")
        assert isinstance(notification, dict), notification
        defaults = notification["schema"]["properties"]  # (the browser merges these with the user's own)
        assert defaults["fetchNews"]["default"] == "false" and defaults["checkForUpdates"]["default"] is False
        assert notification["settings"] == {}  # nothing written to the student's own settings
    finally:
        output = stop_lab(process)
    assert process.returncode is not None
    assert f"notebooks: {work}" in output
    assert f"http://localhost:{port}/lab" in output
    assert "kept 1 already there" in output
