"""Browser tests: a real ``streamlit run app.py`` server driven by headless Chromium.

Fixtures
    ``app_url``  (session) the base URL of a private Streamlit server on a free port.
    ``browser``  (session) sync-Playwright Chromium (the system ``/usr/bin/chromium``).
    ``page``     (function) a fresh page in a new context, viewport 1400×1000.

Helpers (import them with ``from browser_helpers import wait_for_app, ...``)
    :func:`wait_for_app`, :func:`screenshot`, :func:`assert_no_exception`, and
    :func:`streamlit_server` for a test that needs a server of its own.

The whole folder is skipped only when ``/usr/bin/chromium`` is missing (CI installs it).
Never run ``playwright install``: the tests use the system Chromium.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT_S = 60.0
APP_IDLE_TIMEOUT_MS = 90_000  # first run of a page loads the model and runs it on CPU
EXPECT_TIMEOUT_MS = 15_000

HERE = Path(__file__).resolve().parent
SKIP_REASON = (f"browser tests need Chromium at {CHROMIUM}, which is not installed here "
               f"(CI installs it: apt-get install chromium)")

# Test modules import the helpers below with ``from browser_helpers import ...``:
# ``from conftest import ...`` would be ambiguous next to tests/conftest.py.
sys.modules["browser_helpers"] = sys.modules[__name__]


def pytest_collectreport(report):
    """Give the module name ``conftest`` back once this folder has been collected.

    Both this file and tests/conftest.py are imported as ``conftest`` (neither folder is
    a package). pyproject's ``--doctest-modules`` re-imports tests/conftest.py by that
    name after this folder has been collected, and fails with "import file mismatch" if
    ``sys.modules["conftest"]`` is still this file. (A cleaner fix would be a
    ``tests/browser/__init__.py`` or ``--import-mode=importlib``.)
    """
    if sys.modules.get("conftest") is sys.modules["browser_helpers"]:
        del sys.modules["conftest"]


def pytest_collection_modifyitems(config, items):
    """Every test in this folder is a browser test; all of them skip without Chromium."""
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.browser)
        if not CHROMIUM.exists():
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


# --------------------------------------------------------------------------- server

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, n_chars: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return text[-n_chars:] or "(empty)"


def _health_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


SERVER_PIDS: dict[str, int] = {}
"""Process id of each running :func:`streamlit_server`, by base URL (to measure its memory)."""


@contextlib.contextmanager
def streamlit_server(timeout_s: float = SERVER_START_TIMEOUT_S, env: dict[str, str] | None = None):
    """Run ``streamlit run app.py`` from the repo root on a free port; yield its base URL.

    ``env`` adds environment variables for the server. Fails (with the server's stderr tail)
    if it exits early or is not healthy within ``timeout_s``; terminates it on exit.
    """
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_dir = Path(tempfile.mkdtemp(prefix="featurelens-browser-"))
    stdout_path, stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py",
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    server_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env=server_env)
    SERVER_PIDS[base_url] = proc.pid

    def logs() -> str:
        return (f"command: {' '.join(cmd)}\nstderr tail:\n{_tail(stderr_path)}\n"
                f"stdout tail:\n{_tail(stdout_path)}")

    try:
        deadline = time.monotonic() + timeout_s
        while not _health_ok(base_url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before "
                            f"{base_url}/_stcore/health said ok.\n{logs()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not say ok on {base_url}/_stcore/health within "
                            f"{timeout_s:.0f} s.\n{logs()}", pytrace=False)
            time.sleep(0.25)
        yield base_url
    finally:
        SERVER_PIDS.pop(base_url, None)
        if proc.poll() is None:
            proc.terminate()  # a graceful stop takes ~5 s with the model loaded; no need
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def app_url(browser):
    """Base URL of a private app server (started once per session, stopped at the end).

    Before handing it out, one browser session opens ``/`` and waits for the run to
    finish: that loads the model into the server (so later pages are quicker), and
    app.py's ``st.navigation`` switches off Streamlit's legacy ``pages/`` mode, which a
    fresh server's first deep link would otherwise hit (that case has its own test,
    ``test_deep_link_on_fresh_server_runs_the_navigation_app``, on its own server).
    """
    with streamlit_server() as base_url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            warm = context.new_page()
            warm.goto(f"{base_url}/")
            wait_for_app(warm)
            assert_no_exception(warm)
        finally:
            context.close()
        yield base_url


# --------------------------------------------------------------------------- browser

@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait on conditions; give a busy CI machine more than the 5 s default.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


# --------------------------------------------------------------------------- helpers

# Samples Streamlit's state; also installs (once per document) a MutationObserver that
# records when the DOM last changed: after a script run finishes, the frontend can still
# be rendering its output for a second or more (images, iframes, dataframes) on a busy
# machine, and widgets can first appear with a placeholder value.
_STATE_JS = """() => {
    if (!window.__flLastMutation) {
        window.__flLastMutation = performance.now();
        new MutationObserver(() => { window.__flLastMutation = performance.now(); })
            .observe(document, {subtree: true, childList: true, attributes: true,
                                characterData: true});
    }
    const visible = (el) => !!(el && (el.offsetWidth || el.offsetHeight
                                      || el.getClientRects().length));
    const app = document.querySelector('[data-testid="stApp"]');
    let busy = null;
    if (!app) busy = 'no stApp yet';
    else if (app.getAttribute('data-test-connection-state') !== 'CONNECTED')
        busy = 'connection ' + app.getAttribute('data-test-connection-state');
    else if (app.getAttribute('data-test-script-state') !== 'notRunning')
        busy = 'script ' + app.getAttribute('data-test-script-state');
    if (!busy) {
        const status = document.querySelector('[data-testid="stStatusWidget"]');
        if (status && visible(status) && /running|stop|connecting/i.test(status.innerText || ''))
            busy = 'status widget: ' + status.innerText.trim();
    }
    if (!busy && [...document.querySelectorAll('[data-testid="stSpinner"]')].some(visible))
        busy = 'spinner';
    if (!busy && [...document.querySelectorAll('[data-stale="true"]')].some(visible))
        busy = 'stale elements';
    return {busy, quietMs: performance.now() - window.__flLastMutation};
}"""


def wait_for_app(page, timeout_ms: int = APP_IDLE_TIMEOUT_MS, quiet_ms: int = 500) -> None:
    """Wait until Streamlit has finished running and rendering.

    Idle means: connected, script state ``notRunning``, no "Running…/Stop" status
    widget, no visible spinner or stale element, and no DOM change for ``quiet_ms``.
    Assertions after an interaction should still wait on their own condition (e.g.
    Playwright's ``expect``): a rerun starts a moment after the event that caused it.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    state = {"busy": "not sampled yet", "quietMs": 0}
    while time.monotonic() < deadline:
        state = page.evaluate(_STATE_JS)
        if not state["busy"] and state["quietMs"] >= quiet_ms:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"Streamlit app on {page.url} not idle after {timeout_ms / 1000:.0f} s "
                         f"(busy: {state['busy'] or 'no'}; DOM quiet for "
                         f"{state['quietMs']:.0f} ms, need {quiet_ms} ms)")


