"""The RaftLab widget app in a real browser: JupyterLab in a subprocess, driven by headless Chromium.

The test starts `jupyter lab` on a free local port with a random token and throw-away config, runtime,
data, settings and workspace directories; opens `raftlab_app.ipynb` (copied to a temporary root
directory) in Debian's Chromium through Playwright; runs all cells; presses Step a few times, then
Play and pause, and checks after each that the graph picture really changes; checks that the notebook
shows no error output; and saves screenshots under `build/screenshots/`.

It is skipped only when there is no `chromium` on PATH or Playwright is not importable. Every wait is
bounded, and the server (with its kernel) and the browser are always stopped, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(__file__).with_name("raftlab_app.ipynb")
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = shutil.which("chromium")

SERVER_START_TIMEOUT = 90.0  # seconds, per attempt; a cold start on a busy 2-core machine is slow
SERVER_START_ATTEMPTS = 3
UI_TIMEOUT_MS = 90_000  # JupyterLab loaded and the kernel idle
WIDGET_TIMEOUT_MS = 60_000  # the cell ran and the app rendered (imports matplotlib in the kernel)
UPDATE_TIMEOUT_MS = 30_000  # one picture update after a click

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` executable on PATH (apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="the `playwright` Python package is not importable"),
    pytest.mark.timeout(300),
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# JupyterLab's "would you like to receive news?" toast and update check, turned off as user settings.
NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}


# --------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_ready(url: str, token: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=3) as response:
            return response.status == 200 and "started" in json.loads(response.read().decode())
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server (it shuts its kernels down), then kill its process group if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    # The server runs in its own session (pgid == its pid): kill whatever is left of it, kernels included.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


class LabServer:
    def __init__(self, url: str, token: str, root: Path, log: Path) -> None:
        self.url, self.token, self.root, self.log = url, token, root, log


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)

    env = os.environ.copy()
    env.pop("JUPYTER_TOKEN", None)
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTER_DATA_DIR": "data",
        "IPYTHONDIR": "ipython",
        "JUPYTERLAB_SETTINGS_DIR": "lab-user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
    }
    for var, sub in dirs.items():
        (base / sub).mkdir()
        env[var] = str(base / sub)
    settings = base / "lab-user-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps(NOTIFICATION_SETTINGS))
    # The kernel imports this checkout's raftlab and starts from this interpreter's environment.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))

    token = secrets.token_hex(24)
    failures = []
    for attempt in range(1, SERVER_START_ATTEMPTS + 1):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = base / f"server-{attempt}.log"
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",  # ServerApp.token is deprecated
            f"--ServerApp.root_dir={root}",
            f"--LabApp.workspaces_dir={base / 'lab-workspaces'}",
            f"--LabApp.user_settings_dir={base / 'lab-user-settings'}",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",  # Notebook 7, on the same server
            "--LabApp.extension_manager=readonly",
            # A safety net should this process die without stopping the server: cull, then exit when idle.
            "--MappingKernelManager.cull_idle_timeout=900",
            "--ServerApp.shutdown_no_activity_timeout=1200",
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=root, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None and not _server_ready(url, token):
            time.sleep(0.25)
        if proc.poll() is None and _server_ready(url, token):
            break
        _stop(proc)
        failures.append(f"attempt {attempt} (port {port}, exit code {proc.returncode}):\n{_tail(log)}")
    else:
        pytest.fail("JupyterLab did not start:\n" + "\n\n".join(failures))

    try:
        # No news or update check pop-up (and no request to the internet for them).
        with urllib.request.urlopen(
            f"{url}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}", timeout=30
        ) as response:
            user = json.loads(response.read().decode())["settings"]  # the user settings written above
        assert {k: user.get(k) for k in NOTIFICATION_SETTINGS} == NOTIFICATION_SETTINGS, user
        yield LabServer(url, token, root, log)
    finally:
        _stop(proc)


# -------------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


# The notebook panel's kernel is connected and idle (JupyterLab exposes itself as window.jupyterapp).
KERNEL_IDLE_JS = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell && app.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return !!(panel && panel.context && panel.context.isReady && kernel && kernel.status === 'idle'
        && kernel.connectionStatus === 'connected');
}"""

# A fingerprint of an <img>'s pixels: its size and an FNV-1a hash of its RGBA data.
PIXELS_JS = """(img) => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 0x811c9dc5;
    for (let i = 0; i < data.length; i++) { h = Math.imul(h ^ data[i], 16777619); }
    return canvas.width + 'x' + canvas.height + ':' + (h >>> 0).toString(16);
}"""

# The <img> has a new src (other than `old`) and has finished loading it.
IMAGE_UPDATED_JS = """([img, old]) => !!img.src && img.src !== old && img.complete && img.naturalWidth > 0"""

