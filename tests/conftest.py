"""Shared fixtures: the real browser (tests/browser.py) and a real JupyterLab (tests/jupyter.py)."""

from tests.browser import browser, page
from tests.jupyter import jupyterlab

__all__ = ["browser", "jupyterlab", "page"]
