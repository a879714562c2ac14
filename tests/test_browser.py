"""Every notebook in notebooks/, run top to bottom in JupyterLab in headless Chromium, in fast mode.

One JupyterLab server (loopback, a random token, autosave off, nothing that reaches the network) and one
Chromium serve the whole module. Per notebook: open it, clear it and Run All Cells, wait until the kernel is
idle and every code cell shows an execution count, then fail on an error output (naming the cell), a browser
console error, an image output without its loaded <img>, a tqdm progress bar that is not a rendered widget, or
any change to the notebook file. A full-page screenshot of each lands in build/browser/<notebook>.png.

Skipped when no Chromium is on PATH (minihybrid.doctor.BROWSERS) or playwright is missing; tools/run_tests.sh
then runs the notebooks under nbmake instead.
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopback import free_port

from minihybrid.doctor import BROWSERS, chromium_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM = chromium_path()
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NOTEBOOK_TIMEOUT_S = 600  # fast mode takes 20-90 s a notebook on 2 cores
START_TIMEOUT_S = 120
RENDER_TIMEOUT_S = 15  # widgets and images render a moment after the kernel's last message
WIDTH = 1280
TQDM_BAR = re.compile(r"\d+%\|")  # tqdm's text meter: "train:  45%|████▌     | 18/40 [...]"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: "
                               "pip install -e '.[dev]' (the notebooks' browser test)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=f"none of {', '.join(BROWSERS)} on PATH: "
                                "apt-get install chromium (the notebooks' browser test)")

# JupyterLab user settings (plugin id -> values), written to a fresh settings folder.
SETTINGS = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},  # the committed notebooks stay unwritten
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    # Every cell in the DOM, not only those scrolled into view; no blank space after the last in screenshots.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none", "scrollPastEnd": False},
}
SERVER_OPTIONS = [
    "--no-browser",
    "--ServerApp.port_retries=0",
    "--LabApp.news_url=None",  # no news feed, no update check, no PyPI queries: an offline run stays quiet
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
    "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: commands, and each cell's model and node
]

# The open notebook's code cells with a source: execution prompt and error outputs, and the kernel's status.
STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session?.kernel;
  const cells = panel.content.widgets.map((cell, index) => ({cell, index}))
    .filter(({cell}) => cell.model.type === "code" && cell.model.sharedModel.getSource().trim());
  return {
    kernel: kernel ? kernel.status : "no kernel",
    cells: cells.map(({cell, index}) => ({
      index,
      source: cell.model.sharedModel.getSource().trim().split("\\n")[0],
      prompt: cell.node.querySelector(".jp-InputPrompt").textContent.trim(),
      errors: cell.model.outputs.toJSON().filter(o => o.output_type === "error")
        .map(o => `${o.ename}: ${o.evalue}`),
    })),
  };
}"""

# Per code cell: its outputs' images and progress bars as the kernel sent them (text/plain of a tqdm widget is
# its text meter), and what the page shows of them.
RENDERED_JS = """() => {
  const text = value => Array.isArray(value) ? value.join("") : (value || "");
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map((cell, index) => ({cell, index}))
    .filter(({cell}) => cell.model.type === "code").map(({cell, index}) => {
      const outputs = cell.model.outputs.toJSON();
      const area = cell.node.querySelector(".jp-OutputArea");
      return {
        index,
        source: cell.model.sharedModel.getSource().trim().split("\\n")[0],
        images: outputs.filter(o => Object.keys(o.data || {}).some(m => m.startsWith("image/"))).length,
        widget_texts: outputs.filter(o => "application/vnd.jupyter.widget-view+json" in (o.data || {}))
          .map(o => text(o.data["text/plain"])),
        stderr: outputs.filter(o => o.output_type === "stream" && o.name === "stderr").map(o => text(o.text)),
        shown_images: area ? Array.from(area.querySelectorAll(".jp-RenderedImage img"))
          .filter(img => img.complete && img.naturalWidth > 0).length : 0,
        shown_bars: area ? area.querySelectorAll(".widget-hprogress .progress-bar").length : 0,
      };
    });
}"""

OPENED_JS = """path => {
  const panel = window.jupyterapp?.shell.currentWidget;
  return panel?.context?.path === path && panel.context.isReady && panel.sessionContext.isReady;
}"""

RUN_ALL_JS = """() => {
  const {commands, shell} = window.jupyterapp;
  shell.collapseLeft();  // the notebook alone, at full width, in the screenshot
  commands.execute("notebook:clear-all-cell-outputs").then(() => commands.execute("notebook:run-all-cells"));
}"""

# The window height that shows the whole notebook (the page around it plus its full scroll height), or with
# "top", scroll the notebook back to its first cell.
SCROLLER_JS = """what => {
  const notebook = window.jupyterapp.shell.currentWidget.content.node;
  const scroller = notebook.querySelector(".jp-WindowedPanel-outer") || notebook;
  if (what === "top") scroller.scrollTop = 0;
  return Math.ceil(window.innerHeight - notebook.clientHeight + scroller.scrollHeight);
}"""