IMAGES_LOADED_JS = """(imgs) => imgs.length > 0
    && imgs.every((img) => !!img.src && img.complete && img.naturalWidth > 0)"""

ERROR_OUTPUT = (
    '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"], '
    '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'
)


def _pixels(image) -> str:
    return image.evaluate(PIXELS_JS)


def _src(image) -> str:
    return image.evaluate("(img) => img.src")


def _settle(page, images) -> None:
    """Wait for the kernel to finish the current request and every picture to be loaded."""
    page.wait_for_function(KERNEL_IDLE_JS, timeout=UPDATE_TIMEOUT_MS, polling=100)
    page.wait_for_function(IMAGES_LOADED_JS, arg=images.element_handles(), timeout=UPDATE_TIMEOUT_MS)


def _wait_for_update(page, image, old_src: str) -> str:
    """Wait until `image` shows a new picture (a new blob/data URL, loaded); return its src."""
    page.wait_for_function(
        IMAGE_UPDATED_JS, arg=[image.element_handle(), old_src], timeout=UPDATE_TIMEOUT_MS, polling=50
    )
    return _src(image)


def _wait_until_still(page, image, quiet_s: float = 2.0) -> str:
    """Wait until `image` has not changed for `quiet_s` seconds (bounded); return its src."""
    deadline = time.monotonic() + UPDATE_TIMEOUT_MS / 1000
    src, since = _src(image), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the picture kept changing after pause"
        page.wait_for_timeout(100)
        now = _src(image)
        if now != src:
            src, since = now, time.monotonic()
    return src


def _wait_for_app(page, step) -> None:
    """Wait until the Step button shows, failing at once if the cell shows an error instead."""
    deadline = time.monotonic() + WIDGET_TIMEOUT_MS / 1000
    while not step.is_visible():
        _no_errors_in_notebook(page)
        assert time.monotonic() < deadline, f"the app did not render within {WIDGET_TIMEOUT_MS / 1000:.0f} s"
        page.wait_for_timeout(250)


def _no_errors_in_notebook(page) -> None:
    """No stderr or traceback output in the notebook, and the app's own error area is hidden."""
    errors = page.locator(ERROR_OUTPUT)
    assert errors.count() == 0, "error output in the notebook:\n" + "\n---\n".join(errors.all_inner_texts())
    # RaftLab shows an exception raised by a control in a box with a "Dismiss" button, hidden otherwise.
    dismiss = page.locator(".jp-OutputArea-output button.jupyter-button").filter(has_text=re.compile(r"^\W*Dismiss"))
    for i in range(dismiss.count()):
        box = dismiss.nth(i).locator("xpath=..")
        assert not box.is_visible(), "the app shows an error:\n" + box.inner_text()


def test_raftlab_app_renders_and_updates_in_jupyterlab(lab_server: LabServer, browser) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "failure.png").unlink(missing_ok=True)  # from an earlier failed run
    # Tall enough for the whole app (controls, graph, logs, timeline, narration, tabs) in one screenshot.
    context = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = context.new_page()
    page.set_default_timeout(WIDGET_TIMEOUT_MS)
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.monotonic() - clock, 2)
        clock = time.monotonic()

    try:
        page.goto(
            f"{lab_server.url}/lab/tree/{NOTEBOOK.name}?token={lab_server.token}&reset",
            wait_until="domcontentloaded",
            timeout=UI_TIMEOUT_MS,
        )
        page.wait_for_function(KERNEL_IDLE_JS, timeout=UI_TIMEOUT_MS, polling=250)
        lap("JupyterLab loaded, kernel idle")
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # more room for the app
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

        output = page.locator(".jp-CodeCell .jp-OutputArea-output").filter(has=page.locator(".widget-image")).first
        step = output.locator("button.jupyter-button").filter(has_text=re.compile(r"^\W*Step\W*$")).first
        _wait_for_app(page, step)
        images = output.locator("img.widget-image")
        _settle(page, images)
        assert images.count() >= 3, "expected the graph, logs and timeline pictures"
        graph = images.first  # the app's first picture is the cluster graph
        _no_errors_in_notebook(page)
        lap("cells run, app rendered")

        src, pixels = _src(graph), _pixels(graph)
        for i in range(1, 5):
            step.click()
            src = _wait_for_update(page, graph, src)
            _settle(page, images)
            previous, pixels = pixels, _pixels(graph)
            assert pixels != previous, f"Step {i} did not change the graph picture"
        _no_errors_in_notebook(page)
        output.screenshot(path=str(SCREENSHOTS / "raftlab_app.png"))
        lap("4 Steps")

        # ipywidgets 8's Play: a play/pause toggle button (its icon says which), then stop and repeat.
        play_pause = output.locator(".widget-play button").first
        before_play = pixels
        play_pause.click()
        play_pause.locator(".fa-pause").wait_for(state="visible", timeout=UPDATE_TIMEOUT_MS)
        for _ in range(3):  # Play keeps updating the picture on its own
            src = _wait_for_update(page, graph, src)
        play_pause.click()
        play_pause.locator(".fa-play").wait_for(state="visible", timeout=UPDATE_TIMEOUT_MS)
        _wait_until_still(page, graph)  # paused: the updates already sent land, then no more
        _settle(page, images)
        assert _pixels(graph) != before_play, "Play did not change the graph picture"
        _no_errors_in_notebook(page)
        output.screenshot(path=str(SCREENSHOTS / "raftlab_app_play.png"))
        page.screenshot(path=str(SCREENSHOTS / "jupyterlab_page.png"))
        lap("Play, pause, settle")
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(SCREENSHOTS / "failure.png"))
        print("server log:\n" + _tail(lab_server.log, 80))
        raise
    finally:
        print(f"timings (s): {timings}")
        print("browser console errors:\n" + ("\n".join(console_errors) or "<none>"))
        context.close()


