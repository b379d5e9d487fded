"""A real Chromium (Debian's, through Playwright) that can reach nothing but this machine, and a
harness that mounts a real widget's bundle and state in it, bridged to the Python widget.

Without Chromium the browser tests fail with the install line: they are not optional.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import mount

__all__ = ["FLAGS", "SHOTS", "chromium_path", "mount", "shot"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("CBW_SCREENSHOTS", Path(tempfile.gettempdir()) / "cbwidgets-screenshots"))
LOCAL = ("http://127.0.0.1", "file:", "blob:", "data:", "about:")


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is needed for the browser tests: apt-get install -y chromium (CI's .ci/run does this).")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(), args=FLAGS)
        yield context
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page whose every request off this machine is aborted and recorded in ``page.blocked``; its
    uncaught errors are in ``page.js_errors``, those thrown in a widget's own code in ``page.widget_errors``
    (a front end's own errors, such as Notebook 7's settings loader, are not the widgets')."""
    page = browser.new_page()
    blocked: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.blocked = blocked
    errors: list[str] = []
    ours: list[str] = []  # errors thrown in a widget bundle (loaded from a blob: URL, here and in Jupyter)

    def record(err: Any) -> None:
        errors.append(str(err))
        if "blob:" in (err.stack or ""):
            ours.append(f"{err}\n{err.stack}")

    page.on("pageerror", record)
    page.js_errors = errors
    page.widget_errors = ours
    yield page
    page.close()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