def main_area(page):
    """The page's main column (everything but the sidebar)."""
    return page.locator('[data-testid="stMain"]')


def open_page(page, url: str, size: tuple[int, int] | None = None, timeout_ms: int = APP_IDLE_TIMEOUT_MS) -> None:
    """Go to ``url`` (at viewport ``size`` = (width, height), if given), wait until the app is
    idle, and fail on any exception shown."""
    if size is not None:
        page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(url)
    wait_for_app(page, timeout_ms=timeout_ms)
    assert_no_exception(page)


def assert_no_exception(page) -> None:
    """Fail with the exception text if the page shows a Streamlit exception box."""
    exceptions = page.locator('[data-testid="stException"]')
    if exceptions.count():
        texts = "\n---\n".join(exceptions.all_inner_texts())
        raise AssertionError(f"{exceptions.count()} exception(s) shown on {page.url}:\n{texts}")


def screenshot(page, name: str) -> Path:
    """Save a full-height screenshot to ``<repo>/screenshots/<name>.png`` and return its path.

    Streamlit scrolls inside ``[data-testid="stMain"]`` (older: ``section.main``), so
    ``full_page=True`` alone would only capture one viewport: grow the viewport to the
    container's scroll height for the shot, then restore it.
    """
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / (name if name.endswith(".png") else f"{name}.png")
    viewport = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]')
                  || document.querySelector('section.main');
        const doc = document.documentElement.scrollHeight;
        return Math.max(main ? main.scrollHeight : 0, doc);
    }""")
    try:
        if height > viewport["height"]:
            page.set_viewport_size({"width": viewport["width"], "height": int(height)})
            page.wait_for_timeout(300)  # let charts/iframes re-layout to the new size
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(viewport)
    return path
