"""JupyterLab in a real browser: open a notebook, run all cells, see an altair chart render.

Drives Debian's headless Chromium (``/usr/bin/chromium`` + ``/usr/bin/chromedriver``, installed by
``.ci/run``; the test skips with a reason where they are missing) with selenium against
a JupyterLab started on 127.0.0.1 with a random free port and a token. Nothing is downloaded by the
browser: no network but the loopback server, so a chart needing a CDN fails here as it would
offline. A screenshot is saved to ``reports/test-artifacts/jupyterlab.png`` (or
``$TREADMILL_TEST_ARTIFACTS``). Skips when the browser is unavailable; fails instead under ``CI``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from research import lab as lab_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHART_SELECTOR = ".vega-embed svg, .vega-embed canvas"
STDERR_SELECTOR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_SELECTOR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'


def _unavailable(msg: str):
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI must run the browser test: .ci/run installs chromium, chromium-driver and selenium)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium + chromedriver. Tests never install system packages: ``.ci/run`` does."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _unavailable(f"headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): "
                     "install Debian's chromium and chromium-driver packages (.ci/run does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed: pip install -e '.[browser]'")
    return CHROMIUM, CHROMEDRIVER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1:<free port> serving ``tmp_path``; yields (url, token, root)."""
    root = tmp_path / "work"
    root.mkdir()
    port, token = _free_port(), secrets.token_hex(16)
    cfg = tmp_path / "jupyter-config"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(cfg), "JUPYTERLAB_SETTINGS_DIR": str(cfg / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(cfg / "lab-workspaces")}
    # user settings: start the notebook's kernel without asking, never ask about (or fetch) news
    for rel, value in (("@jupyterlab/notebook-extension/tracker", {"autoStartDefaultKernel": True}),
                       ("@jupyterlab/apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        f = cfg / "lab-settings" / f"{rel}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    env["RESEARCH_REPORTS_DIR"] = str(tmp_path / "reports")
    (root / "notebooks").mkdir()
    log = open(tmp_path / "jupyterlab.log", "wb")
    # the command line `research lab` uses: offline, strip-on-save hook, --allow-root as root
    proc = subprocess.Popen(lab_cli.server_args(root, port=port, token=token), cwd=root, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url, token, root
    finally:
        try:  # shuts the kernels down with the server
            req = urllib.request.Request(f"{url}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=10).close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@pytest.fixture
def browser(chromium):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(chromium[0])
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
                 # offline like a user without internet, and fast about it: only loopback resolves
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(chromium[1])), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _chart_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Altair in JupyterLab\nA chart drawn with the project's theme."),
        nbformat.v4.new_code_cell(
            "import altair as alt\nimport polars as pl\n\nfrom research import plots\n\n"
            "df = pl.DataFrame({\"hour\": list(range(24)), \"funding_bp\": [((h * 7) % 11 - 5) / 2 for h in range(24)]})\n"
            "chart = alt.Chart(plots.data(df)).mark_line(point=True).encode(x=\"hour:Q\", y=\"funding_bp:Q\")\n"
            "chart"),
    ]
    nbformat.write(nb, path)


def _artifact_path() -> Path:
    d = Path(os.environ.get("TREADMILL_TEST_ARTIFACTS", PROJECT_ROOT / "reports" / "test-artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d / "jupyterlab.png"


def _click_menu(driver, wait, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    wait.until(EC.element_to_be_clickable(
        (By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][.//div[normalize-space()='{menu}']]"))).click()
    wait.until(EC.element_to_be_clickable(
        (By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,'lm-Menu-itemLabel') and normalize-space()='{item}']]"))).click()


def _wait_for_idle_kernel(url: str, token: str, notebook: str, timeout: float = 180) -> None:
    """Poll the server's sessions until ``notebook``'s kernel reports ``idle``."""
    deadline, sessions = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5) as r:
            sessions = json.load(r)
        states = [s.get("kernel", {}).get("execution_state") for s in sessions if s.get("path", "").endswith(notebook)]
        if "idle" in states:
            return
        time.sleep(0.5)
    pytest.fail(f"the kernel of {notebook} did not become idle within {timeout:.0f} s; sessions: {sessions}. "
                "Check that a kernel starts here: python -m ipykernel_launcher --version")


def _renderer_needs_a_cdn() -> bool:
    """True when, after ``import research.plots``, altair would display charts as HTML that loads
    vega from a CDN (altair's "default" renderer), which cannot work offline."""
    import altair as alt

    import research.plots  # noqa: F401 - it may choose the renderer

    bundle = alt.Chart(alt.Data(values=[{"a": 1}])).mark_point()._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    return set(bundle) - {"text/plain"} == {"text/html"} and "cdn.jsdelivr.net" in bundle["text/html"]


def test_altair_chart_renders_in_jupyterlab(lab, browser, capsys):
    # altair 6 alone would load vega from a CDN; research.plots must pick an offline renderer
    assert not _renderer_needs_a_cdn()
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, token, root = lab
    _chart_notebook(root / "notebooks" / "chart.ipynb")
    browser.get(f"{url}/lab/tree/notebooks/chart.ipynb?token={token}")
    wait = WebDriverWait(browser, 90)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook .jp-Cell")))
    wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Toolbar-kernelStatus, .jp-Notebook-ExecutionIndicator")))
    # the kernel must be up before "Run All" means anything: the server says when it is idle (a
    # fresh environment's first kernel start can take long, and an early click is simply lost)
    _wait_for_idle_kernel(url, token, "chart.ipynb")

    def started(d):  # a code cell was queued ([*]) or has run ([1]), or output is already there
        prompts = [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")]
        return any(p not in ("", "[ ]:") for p in prompts) or bool(d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))

    for _ in range(3):  # re-issue a lost "Run All" (running the cell twice is harmless)
        _click_menu(browser, wait, "Run", "Run All Cells")
        try:
            WebDriverWait(browser, 20, poll_frequency=0.5).until(started)
            break
        except TimeoutException:
            continue

    shot = _artifact_path()

    def outcome(d):
        if d.find_elements(By.CSS_SELECTOR, CHART_SELECTOR):
            return "chart"
        if d.find_elements(By.CSS_SELECTOR, ERROR_SELECTOR):
            return "error"
        if any("Error loading script" in e.text or "No renderer could be found" in e.text
               for e in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")):
            return "render error"
        return False

    try:
        result = WebDriverWait(browser, 120, poll_frequency=0.5).until(outcome)
    except TimeoutException:
        result = "timeout"
    time.sleep(0.5)  # let vega finish painting for the screenshot
    browser.save_screenshot(str(shot))
    with capsys.disabled():
        print(f"\nJupyterLab screenshot: {shot}")
    outputs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")]
    assert result == "chart", f"no altair chart rendered ({result}); outputs: {outputs}; screenshot: {shot}"
    stderr = [e.text for e in browser.find_elements(By.CSS_SELECTOR, STDERR_SELECTOR)]
    assert not any("Traceback" in t or "Error" in t for t in stderr), stderr
    assert not browser.find_elements(By.CSS_SELECTOR, ERROR_SELECTOR)
    # the chart is drawn by vega-embed from JupyterLab's own bundle (no CDN): it has marks
    marks = browser.find_elements(By.CSS_SELECTOR, ".vega-embed svg path, .vega-embed canvas")
    assert marks, "vega-embed container is empty"

    # saving keeps the tracked notebook clean; the run's outputs land in the ignored reports/lab copy
    kept = root.parent / "reports" / "lab" / "notebooks" / "chart.ipynb"
    _click_menu(browser, wait, "File", "Save Notebook")
    deadline = time.monotonic() + 30
    while not kept.exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert kept.exists(), "saving in JupyterLab did not keep the full notebook under reports/lab/"
    on_disk = json.loads((root / "notebooks" / "chart.ipynb").read_text())
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in on_disk["cells"] if c["cell_type"] == "code"), "outputs were saved into the tracked notebook"
    full = json.loads(kept.read_text())
    assert any(c.get("outputs") for c in full["cells"] if c["cell_type"] == "code")