@dataclass
class Lab:
    url: str
    token: str

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def stop_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


def write_settings(folder: Path) -> None:
    for plugin, values in SETTINGS.items():
        package, name = plugin.split(":")
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def wait_until_up(lab: Lab, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with status {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            lab.api("GET", "/api/status")
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """End the server's own process group: SIGTERM (it shuts its kernels down), SIGKILL after 30 s."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    write_settings(home / "settings")
    lab = Lab(url=f"http://127.0.0.1:{free_port()}", token=secrets.token_hex(24))
    command = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={lab.url.rsplit(':', 1)[1]}",
               f"--IdentityProvider.token={lab.token}", f"--ServerApp.root_dir={ROOT}",
               f"--LabApp.user_settings_dir={home / 'settings'}",
               f"--LabApp.workspaces_dir={home / 'workspaces'}",
               f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}",  # not notebooks/.ipynb_checkpoints
               *SERVER_OPTIONS, *(["--allow-root"] if os.geteuid() == 0 else [])]
    env = {**os.environ, "MINIHYBRID_FAST": "1", "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    log = home / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_up(lab, server, log)
        yield lab
    finally:
        stop(server)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def cell_name(cell: dict) -> str:
    return f"cell {cell['index']} ({cell['source'][:60]!r})"


def run_all(page, path: str) -> list[str]:
    """Run All Cells; the problems that stop it (errors, a dead kernel, the time limit), none when it ends."""
    page.evaluate(RUN_ALL_JS)
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
    while True:
        state = page.evaluate(STATE_JS)
        errors = [f"{cell_name(c)}: {e}" for c in state["cells"] for e in c["errors"]]
        if errors:
            return [f"{path}: error output in {e}" for e in errors]
        if state["kernel"] in ("dead", "no kernel"):
            return [f"{path}: the kernel is {state['kernel']}"]
        pending = [c for c in state["cells"] if not re.fullmatch(r"\[\d+\]:", c["prompt"])]
        if state["kernel"] == "idle" and not pending:
            return []
        if time.monotonic() > deadline:
            waiting = cell_name(pending[0]) if pending else "the kernel"
            return [f"{path}: not finished after {NOTEBOOK_TIMEOUT_S} s, waiting on {waiting}"]
        time.sleep(1)


def render_problems(cells: list[dict]) -> list[str]:
    problems = []
    for cell in cells:
        if cell["shown_images"] < cell["images"]:
            problems.append(f"{cell_name(cell)}: {cell['images']} image outputs, {cell['shown_images']} "
                            "loaded <img> shown")
        bars = sum(bool(TQDM_BAR.search(text)) for text in cell["widget_texts"])
        if cell["shown_bars"] < bars:
            problems.append(f"{cell_name(cell)}: {bars} tqdm progress widgets, {cell['shown_bars']} rendered "
                            "(the text fallback instead)")
        if any(TQDM_BAR.search(text) for text in cell["stderr"]):
            problems.append(f"{cell_name(cell)}: a tqdm progress bar printed as text, not as a widget")
    return problems


def rendered(page) -> list[str]:
    """The rendering problems left once images and widgets have had RENDER_TIMEOUT_S to appear."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while (problems := render_problems(page.evaluate(RENDERED_JS))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return problems


def screenshot(page, path: Path) -> None:
    page.set_viewport_size({"width": WIDTH, "height": page.evaluate(SCROLLER_JS, "height")})
    page.wait_for_timeout(500)  # JupyterLab lays the panels out again after the resize
    page.evaluate(SCROLLER_JS, "top")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(notebook, lab, browser):
    path = notebook.relative_to(ROOT).as_posix()
    committed = notebook.read_bytes()
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    messages = []  # every console error fails: with the settings above, an offline run logs none
    page.on("console", lambda m: m.type == "error" and messages.append(f"{m.text} ({m.location['url']})"))
    page.on("pageerror", lambda e: messages.append(f"uncaught: {e}"))
    try:
        page.goto(f"{lab.url}/lab/tree/{path}?reset&token={lab.token}")  # reset: no other notebook reopened
        page.wait_for_function(OPENED_JS, arg=path, timeout=START_TIMEOUT_S * 1000)
        problems = run_all(page, path)
        if not problems:
            problems = [f"{path}: {problem}" for problem in rendered(page)]
        screenshot(page, SCREENSHOTS / f"{notebook.stem}.png")
    finally:
        page.close()
        lab.stop_kernels()
    problems += [f"browser console: {m}" for m in messages]
    if notebook.read_bytes() != committed:
        problems.append(f"{path} was written during the run (autosave must stay off)")
    assert not problems, "\n".join(problems)