# ------------------------------------------------------------------ direct manipulation, sharing, branches


def _open_app(browser, url: str, *, run_all: bool = True):
    """A new page on `url` (a notebook, or Voilà's app), the app rendered: (context, page, output, step, images)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = context.new_page()
    page.set_default_timeout(WIDGET_TIMEOUT_MS)
    page.goto(url, wait_until="domcontentloaded", timeout=UI_TIMEOUT_MS)
    if run_all:
        page.wait_for_function(KERNEL_IDLE_JS, timeout=UI_TIMEOUT_MS, polling=250)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    output = page.locator(".jp-OutputArea-output, .widget-vbox").filter(has=page.locator(".widget-image")).first
    step = output.locator("button.jupyter-button").filter(has_text=re.compile(r"^\W*Step\W*$")).first
    _wait_for_app(page, step)
    images = output.locator("img.widget-image")
    page.wait_for_function(IMAGES_LOADED_JS, arg=images.element_handles(), timeout=UPDATE_TIMEOUT_MS)
    return context, page, output, step, images


def _status_step(output) -> int:
    """The step the app's status line shows ("step K of N")."""
    text = output.locator(".widget-html").filter(has_text=re.compile(r"step \d+ of \d+")).first.inner_text()
    return int(re.search(r"step (\d+) of", text).group(1))


def _status_end(output) -> int:
    """The furthest step of the branch shown, as the status line gives it ("step K of N")."""
    text = output.locator(".widget-html").filter(has_text=re.compile(r"step \d+ of \d+")).first.inner_text()
    return int(re.search(r"step \d+ of (\d+)", text).group(1))


def _slider_max(output, label: str) -> int:
    """The maximum of the app's slider labelled `label` (its ARIA value)."""
    handle = output.locator(".widget-slider").filter(has=output.page.locator(f"label:text-is('{label}')")).locator(
        "[aria-valuemax]").first
    return int(float(handle.get_attribute("aria-valuemax")))


def _wait_for_end(page, output, want: int) -> None:
    deadline = time.monotonic() + UPDATE_TIMEOUT_MS / 1000
    while _status_end(output) != want:
        assert time.monotonic() < deadline, f"the status shows the end {_status_end(output)}, not {want}"
        page.wait_for_timeout(100)


def _wait_for_status(page, output, want: int) -> None:
    deadline = time.monotonic() + UPDATE_TIMEOUT_MS / 1000
    while _status_step(output) != want:
        assert time.monotonic() < deadline, f"the status shows step {_status_step(output)}, not {want}"
        page.wait_for_timeout(100)


def _button(output, label: str):
    return output.locator("button.jupyter-button").filter(has_text=re.compile(rf"^\W*{re.escape(label)}\W*$")).first


def _dropdown(output, label: str):
    return output.locator(".widget-dropdown").filter(has=output.page.locator(f"label:text-is('{label}')")).locator(
        "select").first


def _selected_text(select) -> str:
    return select.evaluate("(s) => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].text.replace(/\\s/g, ' ')")


