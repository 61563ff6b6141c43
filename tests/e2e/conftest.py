"""Real-browser tests: a `streamlit run` server on a demo clinic, driven by Debian's Chromium.

Skipped (not failed) where chromium or playwright is missing. A failing test leaves a
screenshot and a trace under test-results/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
        import pytest_playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not os.path.exists(CHROMIUM):
        return "chromium is not installed (apt-get install chromium)"
    return None


def pytest_configure(config):
    # Evidence of a red run: screenshot and trace of the failing page.
    if hasattr(config.option, "screenshot") and config.option.screenshot == "off":
        config.option.screenshot = "only-on-failure"
        config.option.tracing = "retain-on-failure"
        config.option.output = str(ROOT / "test-results")


def pytest_collection_modifyitems(config, items):
    reason = _browser_missing()
    if reason is None:
        return
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from monitor.testing import build_demo

    folder = tmp_path_factory.mktemp("e2e") / "data"
    build_demo(folder).close()
    return folder


@pytest.fixture(scope="session")
def streamlit_server(demo_data, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = dict(os.environ, MONITOR_DATA=str(demo_data))
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
             f"--server.port={port}", "--server.address=127.0.0.1",
             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("streamlit did not start:\n" + log_path.read_text(errors="replace"))
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync"]}


@pytest.fixture(scope="session")
def base_url(streamlit_server):
    return streamlit_server
