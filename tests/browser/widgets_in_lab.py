"""Each notebook that builds a widget, run in a real JupyterLab in headless Chromium: every slider redraws its figure.

nbval cannot see widgets (their output is ignored and committed notebooks carry no widget state), so this test
drives the browser a reader uses. Run it with ``make test-browser``; ``.ci/run`` runs it after ``make test``.
The file name does not start with ``test_`` so that plain ``pytest`` (and ``make test``) leave it out; naming the
file on the command line collects it.

What it does, per notebook: open it in JupyterLab (served from a temporary copy of ``notebooks/``, so autosave
never touches the checkout), run all cells, wait until every code cell has run and the kernel is idle, then for
every slider: move it to the other end of its range and wait for the figure in the same widget to change. It
fails on any uncaught page error, any error output or traceback in a cell, a notebook whose widgets show no
slider, and a slider whose figure does not change. A screenshot of each notebook's widgets is saved under a
temporary folder, printed at the end.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Python's ``playwright`` (from requirements.txt);
``playwright install`` is never run: it would download a browser.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements.txt: run make venv")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDGET_CALL = re.compile(r"\bwidgets\.\w+\(")
RUN_TIMEOUT_S = 120  # one notebook's run-all; each runs in well under a minute under nbval
REDRAW_TIMEOUT_S = 30  # one slider move: the kernel draws a new figure and sends it back
# What widgets._wire builds, as JupyterLab renders it: a box of sliders over an Output holding the figure.
WIDGET_BOX = ".jp-OutputArea-output .widget-vbox:has(.widget-slider):has(.widget-output)"
FIGURE = ".widget-output img"


def widget_notebooks() -> list[str]:
    """The notebooks with a code cell that calls ``widgets.<something>(``."""
    names = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        if any(c["cell_type"] == "code" and WIDGET_CALL.search("".join(c["source"])) for c in cells):
            names.append(path.name)
    return names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """Lab settings: attach every cell to the DOM (JupyterLab 4 otherwise renders only cells near the viewport),
    and no news or update checks (their toast can cover a widget, and nothing may be fetched)."""
    settings = {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = settings_dir / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="session")
def workdir() -> Path:
    """Kept after the run: it holds the screenshots (and the lab's log, for a failure)."""
    path = Path(tempfile.mkdtemp(prefix="mistral_mini_browser_"))
    yield path
    print(f"\nscreenshots of the widgets: {path / 'screenshots'}")


@pytest.fixture(scope="session")
def lab(workdir: Path) -> Iterator[str]:
    """A JupyterLab on 127.0.0.1 with a random token, serving a copy of notebooks/; yields the URL that opens a
    notebook, with ``{name}`` to fill in."""
    root = workdir / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    _write_settings(workdir / "settings")
    token = secrets.token_hex(16)
    port = _free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(workdir / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"), "JUPYTER_RUNTIME_DIR": str(workdir / "runtime")}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
               # window.jupyterapp: the test runs JupyterLab's own commands and reads its notebook model
               "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root otherwise; CI runs as root
    log = (workdir / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", server, workdir / "lab.log")
        yield f"{base}/lab/tree/{{name}}?reset&token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode}; its log:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer on {url.split('?')[0]} within {timeout_s} s; its log:\n{log.read_text()}")


@pytest.fixture(scope="session")
def page(workdir: Path):
    """One headless Chromium page on a fresh profile directory, reused for every notebook (each opens with ?reset,
    so the tabs of the previous one are not restored)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium), "
                    "or point CHROMIUM at a Chromium binary")
    with playwright_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox cannot start as root, as CI runs
        context = p.chromium.launch_persistent_context(
            workdir / "chromium-profile", executable_path=CHROMIUM, headless=True, args=["--no-sandbox"],
            viewport={"width": 1400, "height": 1000})
        yield context.pages[0] if context.pages else context.new_page()
        context.close()


# Run in the page. `window.jupyterapp` is JupyterLab's application (exposed by the server flag above).
JS_NOTEBOOK_READY = """(name) => {
    const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = nb && nb.context && nb.context.path === name && nb.context.isReady && nb.sessionContext.session
        && nb.sessionContext.session.kernel;
    return Boolean(kernel) && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
JS_KERNEL_IDLE = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'"
JS_SHUTDOWN_KERNEL = """() => {
    const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return nb && nb.sessionContext ? nb.sessionContext.shutdown() : null;
}"""
JS_RUN_ALL = "() => window.jupyterapp.commands.execute('notebook:run-all-cells')"
JS_RUN_STATE = """() => {
    const nb = window.jupyterapp.shell.currentWidget;
    const cells = nb.content.widgets.filter(c => c.model.type === 'code');
    const errors = [];
    for (const [i, cell] of cells.entries()) {
        for (const out of cell.model.outputs.toJSON()) {
            const text = out.output_type === 'stream' ? [].concat(out.text).join('') : '';
            if (out.output_type === 'error' || text.includes('Traceback')) {
                errors.push(`code cell ${i + 1}: ` + (out.ename ? `${out.ename}: ${out.evalue}` : text));
            }
        }
    }
    return {
        // JupyterLab gives an empty code cell no execution count: only cells with code must have run
        pending: cells.filter(c => c.model.executionCount === null && c.model.sharedModel.getSource().trim()).length,
        kernel: nb.sessionContext.session.kernel.status,
        errors,
    };
}"""


def _run_all_cells(page, name: str) -> None:
    page.wait_for_function(JS_NOTEBOOK_READY, arg=name, timeout=60_000)
    mode = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.notebookConfig.windowingMode")
    assert mode == "none", f"the lab settings were not read (windowingMode is {mode!r}): cells off screen stay empty"
    page.evaluate(JS_RUN_ALL)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        state = page.evaluate(JS_RUN_STATE)
        assert not state["errors"], f"{name}: error output after run-all:\n" + "\n".join(state["errors"])
        if state["pending"] == 0 and state["kernel"] == "idle":
            return
        assert time.monotonic() < deadline, (
            f"{name}: after {RUN_TIMEOUT_S} s, {state['pending']} code cells have not run (kernel {state['kernel']})")
        time.sleep(0.5)


def _figure_src(box) -> str:
    """The data URL of the figure the widget box shows ('' while the Output is being redrawn)."""
    images = box.locator(FIGURE)
    return images.first.get_attribute("src") if images.count() else ""


def _wait_for_new_figure(page, box, before: str, what: str) -> None:
    try:
        page.wait_for_function(
            """([box, figure, before]) => {
                const img = box.querySelector(figure);
                return img !== null && img.getAttribute('src') !== before;
            }""", arg=[box.element_handle(), FIGURE, before], timeout=REDRAW_TIMEOUT_S * 1000)
    except playwright_api.TimeoutError:
        pytest.fail(f"{what}, and the figure did not change within {REDRAW_TIMEOUT_S} s")
    _settle(page, box)


def _settle(page, box, quiet_s: float = 0.5) -> None:
    """Wait until the figure has stayed the same, with the kernel idle, for ``quiet_s``: one move may queue more
    than one redraw, and the next move must start from the last of them."""
    deadline, last, quiet_since = time.monotonic() + REDRAW_TIMEOUT_S, None, time.monotonic()
    while time.monotonic() < deadline:
        now = (_figure_src(box), page.evaluate(JS_KERNEL_IDLE))
        if now != last or not now[1]:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.1)
    pytest.fail(f"the widget kept redrawing (or the kernel stayed busy) for {REDRAW_TIMEOUT_S} s")


def _handle(slider):
    """The slider's knob (ipywidgets draws its sliders with noUiSlider), which takes the keys."""
    return slider.locator(".noUi-handle").first


def _press(page, box, slider, key: str, what: str) -> None:
    """Press ``key`` on the slider's handle and wait until the widget's figure is a different image."""
    before = _figure_src(box)
    assert before, f"{what}: no figure before pressing {key}"
    _handle(slider).press(key)
    _wait_for_new_figure(page, box, before, f"{what}: pressed {key}")


def _restore(page, box, slider, readout: str, arrow: str, what: str) -> None:
    """Put the slider back at the value its readout showed, by arrow presses as a reader would (typing into the
    readout works for number sliders only; a selection slider ignores it)."""
    before = _figure_src(box)
    text, handle = slider.locator(".widget-readout").first, _handle(slider)
    for _ in range(1000):  # a slider of more than 1,000 steps would need a faster way back
        if text.inner_text() == readout:
            break
        handle.press(arrow)  # no wait per press: the kernel queues the redraws, and _settle waits for the last
    assert text.inner_text() == readout, f"{what}: could not be put back at {readout} (shows {text.inner_text()})"
    _wait_for_new_figure(page, box, before, f"{what}: put back at {readout}")


def _check_sliders(page, name: str) -> int:
    """Move each slider to both ends of its range, the far end first, requiring a new figure after each press, then
    put it back where the notebook set it (from the near end, in fewer presses): each slider is tested with the
    others at the notebook's values (temperature 0 would leave nothing for top-p to change)."""
    boxes = page.locator(WIDGET_BOX)
    assert boxes.count() > 0, f"{name}: a cell calls widgets.*(...) but no widget with a slider and a figure rendered"
    moved = 0
    for b in range(boxes.count()):
        box = boxes.nth(b)
        box.scroll_into_view_if_needed()
        sliders = box.locator(".widget-slider")
        for s in range(sliders.count()):
            slider = sliders.nth(s)
            label = slider.locator(".widget-label").first
            what = f"{name}, widget {b + 1}, slider {label.inner_text()!r}"
            assert label.evaluate("e => e.scrollWidth <= e.clientWidth"), f"{what}: its label is cut short"
            handle = _handle(slider)
            readout = slider.locator(".widget-readout").first.inner_text()
            low, now, high = (float(handle.get_attribute(f"aria-value{k}")) for k in ("min", "now", "max"))
            near_top = high - now < now - low
            for key in ("Home", "End") if near_top else ("End", "Home"):
                _press(page, box, slider, key, what)
            if low < now < high:  # the next slider, and the screenshot, start from the notebook's values
                _restore(page, box, slider, readout, "ArrowLeft" if near_top else "ArrowRight", what)
            moved += 1
    return moved


@pytest.mark.parametrize("name", widget_notebooks())
def test_sliders_redraw_their_figure(name: str, lab: str, page, workdir: Path) -> None:
    page_errors: list[str] = []
    on_error = lambda error: page_errors.append(str(error))  # noqa: E731 (removed again below)
    page.on("pageerror", on_error)
    try:
        started = time.monotonic()
        page.goto(lab.format(name=name), wait_until="domcontentloaded")
        _run_all_cells(page, name)
        ran = time.monotonic()
        moved = _check_sliders(page, name)
        # a redraw that raised would print its traceback into an output: look once more after the moves
        errors = page.evaluate(JS_RUN_STATE)["errors"]
        assert not errors, f"{name}: error output after moving the sliders:\n" + "\n".join(errors)
        shots = workdir / "screenshots"
        shots.mkdir(exist_ok=True)
        page.locator(WIDGET_BOX).first.screenshot(
            path=str(shots / f"{Path(name).stem}.png"))
        print(f"{name}: ran in {ran - started:.0f} s; {moved} sliders redrew their figure both ways, "
              f"{time.monotonic() - ran:.0f} s")
    finally:
        page.evaluate(JS_SHUTDOWN_KERNEL)  # the next notebook gets both cores
        page.remove_listener("pageerror", on_error)
    assert not page_errors, f"{name}: errors in the page:\n" + "\n".join(page_errors)