def test_click_a_node_press_keys_share_and_restore_and_switch_branch(lab_server: LabServer, browser) -> None:
    context, page, output, step, images = _open_app(
        browser, f"{lab_server.url}/lab/tree/{NOTEBOOK.name}?token={lab_server.token}&reset")
    try:
        graph = images.first
        # Click node 3 in the graph: the node picker and the inspector follow.
        printed = page.locator(".jp-OutputArea-output").filter(has_text="NODE3=").first
        printed.wait_for(timeout=WIDGET_TIMEOUT_MS)
        x, y = json.loads(printed.inner_text().split("NODE3=")[1].strip())
        box = graph.bounding_box()
        graph.click(position={"x": x * box["width"], "y": y * box["height"]})
        node = _dropdown(output, "node")
        page.wait_for_function("(s) => s.options[s.selectedIndex].text.replace(/\\s/g, ' ') === 'node 3'",
                               arg=node.element_handle(),
                               timeout=UPDATE_TIMEOUT_MS)
        output.screenshot(path=str(SCREENSHOTS / "click_node.png"))

        # Keys, with the mouse over the pictures: S steps, K crashes the selected node.
        before = _status_step(output)
        graph.hover()
        page.keyboard.press("s")
        _wait_for_status(page, output, before + 1)
        page.keyboard.press("s")
        _wait_for_status(page, output, before + 2)
        output.screenshot(path=str(SCREENSHOTS / "key_press.png"))

        # Share the run, step on, then open the shared text: back at the step it was shared at.
        output.locator(".lm-TabBar-tab, .p-TabBar-tab").filter(has_text="Set-up").first.click()
        _button(output, "Share run").click()
        text_area = output.locator("textarea").first
        page.wait_for_function("(t) => t.value.startsWith('raftlab-run/2:')", arg=text_area.element_handle(),
                               timeout=UPDATE_TIMEOUT_MS)
        shared, shared_at = text_area.input_value(), _status_step(output)
        for i in range(1, 4):
            step.click()
            _wait_for_status(page, output, shared_at + i)
        text_area.fill("")
        text_area.fill(shared)  # pasted back, as a classmate would
        _button(output, "Open shared run").click()
        _wait_for_status(page, output, shared_at)
        output.get_by_text("exactly as shared").first.wait_for(timeout=UPDATE_TIMEOUT_MS)
        output.screenshot(path=str(SCREENSHOTS / "share_restore.png"))

        # The shared run's future: step back twice, crash node 3 (K): a new branch; switch back to the first.
        for _ in range(2):
            step.click()
        _wait_for_status(page, output, shared_at + 2)
        for _ in range(2):
            _button(output, "Step back").click()
            page.wait_for_function(KERNEL_IDLE_JS, timeout=UPDATE_TIMEOUT_MS, polling=100)
        _wait_for_status(page, output, shared_at)
        graph.hover()
        page.keyboard.press("k")
        branch = _dropdown(output, "branch")
        page.wait_for_function("(s) => s.options.length === 2", arg=branch.element_handle(),
                               timeout=UPDATE_TIMEOUT_MS)
        assert _selected_text(branch).startswith("branch 1: crash(3)")
        _wait_for_end(page, output, shared_at)  # the new branch ends where it forked, so far
        branch.select_option(index=0)
        output.get_by_text("where it parts from the branch shown before").first.wait_for(timeout=UPDATE_TIMEOUT_MS)
        assert _selected_text(branch).startswith("branch 0")
        _wait_for_end(page, output, shared_at + 2)  # the old future, kept: the status and the slider follow it
        assert _slider_max(output, "step") == shared_at + 2
        _no_errors_in_notebook(page)
        output.screenshot(path=str(SCREENSHOTS / "branch_switch.png"))
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(SCREENSHOTS / "failure_manipulation.png"))
        print("server log:\n" + _tail(lab_server.log, 80))
        raise
    finally:
        context.close()


def test_the_app_in_notebook_7(lab_server: LabServer, browser) -> None:
    context, page, _output, step, images = _open_app(
        browser, f"{lab_server.url}/notebooks/{NOTEBOOK.name}?token={lab_server.token}")
    try:
        graph = images.first
        src = _src(graph)
        step.click()
        _wait_for_update(page, graph, src)
        _no_errors_in_notebook(page)
        page.screenshot(path=str(SCREENSHOTS / "notebook7.png"))
    finally:
        context.close()


def test_raftlab_app_serves_the_app_alone_through_voila(tmp_path: Path, browser) -> None:
    port = _free_port()
    log = tmp_path / "voila.log"
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
        (tmp_path / var).mkdir()
        env[var] = str(tmp_path / var)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "raftlab.cli", "app", "--port", str(port), "--no-browser",
                                 "--seed", "3"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3):
                    break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, "raftlab app stopped:\n" + _tail(log)
        context, page, output, step, images = _open_app(browser, f"http://127.0.0.1:{port}/", run_all=False)
        try:
            assert page.locator(".jp-InputArea, .jp-CodeMirrorEditor, .cm-editor").count() == 0, "code is shown"
            graph = images.first
            src = _src(graph)
            before = _status_step(output)
            step.click()
            _wait_for_update(page, graph, src)
            _wait_for_status(page, output, before + 1)
            assert "seed 3" in output.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "voila_app.png"))
        finally:
            context.close()
    except BaseException:
        print("voila log:\n" + _tail(log, 80))
        raise
    finally:
        _stop(proc)
